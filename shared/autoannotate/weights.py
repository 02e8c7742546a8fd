"""Find model weights: a local folder first, then a cache, then the official download URL.

Search order for a file name:

1. every folder in ``AUTOANNOTATE_MODELS`` (``os.pathsep``-separated), e.g. ``../shared/models``;
2. the cache folder, ``AUTOANNOTATE_CACHE`` or ``~/.cache/autoannotate``;
3. the official URL from :data:`REGISTRY`, downloaded into the cache (checked against its sha256
   when known). ``AUTOANNOTATE_OFFLINE=1`` disables downloads.

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
from dataclasses import dataclass
from pathlib import Path

from .settings import CACHE_ENV, MODELS_ENV, OFFLINE_ENV, cache_dir, models_dirs, offline

__all__ = [
    "WeightsEntry",
    "REGISTRY",
    "search_dirs",
    "find_local",
    "resolve",
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


@dataclass(frozen=True)
class WeightsEntry:
    """A downloadable weights file. ``sha256`` is None where the official one is not published."""

    filename: str
    url: str
    sha256: str | None = None
    license: str = ""


_YOLOX = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"
_SAM = "https://dl.fbaipublicfiles.com/segment_anything/"

#: Official weights by short name.
REGISTRY: dict[str, WeightsEntry] = {
    "yolox_nano": WeightsEntry("yolox_nano.onnx", _YOLOX + "yolox_nano.onnx", None, "Apache-2.0"),
    "yolox_tiny": WeightsEntry("yolox_tiny.onnx", _YOLOX + "yolox_tiny.onnx", None, "Apache-2.0"),
    "yolox_s": WeightsEntry("yolox_s.onnx", _YOLOX + "yolox_s.onnx", None, "Apache-2.0"),
    "yolox_m": WeightsEntry("yolox_m.onnx", _YOLOX + "yolox_m.onnx", None, "Apache-2.0"),
    "yolox_l": WeightsEntry("yolox_l.onnx", _YOLOX + "yolox_l.onnx", None, "Apache-2.0"),
    "yolox_x": WeightsEntry("yolox_x.onnx", _YOLOX + "yolox_x.onnx", None, "Apache-2.0"),
    "sam_vit_b": WeightsEntry("sam_vit_b_01ec64.pth", _SAM + "sam_vit_b_01ec64.pth", None, "Apache-2.0"),
    "sam_vit_l": WeightsEntry("sam_vit_l_0b3195.pth", _SAM + "sam_vit_l_0b3195.pth", None, "Apache-2.0"),
    "sam_vit_h": WeightsEntry("sam_vit_h_4b8939.pth", _SAM + "sam_vit_h_4b8939.pth", None, "Apache-2.0"),
}


def search_dirs() -> list[Path]:
    """Folders searched, in order: ``AUTOANNOTATE_MODELS`` entries, then the cache."""
    return models_dirs() + [cache_dir()]


def find_local(filename: str) -> Path | None:
    """The first existing ``filename`` in :func:`search_dirs`, or None."""
    for d in search_dirs():
        candidate = d / filename
        if candidate.is_file():
            return candidate
    return None


def resolve(
    name_or_entry: str | WeightsEntry,
    *,
    download: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The path of a weights file (a :data:`REGISTRY` name, a file name, an entry or a path)."""
    if isinstance(name_or_entry, WeightsEntry):
        entry = name_or_entry
    else:
        given = Path(name_or_entry).expanduser()
        if given.is_file():
            return given
        known = REGISTRY.get(name_or_entry) or next((e for e in REGISTRY.values() if e.filename == name_or_entry), None)
        if known is None:
            if given.parent != Path("."):
                raise WeightsNotFoundError(f"weights file {name_or_entry!r} does not exist")
            found = find_local(name_or_entry)
            if found:
                return found
            raise WeightsNotFoundError(
                f"weights {name_or_entry!r} not found in {[str(d) for d in search_dirs()]} and not a "
                f"known model (known: {sorted(REGISTRY)}). Put the file in one of those folders or "
                f"set {MODELS_ENV} to the folder that holds it."
            )
        entry = known
    found = find_local(entry.filename)
    if found:
        return found
    if download and not offline():
        try:
            return _download(entry, timeout=timeout)
        except WeightsNotFoundError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = f"download failed: {e}"
    else:
        reason = f"downloads are disabled ({OFFLINE_ENV}=1)" if offline() else "downloads are disabled"
    raise WeightsNotFoundError(
        f"model weights {entry.filename!r} are not on this machine and {reason}. "
        f"Looked in: {[str(d) for d in search_dirs()]}. Download {entry.url} on a machine with "
        f"internet access and put it in one of those folders (or set {MODELS_ENV}=/path/to/folder)."
    )


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
