"""The auto-annotation protocol: function specs (defined in :mod:`autoannotate.specs`, importable
from here), invocation contexts, function Protocols and the optional capabilities (one small
Protocol each; docs/functions.md).

A *detection function* is any object with a ``spec`` (a :class:`DetectionFunctionSpec`) and a
``detect(context, image)`` method returning shapes (:mod:`autoannotate.shapes`); a module that
defines both qualifies, and so does a tiny test object. An *interactive function* turns prompts
(clicks, boxes) into masks; its expensive per-image ``encode`` is separate from the cheap
per-prompt ``segment`` so callers can cache encodings. Specs are frozen and validated when built
(:class:`~autoannotate.errors.BadFunctionError` at construction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import PIL.Image

from . import specs as _specs
from .errors import BadFunctionError
from .specs import *  # noqa: F403 - the specs are part of the protocol (specs.__all__)
from .specs import ATTRIBUTE_INPUT_TYPES, LABEL_TYPES, SHAPE_TYPES, DetectionFunctionSpec

#: The protocol, specs included (``from autoannotate.interface import LabelSpec`` works).
__all__ = [
    "ATTRIBUTE_INPUT_TYPES",
    "LABEL_TYPES",
    "SHAPE_TYPES",
    *_specs.__all__,
    "BatchDetection",
    "BoxSegmenting",
    "DetectionFunction",
    "DetectionFunctionContext",
    "InteractiveFunction",
    "InteractiveFunctionContext",
    "InteractivePrompt",
    "OpenVocabulary",
    "Preprocessing",
    "SegmentationResult",
    "TRACKABLE_SHAPE_TYPES",
    "TrackLost",
    "TrackableShape",
    "TrackingFunction",
    "TrackingFunctionContext",
    "TrackingFunctionShapeContext",
    "TrackingFunctionSpec",
    "Versioned",
    "VideoSessions",
    "model_version",
    "function_name",
]


# --------------------------------------------------------------------------------------------
# Contexts


@dataclass(frozen=True)
class DetectionFunctionContext:
    """Invocation inputs for one ``detect`` call.

    - ``frame_name``: the image's name (file name or task/sample id) for logs and errors.
    - ``conf_threshold``: drop shapes scoring below this, in [0, 1]; ``None`` lets the function
      use its own default. ``0.0`` is a real threshold (keep everything).
    - ``conv_mask_to_poly``: return polygons instead of masks.
    """

    frame_name: str = ""
    conf_threshold: float | None = None
    conv_mask_to_poly: bool = False


@dataclass(frozen=True)
class InteractiveFunctionContext:
    """Invocation inputs for an interactive call; ``frame_name`` names the image."""

    frame_name: str = ""


@dataclass(frozen=True)
class InteractivePrompt:
    """What the user gave on one image, in absolute pixels of the upright image.

    - ``positive_points`` / ``negative_points``: ``[(x, y), ...]`` clicks on / off the object.
    - ``boxes``: ``[(x1, y1, x2, y2), ...]``; several boxes mean several objects.
    - ``label``: the label the user chose (passed through to the result).
    - ``mask_input``: optional low-resolution logits from a previous result, for refinement.
    """

    positive_points: tuple[tuple[float, float], ...] = ()
    negative_points: tuple[tuple[float, float], ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    label: str | None = None
    mask_input: Any = None

    def __post_init__(self) -> None:
        pos = tuple((float(x), float(y)) for x, y in self.positive_points)
        neg = tuple((float(x), float(y)) for x, y in self.negative_points)
        boxes = tuple(tuple(float(v) for v in b) for b in self.boxes)
        coords = [v for p in pos + neg for v in p] + [v for b in boxes for v in b]
        if not all(math.isfinite(v) for v in coords):
            raise ValueError("prompt coordinates must be finite numbers")
        for b in boxes:
            if len(b) != 4 or b[2] < b[0] or b[3] < b[1]:
                raise ValueError(f"a prompt box must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1, got {b}")
        if not pos and not boxes:
            raise ValueError("a prompt needs at least one positive point or one box")
        object.__setattr__(self, "positive_points", pos)
        object.__setattr__(self, "negative_points", neg)
        object.__setattr__(self, "boxes", boxes)


@dataclass(frozen=True)
class SegmentationResult:
    """One object's mask from an interactive function.

    ``mask`` is a boolean HxW array over the whole image; ``score`` the model's quality estimate
    in [0, 1] (``None`` when the method has none); ``logits`` optional low-resolution logits that
    can be fed back as ``InteractivePrompt.mask_input``.
    """

    mask: np.ndarray
    score: float | None = None
    logits: Any = field(default=None, repr=False)


# --------------------------------------------------------------------------------------------
# Protocols


@runtime_checkable
class DetectionFunction(Protocol):
    """Any object with ``spec`` and ``detect`` qualifies.

    ``detect(context, image)`` receives an upright RGB ``PIL.Image`` and returns a list of shapes
    whose ``label_id`` are ids of ``spec``. Capabilities: BatchDetection, OpenVocabulary, Versioned.
    """

    @property
    def spec(self) -> DetectionFunctionSpec: ...

    def detect(self, context: DetectionFunctionContext, image: PIL.Image.Image) -> list: ...


@runtime_checkable
class InteractiveFunction(Protocol):
    """Prompts in, masks out. ``encode`` is the expensive per-image step (cache its result);
    ``segment`` answers one prompt from an encoding and returns one result per object (one per
    box, or one for clicks alone). Encodings expose ``nbytes`` (caches budget memory).
    Capabilities: BoxSegmenting, Versioned."""

    def encode(self, context: InteractiveFunctionContext, image: PIL.Image.Image) -> Any: ...

    def segment(
        self, context: InteractiveFunctionContext, encoding: Any, prompt: InteractivePrompt
    ) -> list[SegmentationResult]: ...


# --------------------------------------------------------------------------------------------
# Tracking

TRACKABLE_SHAPE_TYPES = ("rectangle", "polygon", "points", "mask")


@dataclass(frozen=True)
class TrackingFunctionSpec:
    """What a tracking function can follow: a non-empty subset of ``rectangle``, ``polygon``,
    ``points`` and ``mask``."""

    supported_shape_types: tuple[str, ...]

    def __post_init__(self) -> None:
        types = tuple(self.supported_shape_types)
        object.__setattr__(self, "supported_shape_types", types)
        if not types:
            raise BadFunctionError("a tracking function must support at least one shape type")
        bad = [t for t in types if t not in TRACKABLE_SHAPE_TYPES]
        if bad or len(set(types)) != len(types):
            raise BadFunctionError(
                f"supported_shape_types must be distinct values of {list(TRACKABLE_SHAPE_TYPES)}, got {list(types)}"
            )


@dataclass(frozen=True)
class TrackingFunctionContext:
    """Inputs of ``preprocess_image``; ``frame_index`` is the frame's position in the video."""

    frame_index: int = 0


@dataclass(frozen=True)
class TrackingFunctionShapeContext:
    """Inputs of ``init_tracking_state`` / ``track``: the type of the shape being tracked."""

    original_shape_type: str
    frame_index: int = 0


@dataclass(frozen=True, eq=False)
class TrackableShape:
    """A shape to follow: ``type`` and flat pixel ``points`` (``(x1, y1, x2, y2)`` for rectangles);
    masks carry a boolean H x W ``bitmap`` instead of points."""

    type: str
    points: tuple[float, ...] = ()
    bitmap: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "points", tuple(float(v) for v in np.asarray(self.points, dtype=np.float64).reshape(-1))
        )

    def box(self) -> tuple[float, float, float, float] | None:
        """Bounding box ``(x1, y1, x2, y2)`` in pixels (None for an empty mask)."""
        if self.type == "mask":
            from .masks import mask_bbox

            return mask_bbox(self.bitmap)
        xs, ys = self.points[0::2], self.points[1::2]
        return (min(xs), min(ys), max(xs), max(ys)) if xs else None


class TrackLost(Exception):  # noqa: N818 - a signal of the protocol, not an error
    """Raised by a tracking function's ``track`` when the object is lost, with the reason as its
    message: the track ends on that frame and its ``end_reason`` says why (returning ``None`` ends
    it without a reason)."""


@runtime_checkable
class TrackingFunction(Protocol):
    """``spec`` (a :class:`TrackingFunctionSpec`), ``init_tracking_state(context, pp_image, shape)``
    returning a state, and ``track(context, pp_image, state)`` returning the shape on the new frame,
    ``None`` when the object is lost, or raising :class:`TrackLost` (lost, and why). A rectangle
    may extend past the frame (the whole box the object is predicted to occupy): the driver clips
    it, and ends the track when less than half of it is inside. Optional
    ``preprocess_image(context, image)`` does the per-frame work shared by all tracked shapes (its
    result is the ``pp_image``). Capabilities: Preprocessing, VideoSessions, Versioned."""

    @property
    def spec(self) -> TrackingFunctionSpec: ...

    def init_tracking_state(
        self, context: TrackingFunctionShapeContext, pp_image: Any, shape: TrackableShape
    ) -> Any: ...

    def track(self, context: TrackingFunctionShapeContext, pp_image: Any, state: Any) -> TrackableShape | None: ...


# --------------------------------------------------------------------------------------------
# Optional capabilities, checked with isinstance where they are used


@runtime_checkable
class BatchDetection(Protocol):
    """``detect_batch(contexts, images)``: one list of shapes per image, in order (batches of 2+)."""

    def detect_batch(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list]: ...


@runtime_checkable
class OpenVocabulary(Protocol):
    """``for_classes(classes, prompts)``: the same model (shared) finding other classes; ``prompts``
    maps a class name to the texts that find it. Label Studio builds one per labeling config."""

    def for_classes(self, classes: Sequence[str], prompts: Mapping[str, Any] | None = None) -> DetectionFunction: ...


@runtime_checkable
class VideoSessions(Protocol):
    """``video_session(masks=False)``: one session for all the objects of a video (``add`` and
    ``track``, see :mod:`autoannotate.tracking`); with ``masks``, tracked rectangles carry masks."""

    def video_session(self, masks: bool = False) -> Any: ...


@runtime_checkable
class BoxSegmenting(Protocol):
    """``segment_boxes(context, encoding, boxes)``: one result per ``(x1, y1, x2, y2)`` box, in order."""

    def segment_boxes(
        self, context: InteractiveFunctionContext, encoding: Any, boxes: Sequence[Sequence[float]]
    ) -> list[SegmentationResult]: ...


@runtime_checkable
class Preprocessing(Protocol):
    """``preprocess_image(context, image)``: per-frame work shared by every tracked object (the ``pp_image``)."""

    def preprocess_image(self, context: TrackingFunctionContext, image: PIL.Image.Image) -> Any: ...


@runtime_checkable
class Versioned(Protocol):
    """``model_version``: the model and weights, recorded by runs and on Label Studio predictions."""

    model_version: str


def function_name(function: object) -> str:
    """What to call a function object in records and messages: a module's name, else its type's."""
    return function.__name__ if isinstance(function, ModuleType) else type(function).__name__


def model_version(function: object, default: str | None = None) -> str:
    """``function.model_version`` when it is :class:`Versioned`, else ``default`` (else :func:`function_name`)."""
    if isinstance(function, Versioned):
        return str(function.model_version)
    return default if default is not None else function_name(function)
