"""Any autoannotate function as a CVAT auto-annotation function (``cvat_sdk.auto_annotation``).

:func:`as_cvat_function` wraps a detection, tracking or interactive function; the result has the
``spec`` and methods CVAT's protocols ask for, so ``cvat-cli task auto-annotate``,
``cvat_sdk.auto_annotation.annotate_task`` and CVAT agents (``cvat-cli function run-agent``) run
it. ``autoannotate.cvat`` itself is a CVAT function module built from these:
``cvat-cli task auto-annotate 42 --function-module autoannotate.cvat -p function=str:yolox``.

- **Detection**: the spec is CVAT's (``DetectionFunctionSpec`` of ``PatchedLabelRequest``, same
  ids, names, types and attributes); ``detect`` runs the function, validates, thresholds and turns
  masks into polygons (``conv_mask_to_poly``) exactly as autoannotate's driver does, and returns
  CVAT's requests (rotated rectangles with ``rotation``, masks in CVAT's encoding, skeletons with
  ``outside`` keypoints, scores, attributes).
- **Tracking**: ``preprocess_image`` / ``init_tracking_state`` / ``track`` with CVAT's
  ``TrackableShape``.
- **Interaction**: ``InteractionFunctionSpec(min_pos_points=0, min_neg_points=0,
  min_bounding_boxes=0)`` (at least a positive point or a box is needed; an empty prompt gives
  nothing); each object's mask with its score as the ``CONFIDENCE`` attribute.
"""

from __future__ import annotations

from typing import Any

import attrs
import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
from cvat_sdk import models

from .. import interface as aa
from ..driver import process_output
from ..errors import BadFunctionError
from ..mapping import LabelMapping, target_labels_from_spec
from . import convert


def as_cvat_function(function: Any) -> Any:
    """``function`` (an autoannotate detection, tracking or interactive function) as a CVAT one."""
    if isinstance(function, aa.InteractiveFunction) and not hasattr(function, "spec"):
        return CvatInteractionExport(function)
    spec = getattr(function, "spec", None)
    if isinstance(spec, aa.TrackingFunctionSpec):
        return CvatTrackingExport(function)
    if isinstance(spec, aa.DetectionFunctionSpec):
        return CvatDetectionExport(function)
    raise BadFunctionError(
        f"{type(function).__name__} is not an autoannotate detection, tracking or interactive function"
    )


def _upright(image: PIL.Image.Image) -> PIL.Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


class CvatDetectionExport:
    """An autoannotate detection function following ``cvat_sdk.auto_annotation.DetectionFunction``."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.spec = convert.spec_to_cvat(function.spec)
        self._mappings: dict[bool, LabelMapping] = {}

    def _mapping(self, conv_mask_to_poly: bool) -> LabelMapping:
        """The function's own labels (ids unchanged); with ``conv_mask_to_poly`` its mask labels
        also take the polygons the driver makes of their masks (CVAT expects polygons there)."""
        if conv_mask_to_poly not in self._mappings:
            targets = target_labels_from_spec(self.function.spec, conv_mask_to_poly=conv_mask_to_poly)
            self._mappings[conv_mask_to_poly] = LabelMapping.build(self.function.spec, targets)
        return self._mappings[conv_mask_to_poly]

    def detect(self, context: Any, image: PIL.Image.Image) -> list:
        image = _upright(image)
        ctx = aa.DetectionFunctionContext(
            frame_name=str(context.frame_name),
            conf_threshold=context.conf_threshold,
            conv_mask_to_poly=bool(context.conv_mask_to_poly),
        )
        raw = self.function.detect(ctx, image)
        shapes = process_output(self.function.spec, raw, image.size, ctx, self._mapping(ctx.conv_mask_to_poly))
        return [convert.shape_to_cvat(s) for s in shapes]


class CvatTrackingExport:
    """An autoannotate tracking function following ``cvat_sdk.auto_annotation.TrackingFunction``."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.spec = cvataa.TrackingFunctionSpec(supported_shape_types=function.spec.supported_shape_types)
        self._pre = function.preprocess_image if isinstance(function, aa.Preprocessing) else None

    def preprocess_image(self, context: Any, image: PIL.Image.Image) -> _Frame:
        image = _upright(image)
        return _Frame(self._pre(aa.TrackingFunctionContext(), image) if self._pre else image, image.size)

    def init_tracking_state(self, context: Any, pp_image: _Frame, shape: cvataa.TrackableShape) -> Any:
        ours = convert.trackable_from_cvat(shape, pp_image.size, "the shape to track")
        ctx = aa.TrackingFunctionShapeContext(original_shape_type=context.original_shape_type)
        return self.function.init_tracking_state(ctx, pp_image.value, ours)

    def track(self, context: Any, pp_image: _Frame, state: Any) -> cvataa.TrackableShape | None:
        ctx = aa.TrackingFunctionShapeContext(original_shape_type=context.original_shape_type)
        try:
            out = self.function.track(ctx, pp_image.value, state)
        except aa.TrackLost:
            return None
        return None if out is None else convert.trackable_to_cvat(out)


@attrs.frozen
class _Frame:
    value: Any
    size: tuple[int, int]


class CvatInteractionExport:
    """An autoannotate interactive function following ``cvat_sdk.auto_annotation.InteractionFunction``."""

    spec = cvataa.InteractionFunctionSpec(min_pos_points=0, min_neg_points=0, min_bounding_boxes=0)

    def __init__(self, function: Any) -> None:
        self.function = function

    def preprocess_image(self, context: Any, image: PIL.Image.Image) -> Any:
        return self.function.encode(aa.InteractiveFunctionContext(), _upright(image))

    def detect(self, context: Any, pp_image: Any, prompts: Any) -> list[cvataa.InteractionResultShape]:
        box = prompts.bounding_box
        if not prompts.pos_points and box is None:
            return []
        prompt = aa.InteractivePrompt(
            positive_points=tuple(prompts.pos_points),
            negative_points=tuple(prompts.neg_points),
            boxes=() if box is None else ((box[0][0], box[0][1], box[1][0], box[1][1]),),
        )
        out = []
        for r in self.function.segment(aa.InteractiveFunctionContext(), pp_image, prompt):
            attributes = []
            if r.score is not None:
                attributes.append(
                    models.AttributeValRequest(
                        spec_id=int(cvataa.InteractionResultAttributes.CONFIDENCE), value=str(float(r.score))
                    )
                )
            mask = np.asarray(r.mask, dtype=bool)
            out.append(cvataa.InteractionResultShape(type="mask", points=convert.encode(mask), attributes=attributes))
        return out
