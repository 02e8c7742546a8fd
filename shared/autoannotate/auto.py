"""The interactive choice ``auto``: the best interactive model whose weights are on this machine.

Each function declares its candidates in its record (:class:`autoannotate.registry.AutoCandidate`:
params, weights, a rank on a CPU and on a GPU); nothing else lists them.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Any

from .loading import load_function, registered
from .registry import auto_candidates
from .settings import default_device
from .weights import is_present

log = logging.getLogger(__name__)

#: The interactive choice that picks the best model whose weights are here (else GrabCut).
AUTO = "auto"


def interactive_candidates(device: str = "cpu") -> list[tuple[str, dict[str, Any]]]:
    """``auto``'s candidates for ``device`` (cpu, cuda, auto), best first: ``(function name, params)``.
    Each function declares its own candidates and their ranks in its record (``auto``); on a CPU
    the fast distilled models come first (an annotator waits on the encoder), with a GPU the largest."""
    return [(fn.name, dict(c.params)) for fn, c in auto_candidates(_is_gpu(device))]


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
    device = str(params.get("device") or default_device())  # AUTOANNOTATE_DEVICE, else auto
    for fn, candidate in auto_candidates(_is_gpu(device)):
        if any(importlib.util.find_spec(package) is None for package in fn.record.requires):
            continue
        if not is_present(candidate.weights):
            continue
        chosen = {**candidate.params, **_accepted(fn.name, params)}
        log.info("interactive model: %s %s (its weights are on this machine)", fn.name, chosen)
        return fn.name, chosen
    log.warning(
        "interactive model: grabcut (no SAM weights on this machine). For SAM 2.1 / EdgeTAM masks run "
        "`autoannotate weights download edgetam` (or sam2.1-hiera-tiny) with "
        "pip install 'autoannotate[transformers]', or put a saved model folder in AUTOANNOTATE_MODELS; "
        "`autoannotate weights list` shows what is present"
    )
    return "grabcut", _accepted("grabcut", params)


def _accepted(fn_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``fn_name``'s ``create`` takes."""
    names = inspect.signature(registered(fn_name).create).parameters
    return {k: v for k, v in params.items() if k in names}


def load_interactive(name: str = AUTO, **params: Any) -> Any:
    """Build an interactive function; ``auto`` as in :func:`resolve_interactive`."""
    chosen, chosen_params = resolve_interactive(name, params)
    return load_function(chosen, "interactive", **chosen_params)
