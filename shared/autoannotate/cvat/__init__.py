"""CVAT auto-annotation functions, both ways (the ``cvat`` extra: ``pip install 'autoannotate[cvat]'``).

- A function written for ``cvat_sdk.auto_annotation`` (detection, tracking or interaction) runs
  unchanged wherever autoannotate functions run: :func:`adapt` (:mod:`.adapt`), which
  :func:`autoannotate.loading.load_function` and the API entry points apply.
- Any autoannotate function is a CVAT function: :func:`as_cvat_function` (:mod:`.export`); and
  this module is a CVAT function module, so CVAT's tools run any autoannotate function by name::

      cvat-cli task auto-annotate 42 --function-module autoannotate.cvat \\
          -p function=str:yolox -p model=str:yolox_s
"""

from __future__ import annotations

from typing import Any

from .adapt import CvatDetection, CvatInteraction, CvatTracking, adapt, is_cvat_function
from .export import as_cvat_function

__all__ = [
    "CvatDetection",
    "CvatInteraction",
    "CvatTracking",
    "adapt",
    "as_cvat_function",
    "create",
    "is_cvat_function",
]


def create(function: str, **params: Any) -> Any:
    """The autoannotate function ``function`` (a predefined or installed name, a module or a
    ``.py`` file) built with ``params``, as a CVAT function: what ``cvat-cli ...
    --function-module autoannotate.cvat -p function=str:NAME -p PARAM=TYPE:VALUE`` calls."""
    from ..loading import load_function

    return as_cvat_function(load_function(function, **params))
