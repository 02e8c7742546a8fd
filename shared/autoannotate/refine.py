"""Turn a box detector into a mask/polygon detector with an interactive function.

:class:`BoxRefiner` is itself a detection function: it runs the detector, encodes the image once
with the interactive function (SAM, GrabCut, ...), and replaces each rectangle of the chosen labels
by the mask (or polygon) the interactive function draws inside it. The detector's score is kept,
since it is the detection confidence that review routing needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, cast

import PIL.Image

from .errors import BadParameterError
from .interface import (
    BoxSegmenting,
    DetectionFunction,
    DetectionFunctionContext,
    DetectionFunctionSpec,
    InteractiveFunction,
    InteractiveFunctionContext,
    InteractivePrompt,
    SegmentationResult,
    model_version,
)
from .outputs import mask_polygon
from .shapes import Shape
from .validation import validate_segmentation

OUTPUTS = ("mask", "polygon")


def segment_boxes(
    interactive: InteractiveFunction,
    context: InteractiveFunctionContext,
    encoding: Any,
    boxes: Sequence[Sequence[float]],
) -> list[SegmentationResult]:
    """One result per box; uses the function's batched ``segment_boxes`` when it has one."""
    if isinstance(interactive, BoxSegmenting):
        return list(interactive.segment_boxes(context, encoding, boxes))
    # InteractivePrompt checks at runtime that each box has four coordinates.
    box4 = [cast("tuple[float, float, float, float]", tuple(b)) for b in boxes]
    return [interactive.segment(context, encoding, InteractivePrompt(boxes=(b,)))[0] for b in box4]


class BoxRefiner:
    """``detector``'s rectangles -> masks (or polygons) drawn by ``interactive``.

    ``outputs`` maps function label names to ``"mask"`` or ``"polygon"``; labels not listed keep
    their rectangles. ``None`` refines every label to ``default_output``.

    A box whose mask comes back empty (or, for polygons, without an outline of 3+ vertices) is
    returned as the detector's rectangle, never dropped: the caller decides how to store it (the
    FiftyOne sink stores it as its box marked ``refined=False`` and counts it in the report).
    """

    def __init__(
        self,
        detector: DetectionFunction,
        interactive: InteractiveFunction,
        *,
        outputs: dict[str, str] | None = None,
        default_output: str = "mask",
    ) -> None:
        names = detector.spec.label_names
        if outputs is None:
            outputs = {n: default_output for n in names}
        bad = {k: v for k, v in outputs.items() if v not in OUTPUTS or k not in names}
        if bad:
            raise BadParameterError(f"cannot refine {bad}: outputs are {OUTPUTS}, labels are the detector's {names}")
        self.detector = detector
        self.interactive = interactive
        self.outputs = dict(outputs)
        self._spec = DetectionFunctionSpec(
            labels=tuple(replace(lbl, type="any") if lbl.name in self.outputs else lbl for lbl in detector.spec.labels)
        )
        self._refined_ids = {lbl.id: self.outputs[lbl.name] for lbl in detector.spec.labels if lbl.name in self.outputs}
        self.model_version = f"{model_version(detector)}+{model_version(interactive)}"

    @property
    def spec(self) -> DetectionFunctionSpec:
        return self._spec

    def detect(self, context: DetectionFunctionContext, image: PIL.Image.Image) -> list[Shape]:
        shapes = list(self.detector.detect(context, image))
        return self.refine(context, image, shapes)

    def refine(self, context: DetectionFunctionContext, image: PIL.Image.Image, shapes: Iterable[Shape]) -> list[Shape]:
        shapes = list(shapes)
        todo = [i for i, s in enumerate(shapes) if s.type == "rectangle" and s.label_id in self._refined_ids]
        if not todo:
            return shapes
        ictx = InteractiveFunctionContext(frame_name=context.frame_name)
        encoding = self.interactive.encode(ictx, image)
        results = validate_segmentation(
            segment_boxes(self.interactive, ictx, encoding, [shapes[i].bbox() or shapes[i].points for i in todo]),
            image.size,
            expected=len(todo),
            what="segment_boxes()",
            frame_name=context.frame_name,
        )
        out = list(shapes)
        for i, res in zip(todo, results):
            s = shapes[i]
            if self._refined_ids[s.label_id] == "polygon":
                poly = mask_polygon(res.mask)
                out[i] = replace(s, type="polygon", points=poly, rotation=0.0) if poly else s
            elif res.mask.any():
                out[i] = replace(s, type="mask", points=(), bitmap=res.mask, rotation=0.0)
        return out


def refined(function: Any, outputs: dict[str, str], refine_with: Any = None) -> Any:
    """``function`` whose boxes are refined into the ``outputs`` (label name -> ``"polygon"`` or
    ``"mask"``) by ``refine_with``: an interactive function, or its name (default ``auto``: the
    best SAM model whose weights are here, else GrabCut); ``function`` itself when nothing is."""
    if not outputs:
        return function
    from .auto import AUTO, load_interactive

    interactive = (
        load_interactive(refine_with or AUTO) if refine_with is None or isinstance(refine_with, str) else refine_with
    )
    return BoxRefiner(function, interactive, outputs=outputs)
