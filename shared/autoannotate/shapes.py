"""Shapes a function returns: frozen, in absolute pixels of the upright image, with a score.

Coordinates are flat tuples ``(x1, y1, x2, y2, ...)`` in pixels, x to the right, y down, origin
at the top-left corner of the image as the user sees it (after EXIF rotation):

- ``rectangle``: ``(x1, y1, x2, y2)``, top-left and bottom-right corners of the box before it is
  rotated; ``rotation`` turns it clockwise (y down) by that many degrees, in ``[0, 360)``, about
  its centre, as CVAT defines rotated rectangles (0 for every other shape type);
- ``polygon``: at least 3 vertices; ``polyline``: at least 2; ``points``: at least 1;
- ``mask``: no points; ``bitmap`` is a boolean HxW array the size of the image;
- ``skeleton``: no points; ``elements`` are keypoints (one per keypoint sublabel);
- ``tag``: a whole-image label, no points.

``score`` is the model's confidence in [0, 1], or ``None``. Shapes are never edited in place:
use :func:`dataclasses.replace` (drivers and mappings do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

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
    rotation: float = 0.0

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
            self.rotation,
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
            other.rotation,
        )

    __hash__ = None  # type: ignore[assignment]

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The shape's bounding box ``(x1, y1, x2, y2)`` in pixels, or None for tags/empty masks.

        For masks the box covers the set pixels: ``x2``/``y2`` are exclusive pixel edges. For a
        rotated rectangle it is the upright box around the four rotated corners.
        """
        if self.type == "mask":
            from .masks import mask_bbox

            return mask_bbox(self.bitmap)
        if self.type == "skeleton":
            pts = [p for e in self.elements if not e.outside for p in e.points]
        elif self.type == "rectangle" and self.rotation:
            pts = list(rotated_corners(self.points, self.rotation))
        else:
            pts = list(self.points)
        if not pts:
            return None
        xs, ys = pts[0::2], pts[1::2]
        return min(xs), min(ys), max(xs), max(ys)


def rotated_corners(points: Sequence[float], rotation: float) -> tuple[float, ...]:
    """The four corners ``(x, y) * 4`` of box ``points`` turned clockwise by ``rotation`` degrees
    about its centre: top-left, top-right, bottom-right, bottom-left of the unrotated box."""
    x1, y1, x2, y2 = (float(v) for v in points)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a = math.radians(rotation)
    cos, sin = math.cos(a), math.sin(a)
    out: list[float] = []
    for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)):
        dx, dy = x - cx, y - cy
        out += [cx + dx * cos - dy * sin, cy + dx * sin + dy * cos]
    return tuple(out)


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


def rectangle(label_id: int, points: Sequence[float], *, rotation: float = 0.0, **kwargs) -> Shape:
    """A box ``[x1, y1, x2, y2]`` (top-left, bottom-right) in pixels; ``rotation`` in degrees turns it
    clockwise about its centre (an oriented box), kept in ``[0, 360)``."""
    s = shape("rectangle", label_id, points, **kwargs)
    r = float(rotation)
    return replace(s, rotation=r % 360.0 if math.isfinite(r) else r) if r else s


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
