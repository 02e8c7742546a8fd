"""The function registry: one record per function, predefined or installed from another package.

A predefined function is a module of :mod:`autoannotate.functions` that declares
``FUNCTION = FunctionRecord(...)`` next to its ``create(**params)``. Another package adds a
function without touching this repository through the entry point group
``autoannotate.functions``::

    [project.entry-points."autoannotate.functions"]
    my_detector = "my_package.detector:create"

Its record is the ``FUNCTION`` attribute of the ``create`` callable, else of its module, else a
default one (a detection function with nothing declared); the entry point's name is the function's
name. A predefined name wins over an installed one of the same name (a warning says so), and
every registered name wins over a Python module of the same name.

``loading`` (``--function NAME``, ``auto``), ``weights`` (what ``autoannotate weights`` knows)
and every front end's choices read only this registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import Any

from .errors import BadFunctionError

log = logging.getLogger(__name__)

#: The entry point group through which other packages add functions.
ENTRY_POINT_GROUP = "autoannotate.functions"
#: What a function can be: a detector (``spec`` + ``detect``), an interactive segmenter
#: (``encode`` + ``segment``) or a tracker (``spec`` + ``init_tracking_state`` + ``track``).
FUNCTION_KINDS = ("detection", "interactive", "tracking")


@dataclass(frozen=True)
class WeightsEntry:
    """A downloadable weights file. ``sha256`` is None where the official one is not published.

    With ``repo_id`` the entry is a Hugging Face model: ``filename`` is the folder's name and
    ``url`` the repo's page; it is downloaded with ``huggingface_hub`` (revision ``revision``).
    """

    filename: str
    url: str
    sha256: str | None = None
    license: str = ""
    repo_id: str | None = None
    revision: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.repo_id is not None


def transformers_record(
    name: str, kind: str = "detection", *, license: str = "Apache-2.0", **fields: Any
) -> FunctionRecord:
    """The record of a function built on Hugging Face ``transformers`` (the ``transformers`` extra;
    it needs transformers and torch); ``fields`` are the other :class:`FunctionRecord` fields."""
    return FunctionRecord(
        name, kind, extras=("transformers",), requires=("transformers", "torch"), license=license, **fields
    )


def torchvision_record(name: str) -> FunctionRecord:
    """The record of a detection function built on a torchvision model (torchvision fetches its weights)."""
    return FunctionRecord(
        name,
        extras=("torch",),
        requires=("torch", "torchvision"),
        license="BSD-3-Clause (torchvision; see each model's weights)",
    )


def hf_weights(name: str, repo_id: str, license: str) -> WeightsEntry:
    """A Hugging Face model folder ``name`` (saved with ``save_pretrained``) of the repo ``repo_id``."""
    return WeightsEntry(name, f"https://huggingface.co/{repo_id}", None, license, repo_id=repo_id)


@dataclass(frozen=True)
class AutoCandidate:
    """One way the interactive choice ``auto`` may build a function: with ``params``, when the
    weights named ``weights`` are on this machine. ``cpu_rank`` / ``gpu_rank`` order the candidates
    of all functions (0 is tried first) on a CPU and on a GPU."""

    params: Mapping[str, Any]
    weights: str
    cpu_rank: int
    gpu_rank: int


@dataclass(frozen=True, eq=False)
class FunctionRecord:
    """What a function is, declared once next to its code.

    - ``name``: the name users give (``--function NAME``, the FiftyOne form, ``AUTOANNOTATE_FUNCTION``);
      an entry point's name replaces it.
    - ``kind``: one of :data:`FUNCTION_KINDS`.
    - ``extras``: the ``pip install 'autoannotate[EXTRA]'`` extras it needs (shown in listings).
    - ``requires``: the importable packages it needs (``auto`` skips a candidate whose package is
      missing).
    - ``weights``: its downloadable weights by short name (``autoannotate weights list/download``).
    - ``auto``: its candidates for the interactive choice ``auto``.
    - ``license``: a note on the license of the model or its weights.
    - ``open_vocabulary``: its ``create`` takes ``classes=`` (the names to find); every front end
      passes its class names there (:func:`autoannotate.loading.with_classes`).
    - ``summary``: one line for listings (default: the first paragraph of its module's docstring).
    """

    name: str
    kind: str = "detection"
    extras: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    weights: Mapping[str, WeightsEntry] = field(default_factory=dict)
    auto: tuple[AutoCandidate, ...] = ()
    license: str = ""
    open_vocabulary: bool = False
    summary: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise BadFunctionError(f"a function record needs a name, got {self.name!r}")
        if self.kind not in FUNCTION_KINDS:
            raise BadFunctionError(f"function {self.name!r}: kind must be one of {FUNCTION_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "extras", tuple(self.extras))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "auto", tuple(self.auto))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))


@dataclass(frozen=True, eq=False)
class RegisteredFunction:
    """A function of the registry: its record, the callable that builds it, and where it comes
    from (``origin``: the module for a predefined one, ``package NAME`` for an installed one)."""

    record: FunctionRecord
    create: Callable[..., Any]
    origin: str

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def module(self) -> str:
        return str(getattr(self.create, "__module__", ""))


@dataclass(frozen=True)
class BrokenFunction:
    """An installed entry point that cannot be loaded: listings show it, loading it raises."""

    name: str
    package: str
    target: str
    error: str

    def exception(self) -> BadFunctionError:
        return BadFunctionError(
            f"function {self.name!r} from package {self.package!r} ({self.target}) cannot be loaded: "
            f"{self.error}. Reinstall or fix that package, or uninstall it"
        )


Entry = RegisteredFunction | BrokenFunction


def _predefined() -> dict[str, RegisteredFunction]:
    from . import functions as package

    found: dict[str, RegisteredFunction] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        record = module.__dict__.get("FUNCTION")
        if isinstance(record, FunctionRecord):
            found[record.name] = RegisteredFunction(_with_summary(record, module), module.create, module.__name__)
    return dict(sorted(found.items(), key=lambda kv: FUNCTION_KINDS.index(kv[1].record.kind)))


def _with_summary(record: FunctionRecord, module: Any) -> FunctionRecord:
    if record.summary:
        return record
    doc = (getattr(module, "__doc__", None) or "").strip().split("\n\n")[0].replace("\n", " ")
    return replace(record, summary=doc)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The group's entry points (not loaded), read once per ``sys.path``."""
    return list(_cached("entry_points", lambda: list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))))


def _package(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "an unknown package"


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Entry:
    package = _package(ep)
    target = f"entry point {ep.name} = {ep.value}"
    try:
        create = ep.load()
    except Exception as e:  # noqa: BLE001 - any import error of another package is reported, not raised
        return BrokenFunction(ep.name, package, target, f"{type(e).__name__}: {e}")
    if isinstance(create, ModuleType) and not callable(getattr(create, "create", None)):
        return _module_entry(ep.name, create, package)
    if isinstance(create, ModuleType):
        create = create.create
    if not callable(create):
        return BrokenFunction(ep.name, package, target, f"{ep.value} is not callable")
    record = getattr(create, "FUNCTION", None)
    if not isinstance(record, FunctionRecord):
        record = getattr(sys.modules.get(str(getattr(create, "__module__", ""))), "FUNCTION", None)
    if not isinstance(record, FunctionRecord):
        record = FunctionRecord(ep.name)
    record = replace(record, name=ep.name)
    return RegisteredFunction(_with_summary(record, sys.modules.get(create.__module__)), create, f"package {package}")


def _module_entry(name: str, module: ModuleType, package: str) -> Entry:
    """An entry point naming a module that is itself a function (``spec`` and ``detect``,
    ``segment`` or ``track``: one of ours, or one written for CVAT, as ``--function-module``
    takes it): it is its own ``create``; its kind is read from what it defines."""
    target = f"entry point {name} = {module.__name__}"
    if not any(hasattr(module, m) for m in ("detect", "segment", "track")):
        return BrokenFunction(
            name, package, target, f"{module.__name__} has no create(), detect(), segment() or track()"
        )
    record = module.__dict__.get("FUNCTION")
    if not isinstance(record, FunctionRecord):
        interaction = type(getattr(module, "spec", None)).__name__ == "InteractionFunctionSpec"  # CVAT's
        kind = (
            "tracking"
            if hasattr(module, "track")
            else "interactive"
            if interaction or hasattr(module, "segment")
            else "detection"
        )
        record = FunctionRecord(name, kind)

    def create() -> ModuleType:
        return module

    create.__module__ = module.__name__
    return RegisteredFunction(_with_summary(replace(record, name=name), module), create, f"package {package}")


_cache: dict[str, Any] = {}


def _cached(key: str, build: Callable[[], Any]) -> Any:
    """``build()`` once per ``sys.path``: a package put on the path (a test, a notebook) is seen."""
    path = tuple(sys.path)
    hit = _cache.get(key)
    if hit is None or hit[0] != path:
        hit = (path, build())
        _cache[key] = hit
    return hit[1]


def refresh() -> None:
    """Forget what was found (after installing a package in a running process)."""
    _cache.clear()


def predefined_functions() -> dict[str, RegisteredFunction]:
    """The functions of this package by name, detection first, then interactive, then tracking."""
    return dict(_cached("predefined", _predefined))


def installed_functions() -> dict[str, Entry]:
    """The functions installed by other packages (entry points), loaded, by name. A name taken by
    a predefined function or by an earlier package is skipped with a warning."""

    def build() -> dict[str, Entry]:
        taken = predefined_functions()
        out: dict[str, Entry] = {}
        for ep in _entry_points():
            if ep.name in taken or ep.name in out:
                log.warning(
                    "function %r of package %s is ignored: the name is taken by %s",
                    ep.name,
                    _package(ep),
                    "a predefined function" if ep.name in taken else "another package",
                )
                continue
            out[ep.name] = _load_entry_point(ep)
        return out

    return dict(_cached("installed", build))


def all_functions() -> dict[str, Entry]:
    """Every function: predefined ones, then installed ones (broken ones included)."""
    return {**predefined_functions(), **installed_functions()}


def is_registered(name: str) -> bool:
    """Whether ``name`` names a predefined or installed function (never imports a module of that name)."""
    return name in predefined_functions() or any(ep.name == name for ep in _entry_points())


def lookup(name: str) -> RegisteredFunction | None:
    """The registered function ``name`` (None when no function has that name). An installed one
    that cannot be loaded raises :class:`~autoannotate.errors.BadFunctionError` naming its package."""
    found = predefined_functions().get(name)
    if found is None and any(ep.name == name for ep in _entry_points()):
        entry = installed_functions().get(name)
        if isinstance(entry, BrokenFunction):
            raise entry.exception()
        found = entry
    return found


def names(kind: str | None = None) -> list[str]:
    """Names of the loadable functions of ``kind`` (all when None): predefined ones first."""
    if kind is not None and kind not in FUNCTION_KINDS:
        from .errors import BadParameterError

        raise BadParameterError(f"kind must be one of {FUNCTION_KINDS}, got {kind!r}")
    return [
        name
        for name, entry in all_functions().items()
        if isinstance(entry, RegisteredFunction) and (kind is None or entry.record.kind == kind)
    ]


def weights_entries() -> dict[str, WeightsEntry]:
    """Every function's weights by short name (a name declared twice keeps the first)."""
    out: dict[str, WeightsEntry] = {}
    for entry in all_functions().values():
        if isinstance(entry, RegisteredFunction):
            for name, weights in entry.record.weights.items():
                out.setdefault(name, weights)
    return out


def auto_candidates(gpu: bool) -> list[tuple[RegisteredFunction, AutoCandidate]]:
    """``auto``'s candidates of every function, best first for a GPU or a CPU."""
    pairs = [
        (entry, c)
        for entry in all_functions().values()
        if isinstance(entry, RegisteredFunction)
        for c in entry.record.auto
    ]
    return sorted(pairs, key=lambda p: p[1].gpu_rank if gpu else p[1].cpu_rank)


__all__ = [
    "WeightsEntry",
    "hf_weights",
    "ENTRY_POINT_GROUP",
    "FUNCTION_KINDS",
    "AutoCandidate",
    "BrokenFunction",
    "FunctionRecord",
    "RegisteredFunction",
    "all_functions",
    "auto_candidates",
    "installed_functions",
    "is_registered",
    "lookup",
    "names",
    "predefined_functions",
    "refresh",
    "weights_entries",
]
