"""The ML backend's pre-annotation of image tasks: the tasks of one ``/predict`` go through the
driver in one pass, their labels mapped there onto every control tag (one mapping per control,
:func:`~autoannotate.label_studio.predictions.control_mappings`), and each result becomes one
prediction (:func:`~autoannotate.label_studio.predictions.image_prediction`, the builder
``label-studio annotate`` uses too)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import PIL.Image

from ..driver import iter_annotations
from ..images import load_image
from ..interface import DetectionFunction
from .config import Control
from .fetch import ImageFetcher
from .predictions import control_mappings, image_prediction
from .responses import BadRequest, failure, task_ref


def pre_annotate(
    tasks: list[Mapping[str, Any]],
    controls: list[Control],
    *,
    function: DetectionFunction,
    fetcher: ImageFetcher,
    version: str,
    conf_threshold: float | None,
    batch_size: int,
    num_workers: int,
    loaded: dict[str, Any] | None = None,
) -> list[dict]:
    """One prediction per task, in order, from ``function`` on the image of each task (under
    ``controls[0]``'s data key) with ``controls``' mappings. A task that fails (no image, an
    image that cannot be read, a function that breaks the protocol) gets ``error`` and
    ``error_id`` but no ``result``: Label Studio then stores nothing for it and it can be
    retried. ``loaded`` (optional) receives the decoded images by reference, for encode-ahead."""
    items: list[tuple[int, str]] = []
    outputs: dict[Any, dict] = {}
    for i, task in enumerate(tasks):
        try:
            items.append((i, task_ref(task, controls[0], "image")))
        except BadRequest as e:
            outputs[i] = failure(str(e))

    def load(ref: str) -> PIL.Image.Image:
        image = load_image(fetcher.fetch(ref))
        if loaded is not None:
            loaded[ref] = image
        return image

    for r in iter_annotations(
        function,
        items,
        mapping=control_mappings(controls),
        conf_threshold=conf_threshold,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=False,
        loader=load,
    ):
        task = tasks[r.key]  # type: ignore[call-overload]
        ok = r.ok
        outputs[r.key] = image_prediction(task.get("id"), r, controls, version) if ok else failure(r.error or "")
    return [outputs[k] for k in range(len(tasks))]
