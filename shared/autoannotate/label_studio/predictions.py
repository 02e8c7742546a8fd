"""Label Studio predictions: the one builder of the project sink (``label-studio annotate``) and
the ML backend (pre-annotation and click-to-mask).

Labels are mapped in the driver, one mapping per control tag (:func:`control_mappings`, passed
to :func:`autoannotate.driver.iter_annotations`), so a result already holds each control's
shapes in that control's labels; :func:`image_prediction` only turns them into regions
(:func:`~autoannotate.label_studio.regions.build_prediction`: percent of the image, stable ids).
:func:`mask_prediction` does the same for an interactive function's masks.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ..driver import ImageResult
from ..interface import SegmentationResult
from ..mapping import TargetMappings
from ..shapes import Shape
from ..shapes import mask as mask_shape
from .config import Control
from .regions import build_prediction


def control_mappings(controls: Sequence[Control]) -> TargetMappings:
    """One label mapping per control that has one (:func:`~autoannotate.label_studio.config.map_controls`),
    keyed by the control's name, in the controls' order: what the driver maps onto."""
    return TargetMappings({c.name: c.mapping for c in controls if c.mapping is not None})


def image_prediction(task_key: Hashable, result: ImageResult, controls: Sequence[Control], version: str) -> dict:
    """The prediction for one task from a successful driver result mapped with
    :func:`control_mappings` of ``controls``: each control's shapes become its regions."""
    if result.size is None:
        raise ValueError(f"no prediction for {result.name}: {result.error or 'the image was not read'}")
    shapes = result.by_target()
    parts: list[tuple[Control, Sequence[Shape]]] = [(c, shapes.get(c.name, [])) for c in controls]
    return build_prediction(task_key, parts, result.size, version)


def mask_prediction(
    task_key: Any,
    results: Sequence[SegmentationResult],
    label: str | None,
    controls: Sequence[Control],
    size: tuple[int, int],
    version: str,
) -> dict:
    """An interactive function's masks (validated, see
    :func:`autoannotate.validation.validate_segmentation`) as one prediction: on every control
    (BrushLabels, PolygonLabels), each mask with the control's label matching ``label`` (the one
    the annotator selected; :meth:`Control.label_named`), else the control's first label."""
    parts = []
    for c in controls:
        target = c.label_named(label) or (c.labels[0] if c.labels else None)
        if target is None:
            continue
        parts.append((c, [mask_shape(target.id, r.mask, score=r.score) for r in results]))
    return build_prediction(task_key, parts, size, version)
