"""Segment Anything as a tracking function: a mask, polygon or rectangle is propagated frame to
frame with the previous frame's box and mask (low-resolution logits) as prompts.

``preprocess_image`` runs SAM's image encoder once per frame (shared by every tracked object);
``track`` costs one decoder call per object. An empty mask means the object is lost (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Unpack

import PIL.Image

from ..interface import (
    InteractiveFunctionContext,
    InteractivePrompt,
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
)
from ..masks import mask_bbox, mask_to_polygon
from ..registry import FunctionRecord
from ..signatures import declare
from . import sam
from .sam import LoadingParameters, create_parameters


@dataclass
class SamTrackState:
    box: tuple[float, float, float, float]
    logits: Any
    min_pixels: int


class SamTracker:
    spec = TrackingFunctionSpec(supported_shape_types=("rectangle", "polygon", "mask"))

    def __init__(self, sam: Any, min_pixels: int = 16) -> None:
        self.sam = sam
        self.min_pixels = int(min_pixels)
        self.model_version = f"{sam.model_version}-tracker"

    def preprocess_image(self, context: TrackingFunctionContext, image: PIL.Image.Image) -> Any:
        return self.sam.encode(InteractiveFunctionContext(frame_name=f"frame {context.frame_index}"), image)

    def _segment(self, enc: Any, box: tuple[float, float, float, float], logits: Any) -> Any:
        prompt = InteractivePrompt(boxes=(box,), mask_input=logits)
        return self.sam.segment(InteractiveFunctionContext(), enc, prompt)[0]

    def init_tracking_state(
        self, context: TrackingFunctionShapeContext, pp_image: Any, shape: TrackableShape
    ) -> SamTrackState:
        """The shape's bounding box prompts SAM on its own frame; the resulting logits seed the
        next frame's prompt (for masks and polygons too: SAM's mask prompt is its own logits)."""
        box = shape.box()
        if box is None:
            raise ValueError("cannot track an empty shape")
        return SamTrackState(box, self._segment(pp_image, box, None).logits, self.min_pixels)

    def track(
        self, context: TrackingFunctionShapeContext, pp_image: Any, state: SamTrackState
    ) -> TrackableShape | None:
        result = self._segment(pp_image, state.box, state.logits)
        mask = result.mask
        if int(mask.sum()) < max(state.min_pixels, 1):
            return None
        state.box = mask_bbox(mask)  # type: ignore[assignment]
        state.logits = result.logits
        kind = context.original_shape_type
        if kind == "rectangle":
            return TrackableShape("rectangle", state.box)
        if kind == "polygon":
            poly = mask_to_polygon(mask)
            return TrackableShape("polygon", tuple(poly)) if poly else None
        return TrackableShape("mask", bitmap=mask)


class SamTrackerParameters(LoadingParameters, total=False):
    """The parameters of :func:`create`."""

    model_type: str
    min_pixels: int


@declare({"model_type": "vit_b", **create_parameters(min_pixels=16)}, SamTrackerParameters)
def create(**params: Unpack[SamTrackerParameters]) -> SamTracker:
    """SAM tracker; parameters as in ``sam`` (``device``, ``dtype`` too) plus ``min_pixels``
    (smaller masks count as lost)."""
    fn = sam.create(
        model_type=params["model_type"],
        checkpoint=params["checkpoint"],
        pretrained=params["pretrained"],
        device=params["device"],
        multimask="false",
        dtype=params["dtype"],
    )
    return SamTracker(fn, params["min_pixels"])


#: This function in the registry (:mod:`autoannotate.registry`); its weights are SAM's.
FUNCTION = FunctionRecord(
    name="sam_tracker", kind="tracking", extras=("sam",), requires=("segment_anything", "torch"), license="Apache-2.0"
)
