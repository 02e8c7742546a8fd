"""Load a function from a predefined name, a module or a ``.py`` file; parse CLI parameters.

Parameters on the command line use CVAT's syntax ``NAME=TYPE:VALUE`` with TYPE one of
``str``, ``int``, ``float``, ``bool`` (``true``/``false``, ``yes``/``no``, ``1``/``0``);
``NAME=VALUE`` without a type is a string.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import BadFunctionError, BadParameterError

#: What each predefined function is: its module and its kind (``detection``, ``interactive`` or
#: ``tracking``). Front ends offer choices from here.
REGISTRY: dict[str, tuple[str, str]] = {
    "yolox": ("autoannotate.functions.yolox", "detection"),
    "torchvision_detection": ("autoannotate.functions.torchvision_detection", "detection"),
    "torchvision_instance_segmentation": ("autoannotate.functions.torchvision_instance_segmentation", "detection"),
    "torchvision_keypoint_detection": ("autoannotate.functions.torchvision_keypoint_detection", "detection"),
    "torchvision_classification": ("autoannotate.functions.torchvision_classification", "detection"),
    "sam3": ("autoannotate.functions.sam3", "detection"),
    "owlv2": ("autoannotate.functions.owlv2", "detection"),
    "grounding_dino": ("autoannotate.functions.grounding_dino", "detection"),
    "sam": ("autoannotate.functions.sam", "interactive"),
    "sam2": ("autoannotate.functions.sam2", "interactive"),
    "edgetam": ("autoannotate.functions.edgetam", "interactive"),
    "grabcut": ("autoannotate.functions.grabcut", "interactive"),
    "opencv_tracker": ("autoannotate.functions.opencv_tracker", "tracking"),
    "sam_tracker": ("autoannotate.functions.sam_tracker", "tracking"),
    "sam2_video": ("autoannotate.functions.sam2_video", "tracking"),
    "edgetam_video": ("autoannotate.functions.edgetam_video", "tracking"),
}
FUNCTION_KINDS = ("detection", "interactive", "tracking")
#: Predefined functions: short name -> module.
PREDEFINED = {name: module for name, (module, _) in REGISTRY.items()}


log = logging.getLogger(__name__)

#: The interactive choice that picks the best model whose weights are here (else GrabCut).
AUTO = "auto"
#: ``auto``'s candidates, best first: (function, its params, the package it imports). Each function
#: module says whether its weights are here (``weights_available(**params)``). On a CPU the fast
#: distilled models come first (an annotator waits on the encoder); with a GPU the largest do.
_CPU_ORDER: list[tuple[str, dict[str, Any], str]] = [
    ("edgetam", {}, "transformers"),
    ("sam2", {"size": "tiny"}, "transformers"),
    ("sam2", {"size": "small"}, "transformers"),
    ("sam2", {"size": "base-plus"}, "transformers"),
    ("sam2", {"size": "large"}, "transformers"),
    ("sam", {"model_type": "vit_b"}, "segment_anything"),
    ("sam", {"model_type": "vit_l"}, "segment_anything"),
    ("sam", {"model_type": "vit_h"}, "segment_anything"),
]
_GPU_ORDER = list(reversed(_CPU_ORDER[:5])) + list(reversed(_CPU_ORDER[5:]))


def interactive_candidates(device: str = "cpu") -> list[tuple[str, dict[str, Any]]]:
    """``auto``'s candidates for ``device`` (cpu, cuda, auto), best first: ``(function name, params)``."""
    order = _GPU_ORDER if _is_gpu(device) else _CPU_ORDER
    return [(name, dict(params)) for name, params, _ in order]


def _is_gpu(device: str) -> bool:
    if device == "cuda" or device.startswith("cuda:"):
        return True
    if device != "auto":
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_interactive(name: str = AUTO, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The interactive function to load: ``(name, params)`` for :func:`load_function`.

    A name other than ``auto`` comes back unchanged. ``auto`` picks the best candidate of
    :func:`interactive_candidates` whose weights are on this machine (``AUTOANNOTATE_MODELS``, the
    cache, the Hugging Face cache; nothing is downloaded) and whose package is installed, else
    ``grabcut``, logging one line that says how to get a SAM model. ``params`` given with ``auto``
    go to the chosen function when its ``create`` takes them (``device``, ``multimask``); ``device``
    also decides the order (a GPU prefers the largest model).
    """
    params = dict(params or {})
    if name != AUTO:
        return name, params
    device = str(params.get("device", "cpu"))
    for fn_name, fn_params, package in _GPU_ORDER if _is_gpu(device) else _CPU_ORDER:
        if importlib.util.find_spec(package) is None:
            continue
        if not importlib.import_module(PREDEFINED[fn_name]).weights_available(**fn_params):
            continue
        chosen = {**fn_params, **_accepted(fn_name, params)}
        log.info("interactive model: %s %s (its weights are on this machine)", fn_name, chosen)
        return fn_name, chosen
    log.warning(
        "interactive model: grabcut (no SAM weights on this machine). For SAM 2.1 / EdgeTAM masks run "
        "`autoannotate weights download edgetam` (or sam2.1-hiera-tiny) with "
        "pip install 'autoannotate[transformers]', or put a saved model folder in AUTOANNOTATE_MODELS; "
        "`autoannotate weights list` shows what is present"
    )
    return "grabcut", _accepted("grabcut", params)


def _accepted(fn_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``fn_name``'s ``create`` takes."""
    create = importlib.import_module(PREDEFINED[fn_name]).create
    names = inspect.signature(create).parameters
    return {k: v for k, v in params.items() if k in names}


def load_interactive(name: str = AUTO, **params: Any) -> Any:
    """Build an interactive function; ``auto`` as in :func:`resolve_interactive`."""
    chosen, chosen_params = resolve_interactive(name, params)
    return load_function(chosen, **chosen_params)


def predefined(kind: str | None = None) -> list[str]:
    """Names of the predefined functions of ``kind`` (all when None), in registry order."""
    if kind is not None and kind not in FUNCTION_KINDS:
        raise BadParameterError(f"kind must be one of {FUNCTION_KINDS}, got {kind!r}")
    return [name for name, (_, k) in REGISTRY.items() if kind is None or k == kind]


_BOOL = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


def parse_param(text: str) -> tuple[str, Any]:
    """``"NAME=TYPE:VALUE"`` -> ``(NAME, value)``."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise BadParameterError(f"parameter {text!r} must look like NAME=TYPE:VALUE (e.g. model_name=str:resnet50)")
    type_name, colon, value = rest.partition(":")
    if not colon or type_name not in ("str", "int", "float", "bool"):
        return name, rest
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
    """Import a predefined name, a dotted module path, or a ``.py`` file."""
    if isinstance(module_or_file, ModuleType):
        return module_or_file
    text = str(module_or_file)
    if text in PREDEFINED:
        return importlib.import_module(PREDEFINED[text])
    path = Path(text)
    if text.endswith(".py") or path.is_file():
        if not path.is_file():
            raise BadFunctionError(f"function file {text!r} does not exist")
        mod_name = f"_autoannotate_user_function_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise BadFunctionError(f"cannot import {text!r} as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(text)
    except ModuleNotFoundError as e:
        if e.name and text.startswith(e.name):
            raise BadFunctionError(
                f"no function named {text!r}: not a predefined function ({sorted(PREDEFINED)}), "
                "an importable module or a .py file"
            ) from None
        raise


def load_function(module_or_file: str | ModuleType, **params: Any) -> Any:
    """Build a function: ``module.create(**params)`` if the module has ``create``; otherwise the
    module itself when it has ``spec`` and ``detect`` (and no params were given)."""
    module = import_function_module(module_or_file)
    create = getattr(module, "create", None)
    if callable(create):
        try:
            inspect.signature(create).bind(**params)
        except TypeError as e:
            raise BadParameterError(f"{module.__name__}.create(): {e}. {describe_parameters(create)}") from None
        return create(**params)
    if params:
        raise BadParameterError(f"{module.__name__} has no create() function, so it takes no parameters")
    if hasattr(module, "detect") or hasattr(module, "segment") or hasattr(module, "track"):
        return module
    raise BadFunctionError(f"{module.__name__} is not an auto-annotation function (no create(), detect(), ...)")


def is_open_vocabulary(function: Any) -> bool:
    """Whether ``function`` (a predefined name, module, ``.py`` file or module object) is an
    open-vocabulary function: its module sets ``OPEN_VOCABULARY = True`` and its ``create`` takes
    the class names to find (``classes=``). Objects that are not names or modules are not."""
    if not isinstance(function, (str, ModuleType)):
        return False
    try:
        module = import_function_module(function)
    except BadFunctionError:
        return False
    return bool(getattr(module, "OPEN_VOCABULARY", False))


def with_classes(function: Any, params: Any, class_names: Iterable[str] | None) -> dict[str, Any]:
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
