"""The auto-annotation protocol: function specs, invocation contexts, function Protocols and the
optional capabilities (one small Protocol each; docs/functions.md).

A *detection function* is any object with a ``spec`` (a :class:`DetectionFunctionSpec`) and a
``detect(context, image)`` method returning shapes (:mod:`autoannotate.shapes`); a module that
defines both qualifies, and so does a tiny test object. An *interactive function* turns prompts
(clicks, boxes) into masks; its expensive per-image ``encode`` is separate from the cheap
per-prompt ``segment`` so callers can cache encodings. Specs are frozen and validated when built
(:class:`~autoannotate.errors.BadFunctionError` at construction).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import PIL.Image

from .errors import BadFunctionError

#: Shape types a function may return.
SHAPE_TYPES = ("rectangle", "polygon", "polyline", "points", "mask", "skeleton", "tag")
#: Label types a spec may declare. ``any`` admits every shape type except ``skeleton``.
LABEL_TYPES = ("any",) + SHAPE_TYPES
ATTRIBUTE_INPUT_TYPES = ("checkbox", "number", "radio", "select", "text")


# --------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute a label's shapes may carry. ``values`` are strings, as in CVAT:

    - ``checkbox``: ``()`` or one default, ``"true"`` or ``"false"``;
    - ``number``: exactly ``(min, max, step)`` (see :func:`number_attribute_values`);
    - ``radio`` / ``select``: the allowed values, at least one, no repeats;
    - ``text``: ``()`` or one default text.
    """

    name: str
    id: int
    input_type: str
    values: tuple[str, ...] = ()
    default_value: str | None = None
    mutable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        where = f"attribute {self.name!r} (id {self.id})"
        _check_name_and_id(self.name, self.id, "attribute")
        if self.input_type not in ATTRIBUTE_INPUT_TYPES:
            raise BadFunctionError(
                f"{where}: input_type {self.input_type!r} is not one of {list(ATTRIBUTE_INPUT_TYPES)}"
            )
        v = self.values
        if self.input_type == "checkbox":
            if len(v) > 1 or any(x not in ("true", "false") for x in v):
                raise BadFunctionError(f"{where}: checkbox values must be () or ('true',) / ('false',), got {v}")
        elif self.input_type == "number":
            if len(v) != 3:
                raise BadFunctionError(f"{where}: number values must be (min, max, step), got {v}")
            try:
                lo, hi, step = (float(x) for x in v)
            except ValueError:
                raise BadFunctionError(f"{where}: number values must be numbers, got {v}") from None
            if not all(math.isfinite(x) for x in (lo, hi, step)) or step <= 0 or lo > hi:
                raise BadFunctionError(f"{where}: number values need finite min <= max and step > 0, got {v}")
        elif self.input_type in ("radio", "select"):
            if not v:
                raise BadFunctionError(f"{where}: {self.input_type} attributes need at least one value")
            if len(set(v)) != len(v):
                raise BadFunctionError(f"{where}: repeated values in {v}")
        elif self.input_type == "text" and len(v) > 1:
            raise BadFunctionError(f"{where}: text attributes take at most one default value, got {v}")
        if self.default_value is not None and self.input_type in ("radio", "select"):
            if self.default_value not in v:
                raise BadFunctionError(f"{where}: default {self.default_value!r} is not among {v}")

    def accepts(self, value: str) -> bool:
        """Whether ``value`` is a legal value of this attribute."""
        if self.input_type == "checkbox":
            return value in ("true", "false")
        if self.input_type in ("radio", "select"):
            return value in self.values
        if self.input_type == "number":
            try:
                x = float(value)
            except (TypeError, ValueError):
                return False
            lo, hi, _ = (float(s) for s in self.values)
            return math.isfinite(x) and lo <= x <= hi
        return isinstance(value, str)


@dataclass(frozen=True)
class LabelSpec:
    """A label a function can produce. ``type`` restricts which shapes it may have.

    Skeleton labels carry their keypoints as ``sublabels`` (each of type ``points``).
    """

    name: str
    id: int
    type: str = "any"
    attributes: tuple[AttributeSpec, ...] = ()
    sublabels: tuple[LabelSpec, ...] = ()
    color: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "sublabels", tuple(self.sublabels))
        _check_name_and_id(self.name, self.id, "label")
        where = f"label {self.name!r} (id {self.id})"
        if self.type not in LABEL_TYPES:
            raise BadFunctionError(f"{where}: type {self.type!r} is not one of {list(LABEL_TYPES)}")
        for a in self.attributes:
            if not isinstance(a, AttributeSpec):
                raise BadFunctionError(f"{where}: attributes must be made with attribute_spec(), got {a!r}")
        _check_unique(self.attributes, f"attributes of {where}")
        if self.type == "skeleton":
            if not self.sublabels:
                raise BadFunctionError(f"{where}: a skeleton label needs at least one keypoint sublabel")
            for s in self.sublabels:
                if not isinstance(s, LabelSpec) or s.type != "points":
                    raise BadFunctionError(f"{where}: skeleton sublabels must be keypoint_spec(), got {s!r}")
            _check_unique(self.sublabels, f"sublabels of {where}")
        elif self.sublabels:
            raise BadFunctionError(f"{where}: only skeleton labels may have sublabels")

    def allows(self, shape_type: str) -> bool:
        """Whether a shape of ``shape_type`` may carry this label."""
        if self.type == "any":
            return shape_type != "skeleton"
        return self.type == shape_type

    def attribute(self, attribute_id: int) -> AttributeSpec | None:
        return next((a for a in self.attributes if a.id == attribute_id), None)

    def sublabel(self, sublabel_id: int) -> LabelSpec | None:
        return next((s for s in self.sublabels if s.id == sublabel_id), None)


@dataclass(frozen=True)
class DetectionFunctionSpec:
    """What a detection function can produce: its labels, with unique ids and unique names."""

    labels: tuple[LabelSpec, ...]

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        object.__setattr__(self, "labels", labels)
        for label in labels:
            if not isinstance(label, LabelSpec):
                raise BadFunctionError(f"spec labels must be made with label_spec(), got {label!r}")
        _check_unique(labels, "labels of the spec")
        object.__setattr__(self, "_by_id", {label.id: label for label in labels})

    def label(self, label_id: int) -> LabelSpec | None:
        """The label with this id, or None."""
        return self._by_id.get(label_id)  # type: ignore[attr-defined]

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


def _check_name_and_id(name: Any, id_: Any, what: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise BadFunctionError(f"{what} names must be non-empty strings, got {name!r}")
    if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
        raise BadFunctionError(f"{what} {name!r}: id must be an integer, got {id_!r}")


def _check_unique(items: Sequence[Any], where: str) -> None:
    ids = [i.id for i in items]
    names = [i.name for i in items]
    dup_ids = sorted({i for i in ids if ids.count(i) > 1})
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_ids:
        raise BadFunctionError(f"duplicate ids in {where}: {dup_ids}")
    if dup_names:
        raise BadFunctionError(f"duplicate names in {where}: {dup_names}")


# Factories (the public, CVAT-like way to build specs)


def label_spec(
    name: str,
    id: int,
    *,
    type: str = "any",
    attributes: Iterable[AttributeSpec] = (),
    color: str | None = None,
) -> LabelSpec:
    """A label of the function's spec. ``type`` is ``any`` or one shape type."""
    return LabelSpec(name=name, id=id, type=type, attributes=tuple(attributes), color=color)


def skeleton_label_spec(
    name: str,
    id: int,
    sublabels: Iterable[LabelSpec],
    *,
    attributes: Iterable[AttributeSpec] = (),
    color: str | None = None,
) -> LabelSpec:
    """A skeleton label; ``sublabels`` are its keypoints, made with :func:`keypoint_spec`."""
    return LabelSpec(
        name=name, id=id, type="skeleton", attributes=tuple(attributes), sublabels=tuple(sublabels), color=color
    )


def keypoint_spec(name: str, id: int, *, attributes: Iterable[AttributeSpec] = ()) -> LabelSpec:
    """One keypoint (sublabel) of a skeleton label."""
    return LabelSpec(name=name, id=id, type="points", attributes=tuple(attributes))


def attribute_spec(
    name: str, id: int, input_type: str, values: Sequence[str] = (), default_value: str | None = None
) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type=input_type, values=tuple(values), default_value=default_value)


def checkbox_attribute_spec(name: str, id: int, default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="checkbox", values=(), default_value=default_value)


def number_attribute_values(min_value: float, max_value: float, step: float = 1) -> list[str]:
    """The ``values`` of a number attribute: ``[min, max, step]`` as strings."""
    return [_num(min_value), _num(max_value), _num(step)]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(float(x))


def number_attribute_spec(name: str, id: int, values: Sequence[str], default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="number", values=tuple(values), default_value=default_value)


def radio_attribute_spec(name: str, id: int, values: Sequence[str], default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="radio", values=tuple(values), default_value=default_value)


def select_attribute_spec(name: str, id: int, values: Sequence[str], default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="select", values=tuple(values), default_value=default_value)


def text_attribute_spec(name: str, id: int, default_value: str | None = None) -> AttributeSpec:
    return AttributeSpec(name=name, id=id, input_type="text", values=(), default_value=default_value)


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


def model_version(function: object, default: str | None = None) -> str:
    """``function.model_version`` when it is :class:`Versioned`, else ``default`` (else its type's name)."""
    if isinstance(function, Versioned):
        return str(function.model_version)
    return default if default is not None else type(function).__name__
