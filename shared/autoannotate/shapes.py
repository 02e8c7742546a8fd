"""Shapes a function returns: frozen, in absolute pixels of the upright image, with a score.

Coordinates are flat tuples ``(x1, y1, x2, y2, ...)`` in pixels, x to the right, y down, origin
at the top-left corner of the image as the user sees it (after EXIF rotation):

- ``rectangle``: ``(x1, y1, x2, y2)``, top-left and bottom-right corners;
- ``polygon``: at least 3 vertices; ``polyline``: at least 2; ``points``: at least 1;
- ``mask``: no points; ``bitmap`` is a boolean HxW array the size of the image;
- ``skeleton``: no points; ``elements`` are keypoints (one per keypoint sublabel);
- ``tag``: a whole-image label, no points.

``score`` is the model's confidence in [0, 1], or ``None``. Shapes are never edited in place:
use :func:`dataclasses.replace` (drivers and mappings do).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AttributeValue:
    """An attribute value on a shape: ``spec_id`` is the attribute's id in the label's spec."""

    spec_id: int
    value: str


AttributesArg = Mapping[int, object] | Iterable[AttributeValue] | None


@dataclass(frozen=True, eq=False)
class Shape:
    """One annotation. Build it with the factories below rather than directly."""

    type: str
    label_id: int
    points: tuple[float, ...] = ()
    score: float | None = None
    attributes: tuple[AttributeValue, ...] = ()
    elements: tuple[Shape, ...] = ()
    occluded: bool = False
    outside: bool = False
    bitmap: np.ndarray | None = field(default=None, repr=False)
    track_id: int | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Shape):
            return NotImplemented
        same_bitmap = (self.bitmap is None and other.bitmap is None) or (
            self.bitmap is not None
            and other.bitmap is not None
            and self.bitmap.shape == other.bitmap.shape
            and bool(np.array_equal(self.bitmap, other.bitmap))
        )
        return same_bitmap and (
            self.type,
            self.label_id,
            self.points,
            self.score,
            self.attributes,
            self.elements,
            self.occluded,
            self.outside,
            self.track_id,
        ) == (
            other.type,
            other.label_id,
            other.points,
            other.score,
            other.attributes,
            other.elements,
            other.occluded,
            other.outside,
            other.track_id,
        )

    __hash__ = None  # type: ignore[assignment]

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The shape's bounding box ``(x1, y1, x2, y2)`` in pixels, or None for tags/empty masks.

        For masks the box covers the set pixels: ``x2``/``y2`` are exclusive pixel edges.
        """
        if self.type == "mask":
            from .masks import mask_bbox

            return mask_bbox(self.bitmap)
        if self.type == "skeleton":
            pts = [p for e in self.elements if not e.outside for p in e.points]
        else:
            pts = list(self.points)
        if not pts:
            return None
        xs, ys = pts[0::2], pts[1::2]
        return min(xs), min(ys), max(xs), max(ys)


def attribute_vals_from_dict(values: Mapping[int, object]) -> tuple[AttributeValue, ...]:
    """``{attribute_id: value}`` to attribute values (values are turned into strings;
    booleans become ``"true"``/``"false"``)."""
    return tuple(AttributeValue(int(k), _attr_str(v)) for k, v in values.items())


def _attr_str(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _attrs(attributes: AttributesArg) -> tuple[AttributeValue, ...]:
    if attributes is None:
        return ()
    if isinstance(attributes, Mapping):
        return attribute_vals_from_dict(attributes)
    return tuple(attributes)


def _points(points: Iterable[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(points, dtype=np.float64).reshape(-1))


def shape(
    type: str,
    label_id: int,
    points: Sequence[float] = (),
    *,
    score: float | None = None,
    attributes: AttributesArg = None,
    occluded: bool = False,
) -> Shape:
    """A shape of any point-based type (``rectangle``, ``polygon``, ``polyline``, ``points``)."""
    return Shape(
        type=type,
        label_id=int(label_id),
        points=_points(points),
        score=None if score is None else float(score),
        attributes=_attrs(attributes),
        occluded=bool(occluded),
    )


def rectangle(label_id: int, points: Sequence[float], **kwargs) -> Shape:
    """A box ``[x1, y1, x2, y2]`` (top-left, bottom-right) in pixels."""
    return shape("rectangle", label_id, points, **kwargs)


def polygon(label_id: int, points: Sequence[float], **kwargs) -> Shape:
    """A closed polygon ``[x1, y1, x2, y2, ...]`` with at least 3 vertices."""
    return shape("polygon", label_id, points, **kwargs)


def polyline(label_id: int, points: Sequence[float], **kwargs) -> Shape:
    """An open line ``[x1, y1, x2, y2, ...]`` with at least 2 vertices."""
    return shape("polyline", label_id, points, **kwargs)


def points(label_id: int, points: Sequence[float], **kwargs) -> Shape:
    """One or more points ``[x1, y1, ...]``."""
    return shape("points", label_id, points, **kwargs)


def mask(
    label_id: int,
    bitmap: np.ndarray,
    *,
    score: float | None = None,
    attributes: AttributesArg = None,
    occluded: bool = False,
) -> Shape:
    """A mask: ``bitmap`` is a boolean (or 0/1) HxW array of the whole image."""
    arr = np.asarray(bitmap)
    if arr.dtype != bool:
        arr = arr.astype(bool) if arr.ndim == 2 else arr
    return Shape(
        type="mask",
        label_id=int(label_id),
        bitmap=arr,
        score=None if score is None else float(score),
        attributes=_attrs(attributes),
        occluded=bool(occluded),
    )


def keypoint(
    label_id: int,
    points: Sequence[float],
    *,
    occluded: bool = False,
    outside: bool = False,
    score: float | None = None,
    attributes: AttributesArg = None,
) -> Shape:
    """One keypoint ``[x, y]`` of a skeleton; ``label_id`` is the keypoint's sublabel id.
    ``occluded``: present but not visible; ``outside``: not in the image at all."""
    return Shape(
        type="points",
        label_id=int(label_id),
        points=_points(points),
        occluded=bool(occluded),
        outside=bool(outside),
        score=None if score is None else float(score),
        attributes=_attrs(attributes),
    )


def skeleton(
    label_id: int,
    elements: Iterable[Shape],
    *,
    score: float | None = None,
    attributes: AttributesArg = None,
) -> Shape:
    """A skeleton made of :func:`keypoint` elements, one per keypoint sublabel of the label."""
    return Shape(
        type="skeleton",
        label_id=int(label_id),
        elements=tuple(elements),
        score=None if score is None else float(score),
        attributes=_attrs(attributes),
    )


def tag(label_id: int, *, score: float | None = None, attributes: AttributesArg = None) -> Shape:
    """A whole-image label (classification)."""
    return Shape(
        type="tag",
        label_id=int(label_id),
        score=None if score is None else float(score),
        attributes=_attrs(attributes),
    )
