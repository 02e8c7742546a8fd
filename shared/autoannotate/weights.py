"""Find model weights: a local folder first, then a cache, then the official download URL.

Search order for a file name:

1. every folder in ``AUTOANNOTATE_MODELS`` (``os.pathsep``-separated), e.g. ``../shared/models``;
2. the cache folder, ``AUTOANNOTATE_CACHE`` or ``~/.cache/autoannotate``;
3. the official URL its function declares (:func:`registry`), downloaded into the cache (checked against its sha256
   when known). ``AUTOANNOTATE_OFFLINE=1`` disables downloads.

Hugging Face models (entries with a ``repo_id``: SAM 2.1, EdgeTAM) are folders saved with
``save_pretrained`` (``config.json`` + weights), found the same way under their registry name
(``<models>/sam2.1-hiera-tiny/``) or the repo's name, then in the Hugging Face cache
(``HF_HOME``), then downloaded with ``huggingface_hub`` into the cache folder.

When none works, :class:`WeightsNotFoundError` names the file, where it looked, the URL and how
to provide the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .registry import WeightsEntry, hf_weights
from .settings import CACHE_ENV, MODELS_ENV, OFFLINE_ENV, cache_dir, models_dirs, offline

__all__ = [
    "WeightsEntry",
    "hf_weights",
    "registry",
    "search_dirs",
    "find_local",
    "resolve",
    "is_present",
    "is_model_folder",
    "present",
    "sha256_of",
    # where weights are looked for (parsed in settings.py, the one place that reads the environment)
    "MODELS_ENV",
    "CACHE_ENV",
    "OFFLINE_ENV",
    "cache_dir",
    "models_dirs",
    "offline",
]
from .errors import WeightsNotFoundError


def registry() -> dict[str, WeightsEntry]:
    """Every known weights entry by short name: the weights each function declares in its record
    (:mod:`autoannotate.registry`), installed functions included."""
    from .registry import weights_entries

    return weights_entries()


def search_dirs() -> list[Path]:
    """Folders searched, in order: ``AUTOANNOTATE_MODELS`` entries, then the cache."""
    return models_dirs() + [cache_dir()]


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` is a saved Hugging Face model folder (it holds a ``config.json``)."""
    return path.is_dir() and (path / "config.json").is_file()


def find_local(filename: str) -> Path | None:
    """The first existing ``filename`` (a file, or a model folder) in :func:`search_dirs`, or None."""
    for d in search_dirs():
        candidate = d / filename
        if candidate.is_file() or is_model_folder(candidate):
            return candidate
    return None


def _find_entry(entry: WeightsEntry) -> Path | None:
    """Where ``entry`` already is on this machine: our folders, then the Hugging Face cache."""
    names = [entry.filename]
    if entry.repo_id and entry.repo_id.split("/")[-1] != entry.filename:
        names.append(entry.repo_id.split("/")[-1])
    for name in names:
        found = find_local(name)
        if found:
            return found
    return _hf_cached(entry) if entry.repo_id else None


def _hf_cached(entry: WeightsEntry) -> Path | None:
    """The snapshot of ``entry`` in the Hugging Face cache, or None (never touches the network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        path = Path(snapshot_download(entry.repo_id or "", revision=entry.revision, local_files_only=True))
    except Exception:  # noqa: BLE001  (huggingface_hub raises several types for "not in the cache")
        return None
    return path if is_model_folder(path) else None


def _lookup(name: str) -> WeightsEntry | None:
    known = registry()
    return known.get(name) or next(
        (e for e in known.values() if name in (e.filename, e.repo_id)),
        None,
    )


def is_present(name_or_entry: str | WeightsEntry) -> bool:
    """Whether weights are on this machine already (no download is attempted)."""
    try:
        resolve(name_or_entry, download=False)
    except WeightsNotFoundError:
        return False
    return True


def availability(name: str) -> Callable[[], bool]:
    """A function module's ``weights_available()``: whether weights ``name`` are already on this
    machine (no download)."""

    def weights_available() -> bool:
        return is_present(name)

    weights_available.__doc__ = f"Whether the {name} weights are already on this machine (no download)."
    return weights_available


def present() -> dict[str, Path | None]:
    """Every :func:`registry` name -> where its weights are on this machine (None: not here)."""
    return {name: _find_entry(entry) for name, entry in registry().items()}


def resolve(
    name_or_entry: str | WeightsEntry,
    *,
    download: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The path of a weights file or model folder (a :func:`registry` name, a file name, a Hugging
    Face repo id of the registry, an entry, or a path)."""
    if isinstance(name_or_entry, WeightsEntry):
        entry = name_or_entry
    else:
        given = Path(name_or_entry).expanduser()
        if given.is_file() or is_model_folder(given):
            return given
        if given.is_dir() and _lookup(name_or_entry) is None:
            raise WeightsNotFoundError(
                f"{name_or_entry!r} is a folder but not a saved model (no config.json); give the folder "
                "written by save_pretrained() or by `autoannotate weights download`"
            )
        known = _lookup(name_or_entry)
        if known is None:
            if given.parent != Path("."):
                raise WeightsNotFoundError(f"weights file {name_or_entry!r} does not exist")
            found = find_local(name_or_entry)
            if found:
                return found
            raise WeightsNotFoundError(
                f"weights {name_or_entry!r} not found in {[str(d) for d in search_dirs()]} and not a "
                f"known model (known: {sorted(registry())}). Put the file in one of those folders or "
                f"set {MODELS_ENV} to the folder that holds it."
            )
        entry = known
    found = _find_entry(entry)
    if found:
        return found
    if download and not offline():
        try:
            return _download_hf(entry) if entry.repo_id else _download(entry, timeout=timeout)
        except WeightsNotFoundError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = f"download failed: {e}"
        except Exception as e:  # noqa: BLE001  (huggingface_hub's HTTP errors have no common base here)
            reason = f"download failed: {type(e).__name__}: {e}"
    else:
        reason = f"downloads are disabled ({OFFLINE_ENV}=1)" if offline() else "downloads are disabled"
    if entry.repo_id:
        raise WeightsNotFoundError(
            f"model {entry.filename!r} (Hugging Face {entry.repo_id}) is not on this machine and {reason}. "
            f"Looked in: {[str(d) for d in search_dirs()]} and the Hugging Face cache. On a machine with "
            f"internet access run `autoannotate weights download {entry.filename}` (or `hf download "
            f"{entry.repo_id} --local-dir {entry.filename}`) and copy the folder {entry.filename}/ into one "
            f"of those folders (or set {MODELS_ENV}=/path/to/folder holding it), or pass the folder's path "
            "as the function's checkpoint."
        )
    raise WeightsNotFoundError(
        f"model weights {entry.filename!r} are not on this machine and {reason}. "
        f"Looked in: {[str(d) for d in search_dirs()]}. Download {entry.url} on a machine with "
        f"internet access and put it in one of those folders (or set {MODELS_ENV}=/path/to/folder)."
    )


def _download_hf(entry: WeightsEntry) -> Path:
    """Download a Hugging Face model folder into the cache (atomically: a partial download never
    looks like a model)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise WeightsNotFoundError(
            f"model {entry.filename!r} needs huggingface_hub to download: pip install 'autoannotate[transformers]'"
        ) from None
    dest_dir = cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.filename
    tmp = Path(tempfile.mkdtemp(prefix=entry.filename + ".", suffix=".part", dir=dest_dir))
    try:
        snapshot_download(entry.repo_id or "", revision=entry.revision, local_dir=str(tmp))
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
        if not is_model_folder(tmp):
            raise WeightsNotFoundError(f"downloaded {entry.url} but it holds no config.json: not a model folder")
        if is_model_folder(dest):  # another process finished the same download first: keep theirs
            return dest
        if dest.exists():  # a leftover that is not a model folder
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            if is_model_folder(dest):  # installed by another process between the check and here
                return dest
            raise
        return dest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _download(entry: WeightsEntry, *, timeout: float) -> Path:
    dest_dir = cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.filename
    fd, tmp_name = tempfile.mkstemp(prefix=entry.filename + ".", suffix=".part", dir=dest_dir)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            from tqdm.auto import tqdm

            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {entry.filename}") as bar:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if entry.sha256 and digest.hexdigest() != entry.sha256:
            raise WeightsNotFoundError(
                f"downloaded {entry.url} but its sha256 {digest.hexdigest()} differs from the expected "
                f"{entry.sha256}; the file was discarded"
            )
        shutil.move(tmp_name, dest)
        return dest
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
