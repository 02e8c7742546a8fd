"""Load a function from a registered name (:mod:`autoannotate.registry`), a module or a ``.py`` file; parse CLI parameters.

Parameters on the command line use CVAT's syntax ``NAME=TYPE:VALUE`` with TYPE one of
``str``, ``int``, ``float``, ``bool`` (``true``/``false``, ``yes``/``no``, ``1``/``0``);
``NAME=VALUE`` without a type is a string.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import BadFunctionError, BadParameterError
from .registry import (
    FunctionRecord,
    RegisteredFunction,
    is_registered,
    lookup,
    names,
)


def function_names(kind: str | None = None) -> list[str]:
    """Names of the functions of ``kind`` (all when None) that a front end offers: the predefined
    ones, then those installed by other packages (:mod:`autoannotate.registry`)."""
    return names(kind)


def registered(name: str) -> RegisteredFunction:
    """The registered function ``name``; :class:`~autoannotate.errors.BadFunctionError` when none has it."""
    found = lookup(name)
    if found is None:
        raise BadFunctionError(f"no function named {name!r}; known: {names()}")
    return found


_BOOL = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


class Untyped(str):
    """A parameter value given without ``TYPE:``: a string, unless the function's ``create``
    declares the parameter ``int``, ``float`` or ``bool`` (:func:`typed_params`)."""

    __slots__ = ()


def parse_param(text: str) -> tuple[str, Any]:
    """``"NAME=TYPE:VALUE"`` -> ``(NAME, value)``; without ``TYPE:`` the value is :class:`Untyped`."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise BadParameterError(f"parameter {text!r} must look like NAME=TYPE:VALUE (e.g. model_name=str:resnet50)")
    type_name, colon, value = rest.partition(":")
    if not colon or type_name not in ("str", "int", "float", "bool"):
        return name, Untyped(rest)
    try:
        if type_name == "int":
            return name, int(value)
        if type_name == "float":
            return name, float(value)
        if type_name == "bool":
            return name, _BOOL[value.strip().lower()]
    except (ValueError, KeyError):
        raise BadParameterError(f"parameter {name!r}: {value!r} is not a valid {type_name}") from None
    return name, value


def parse_params(texts: Iterable[str]) -> dict[str, Any]:
    """Several ``NAME=TYPE:VALUE`` strings to a dict; a repeated name is an error."""
    out: dict[str, Any] = {}
    for t in texts:
        k, v = parse_param(t)
        if k in out:
            raise BadParameterError(f"parameter {k!r} given twice")
        out[k] = v
    return out


def split_list(text: str | None) -> list[str]:
    """``"a, b\\nc"`` -> ``["a", "b", "c"]``: the comma- or newline-separated lists of the CLI and
    the FiftyOne form (classes, label maps, reviewers)."""
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"car=vehicle, person=pedestrian"`` -> ``{"car": "vehicle", "person": "pedestrian"}``
    (commas or newlines between pairs; the form used by the CLI and the FiftyOne operator)."""
    out: dict[str, str] = {}
    for part in split_list(text):
        name, sep, target = part.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise BadParameterError(f"label map entry {part.strip()!r} must look like function_label=dataset_label")
        if name.strip() in out:
            raise BadParameterError(f"label map names {name.strip()!r} twice")
        out[name.strip()] = target.strip()
    return out


def import_function_module(module_or_file: str | ModuleType) -> ModuleType:
    """Import a registered function's module, a dotted module path, or a ``.py`` file. A registered
    name wins over a Python module of the same name."""
    if isinstance(module_or_file, ModuleType):
        return module_or_file
    text = str(module_or_file)
    if is_registered(text):
        return importlib.import_module(registered(text).module)
    return import_module_or_file(text)


def import_module_or_file(text: str) -> ModuleType:
    """Import a dotted module path or a ``.py`` file, whatever the registry holds (the CLI's
    ``--function-module`` / ``--function-file``)."""
    path = Path(text)
    if text.endswith(".py") or path.is_file():
        if not path.is_file():
            raise BadFunctionError(f"function file {text!r} does not exist")
        # the same name in every process (it is the model_version of functions that declare none,
        # which resumed runs and re-runs match on): the file's name and a digest of its path
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        mod_name = f"{path.stem if path.stem.isidentifier() else 'function'}_{digest}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise BadFunctionError(f"cannot import {text!r} as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            _raise_cvat_error(e, text)
            raise
        return module
    try:
        return importlib.import_module(text)
    except ModuleNotFoundError as e:
        if e.name and text.startswith(e.name):
            raise BadFunctionError(
                f"no function named {text!r}: not a predefined function nor one installed by a package "
                f"({names()}), an importable module or a .py file"
            ) from None
        raise
    except Exception as e:
        _raise_cvat_error(e, text)
        raise


def _raise_cvat_error(e: Exception, what: str) -> None:
    """Raise CVAT's ``BadFunctionError`` (a CVAT function whose spec breaks CVAT's rules, raised
    as its module is imported) as ours, with CVAT's reason; return on any other error."""
    if type(e).__name__ == "BadFunctionError" and type(e).__module__.startswith("cvat_sdk"):
        raise BadFunctionError(f"{what}: the CVAT function breaks CVAT's rules: {e}") from e


def load_function(module_or_file: str | ModuleType, kind: str | None = None, /, **params: Any) -> Any:
    """Build a function: a registered name's ``create(**params)`` (predefined, or installed through
    the ``autoannotate.functions`` entry points); for a module or a ``.py`` file its
    ``create(**params)`` if it has one, otherwise the module itself when it has ``spec`` and
    ``detect`` (and no params were given).

    ``kind`` (one of :data:`~autoannotate.registry.FUNCTION_KINDS`) is the kind the caller's role
    needs: a registered function of another kind is refused before it is built (its record says
    what it is), a module or file once built when it lacks what the kind needs
    (:func:`check_kind`). Both are positional-only, so every keyword is a parameter of ``create``."""
    if isinstance(module_or_file, str) and is_registered(module_or_file):
        fn = expect_kind(module_or_file, kind)
        return adapt_function(_call_create(fn.create, f"{fn.name} ({fn.origin})", params))
    module = import_function_module(module_or_file)
    shown = module_or_file if isinstance(module_or_file, str) else module.__name__  # as the user wrote it
    create = getattr(module, "create", None)
    if callable(create):
        return check_kind(adapt_function(_call_create(create, f"{module.__name__}.create()", params)), kind, shown)
    if params:
        raise BadParameterError(f"{module.__name__} has no create() function, so it takes no parameters")
    if hasattr(module, "detect") or hasattr(module, "segment") or hasattr(module, "track"):
        return check_kind(adapt_function(module), kind, shown)
    raise BadFunctionError(f"{module.__name__} is not an auto-annotation function (no create(), detect(), ...)")


def expect_kind(name: str, kind: str | None) -> RegisteredFunction:
    """The registered function ``name``, when its record's kind is ``kind`` (None: any), else
    :class:`~autoannotate.errors.BadFunctionError`; nothing is built (a caller that hands the name
    to worker processes checks it first)."""
    fn = registered(name)
    if kind is not None and fn.record.kind != kind:
        raise BadFunctionError(_wrong_kind(repr(fn.name), _a(fn.record.kind), kind))
    return fn


#: What a function of each kind provides (the Protocols of :mod:`autoannotate.interface`).
_PROVIDES = {"detection": "spec and detect()", "interactive": "encode() and segment()", "tracking": "spec and track()"}


def provided_kinds(function: object) -> list[str]:
    """The kinds ``function`` (an object or a module, adapted) can serve as, by what it provides."""
    from .interface import DetectionFunction, InteractiveFunction, TrackingFunction

    protocols = {"detection": DetectionFunction, "interactive": InteractiveFunction, "tracking": TrackingFunction}
    return [kind for kind, protocol in protocols.items() if isinstance(function, protocol)]


def check_kind(function: Any, kind: str | None, name: str | None = None) -> Any:
    """``function`` (built, adapted), when it provides what a function of ``kind`` needs (None:
    anything); else :class:`~autoannotate.errors.BadFunctionError` naming it, what it is, and how
    to list the functions of ``kind``."""
    if kind is None:
        return function
    provided = provided_kinds(function)
    if kind in provided:
        return function
    from .interface import function_name

    what = _a(" and ".join(provided)) if provided else "not a detection, interactive or tracking"
    raise BadFunctionError(_wrong_kind(repr(name or function_name(function)), what, kind))


def _a(word: str) -> str:
    return f"{'an' if word[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {word}"


def _wrong_kind(name: str, what: str, kind: str) -> str:
    """``'grabcut' is an interactive function, but a detection function is needed here ...``"""
    return (
        f"{name} is {what} function, but {_a(kind)} function is needed here (one with {_PROVIDES[kind]}); "
        f"`autoannotate functions --kind {kind}` lists them: {', '.join(names(kind))}"
    )


def adapt_function(function: Any) -> Any:
    """``function`` as an autoannotate function: one written for CVAT SDK's auto-annotation layer
    (``cvat_sdk.auto_annotation``) is wrapped by :func:`autoannotate.cvat.adapt`; anything else is
    returned as it is. Every entry point that takes a function object calls it."""
    if "cvat_sdk.auto_annotation" in sys.modules:  # a CVAT function has imported it
        from .cvat import adapt

        return adapt(function)
    return function


def _call_create(create: Any, what: str, params: dict[str, Any]) -> Any:
    return create(**_checked_params(create, what, params))


def _checked_params(create: Any, what: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        inspect.signature(create).bind(**params)
    except TypeError as e:
        raise BadParameterError(f"{what}: {e}. {describe_parameters(create)}") from None
    return typed_params(create, params)


def checked_params(module_or_file: str | ModuleType, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` as the ``create`` of ``module_or_file`` (a registered name, a module or a ``.py``
    file) will receive them, checked without calling it (nothing is built, no weights are loaded):
    an unknown name, or a value given without ``TYPE:`` that is not of its parameter's type
    (``pretrained=maybe``), raises the :class:`~autoannotate.errors.BadParameterError`
    :func:`load_function` would; ``max_detections=10`` becomes the ``int`` 10 (:func:`typed_params`).
    Returned as given for a module without ``create()`` (:func:`load_function` refuses them)."""
    params = dict(params or {})
    if not params:
        return params
    if isinstance(module_or_file, str) and is_registered(module_or_file):
        fn = registered(module_or_file)
        return _checked_params(fn.create, f"{fn.name} ({fn.origin})", params)
    module = import_function_module(module_or_file)
    create = getattr(module, "create", None)
    return _checked_params(create, f"{module.__name__}.create()", params) if callable(create) else params


def typed_params(create: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each :class:`Untyped` value (``-p threshold=0.3``) turned into the ``int``,
    ``float`` or ``bool`` its parameter declares (annotation, else default; the options of its
    ``**kwargs`` as its ``kwargs_parameters`` hook declares them), else a plain string:
    ``threshold=0.3`` means ``threshold=float:0.3`` for a ``threshold: float``."""
    declared = {**_kwargs_parameters(create, params), **inspect.signature(create).parameters}
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Untyped):
            kind = _declared_type(declared.get(name))
            value = parse_param(f"{name}={kind}:{value}")[1] if kind else str(value)
        out[name] = value
    return out


def _kwargs_parameters(create: Any, params: dict[str, Any]) -> dict[str, inspect.Parameter]:
    """The options a ``create`` whose ``**kwargs`` go on (to a model constructor) declares for them:
    ``create.kwargs_parameters(params)``, ``{name: inspect.Parameter}``, if it has that hook."""
    hook = getattr(create, "kwargs_parameters", None)
    return dict(hook(params)) if callable(hook) else {}


def _declared_type(p: inspect.Parameter | None) -> str | None:
    if p is None:
        return None
    ann = p.annotation
    names = {a.strip() for a in ann.split("|")} - {"None"} if isinstance(ann, str) else {getattr(ann, "__name__", "")}
    if len(names) == 1 and (kind := names.pop()) in ("int", "float", "bool"):
        return kind
    default = p.default
    if isinstance(default, bool):
        return "bool"
    return type(default).__name__ if isinstance(default, (int, float)) else None


def function_record(function: object) -> FunctionRecord | None:
    """The record of ``function`` (a registered name, a module, a ``.py`` file or a module object
    that declares ``FUNCTION``), or None (an object, or a module without a record)."""
    if isinstance(function, str) and is_registered(function):
        return registered(function).record
    if not isinstance(function, (str, ModuleType)):
        return None
    try:
        module = import_function_module(function)
    except BadFunctionError:
        return None
    record = module.__dict__.get("FUNCTION")
    return record if isinstance(record, FunctionRecord) else None


def is_open_vocabulary(function: object) -> bool:
    """Whether ``function`` (a registered name, module, ``.py`` file or module object) is an
    open-vocabulary function: its record says ``open_vocabulary=True`` and its ``create`` takes
    the class names to find (``classes=``). Objects that are not names or modules are not."""
    record = function_record(function)
    return record is not None and record.open_vocabulary


def with_classes(function: object, params: Any, class_names: Iterable[str] | None) -> dict[str, Any]:
    """``params`` for ``load_function(function, **params)``, with ``classes=class_names`` added
    when ``function`` is open-vocabulary and the user gave no ``classes`` of their own: the one
    way every front end hands its class names (FiftyOne classes, Label Studio labels, the CLI's
    ``--classes``) to SAM 3, OWLv2 or Grounding DINO."""
    out = dict(params or {})
    names = [n for n in (class_names or []) if n]
    if names and "classes" not in out and is_open_vocabulary(function):
        out["classes"] = list(dict.fromkeys(names))
    return out


def describe_parameters(create: Any) -> str:
    """One line per parameter of a ``create`` function: name, type, default."""
    parts = []
    for p in inspect.signature(create).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        default = "" if p.default is p.empty else f" = {p.default!r}"
        parts.append(f"{p.name}{': ' + ann if ann and ann != '_empty' else ''}{default}")
    return "Parameters: " + (", ".join(parts) if parts else "none")
