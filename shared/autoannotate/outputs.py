"""The output stage: validated shapes -> the output type a target asked for, in pixels.

Every front end stores a shape as one of a few *output types*; this module is the one table that
says which shape becomes what, so FiftyOne (:mod:`autoannotate.fiftyone.convert`), Label Studio
(:mod:`autoannotate.label_studio.regions`) and COCO files (:mod:`autoannotate.export`) only change
units (relative coordinates, percent, COCO's ``[x, y, w, h]``) on top of it.

Output types (:data:`OUTPUT_TYPES`) and what :func:`to_output` returns for them, all in absolute
pixels of the upright image, as :class:`~autoannotate.shapes.Shape` objects that keep the input's
label, score, attributes and track id:

============  =================================================================================
``box``       a ``rectangle``: a rectangle as it is (a rotated one keeps its ``rotation``), any
              other shape as its :func:`derived_box` (upright), clipped to the image; None when
              nothing of it is inside the image, or when a line's or a point's box has no area
              (a model's flat rectangle is kept, as the model gave it)
``polygon``   a ``polygon`` (closed area): a polygon as it is, a mask as :func:`mask_polygon`;
              a rectangle gives None (boxes become polygons by refinement, or the caller's own
              box fallback through :func:`box_corners`)
``polyline``  a ``polyline`` (open) for a polyline, or a ``polygon`` (closed outline) for an area:
              a polygon's vertices, a mask's :func:`mask_polygon`, a rectangle's
              :func:`box_corners` (an oriented box drawn as its outline)
``mask``      a ``mask`` the size of the image: a mask as it is, a polygon rasterized
              (:func:`~autoannotate.masks.polygon_to_mask`); a rectangle gives None
``keypoints`` ``points`` or a ``skeleton`` as they are
``tag``       a ``tag`` as it is
============  =================================================================================

Anything else gives None: the shape cannot be shown as that output type.

The two rules every front end shares:

- **mask -> polygon** (:func:`mask_polygon`): the outline of the mask's largest connected region,
  simplified with a 1-pixel tolerance, with at least 3 vertices; an empty mask or specks give
  None. The driver's ``conv_mask_to_poly`` (:func:`masks_to_polygons`) and box refinement use it
  too.
- **the derived box** (:func:`derived_box`): the upright box ``(x1, y1, x2, y2)`` around the
  shape: a rectangle's corners (rotated ones included), a polygon's or line's vertices, a mask's
  set pixels (``x2``/``y2`` exclusive pixel edges), a skeleton's keypoints that are not
  ``outside``; None for tags and empty masks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .masks import mask_to_polygon, polygon_to_mask
from .shapes import Shape, rotated_corners

__all__ = [
    "OUTPUT_TYPES",
    "NATURAL_OUTPUT",
    "to_output",
    "derived_box",
    "box_corners",
    "clip_box",
    "mask_polygon",
    "masks_to_polygons",
    "polygon_area",
]

OUTPUT_TYPES = ("box", "polygon", "polyline", "mask", "keypoints", "tag")

#: The output type each shape type is when nobody asks for another (COCO files write shapes so).
NATURAL_OUTPUT = {
    "rectangle": "box",
    "polygon": "polygon",
    "polyline": "polyline",
    "mask": "mask",
    "points": "keypoints",
    "skeleton": "keypoints",
    "tag": "tag",
}

Box = tuple[float, float, float, float]


def derived_box(s: Shape) -> Box | None:
    """The upright box ``(x1, y1, x2, y2)`` in pixels around ``s`` (see the module's rules), or
    None for a tag or an empty mask. The one rule for every box a front end derives."""
    return s.bbox()


def box_corners(s: Shape) -> tuple[float, ...]:
    """The four corners ``(x, y) * 4`` of a rectangle as drawn (turned by its ``rotation``, about
    its centre): top-left, top-right, bottom-right, bottom-left of the unrotated box. For any
    other shape, the corners of its :func:`derived_box` (empty when it has none)."""
    if s.type == "rectangle":
        return rotated_corners(s.points, s.rotation) if s.rotation else _corners(s.points)  # type: ignore[arg-type]
    box = derived_box(s)
    return _corners(box) if box else ()


def _corners(box: Box) -> tuple[float, ...]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y1, x2, y2, x1, y2)


def clip_box(box: Box, size: tuple[int, int]) -> Box:
    """``box`` clipped to the image of ``size`` = ``(width, height)``."""
    w, h = size
    x1, y1, x2, y2 = box
    return (
        float(min(max(x1, 0.0), w)),
        float(min(max(y1, 0.0), h)),
        float(min(max(x2, 0.0), w)),
        float(min(max(y2, 0.0), h)),
    )


def mask_polygon(bitmap: np.ndarray | None) -> tuple[float, ...] | None:
    """The one mask -> polygon rule: the outline of the largest connected region of ``bitmap``
    (flat ``(x1, y1, ...)`` pixel indexes on the region's border, simplified with a 1-pixel
    tolerance, at least 3 vertices), or None when the mask has no such region."""
    if bitmap is None:
        return None
    poly = mask_to_polygon(bitmap, tolerance=1.0)
    return tuple(poly) if poly and len(poly) >= 6 else None


def masks_to_polygons(shapes: Iterable[Shape]) -> list[Shape]:
    """``shapes`` with every mask replaced by its :func:`mask_polygon` (masks without one vanish):
    what a caller asking for polygons (``conv_mask_to_poly``) gets."""
    out = []
    for s in shapes:
        if s.type != "mask":
            out.append(s)
            continue
        poly = mask_polygon(s.bitmap)
        if poly is not None:
            out.append(replace(s, type="polygon", points=poly, bitmap=None))
    return out


def polygon_area(points: Iterable[float]) -> float:
    """The area in square pixels of a flat polygon ``(x1, y1, x2, y2, ...)`` (shoelace)."""
    flat = np.asarray(list(points), dtype=np.float64)
    x, y = flat[0::2], flat[1::2]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2.0)


def to_output(s: Shape, output: str, size: tuple[int, int]) -> Shape | None:
    """``s`` as output type ``output`` (one of :data:`OUTPUT_TYPES`), in pixels of an image of
    ``size`` = ``(width, height)``, or None when it cannot be one (see the module's table).
    ``s`` is never edited: a converted shape is a new one."""
    if output == "box":
        return _box(s, size)
    if output == "polygon":
        if s.type == "polygon":
            return s
        if s.type == "mask":
            poly = mask_polygon(s.bitmap)
            return replace(s, type="polygon", points=poly, bitmap=None) if poly else None
        return None
    if output == "polyline":
        if s.type in ("polyline", "polygon"):
            return s
        if s.type == "mask":
            poly = mask_polygon(s.bitmap)
            return replace(s, type="polygon", points=poly, bitmap=None) if poly else None
        if s.type == "rectangle":
            return replace(s, type="polygon", points=box_corners(s), rotation=0.0)
        return None
    if output == "mask":
        if s.type == "mask":
            return s if s.bitmap is not None and s.bitmap.any() else None
        if s.type == "polygon":
            bitmap = polygon_to_mask(s.points, size)
            return replace(s, type="mask", points=(), bitmap=bitmap) if bitmap.any() else None
        return None
    if output == "keypoints":
        return s if s.type in ("points", "skeleton") else None
    if output == "tag":
        return s if s.type == "tag" else None
    raise ValueError(f"unknown output type {output!r}; choose one of {list(OUTPUT_TYPES)}")


def _box(s: Shape, size: tuple[int, int]) -> Shape | None:
    if s.type == "rectangle" and s.rotation:
        return s  # an oriented box: the front end shows it rotated, or says what it does instead
    if s.type == "tag":
        return None
    box = derived_box(s)
    if box is None:
        return None
    w, h = size
    if box[2] < 0 or box[3] < 0 or box[0] > w or box[1] > h:
        return None  # nothing of it inside the image
    x1, y1, x2, y2 = clip_box(box, size)
    if s.type != "rectangle" and (x2 <= x1 or y2 <= y1):
        return None  # the box of a line or a point has no area: no box to show
    return replace(s, type="rectangle", points=(x1, y1, x2, y2), bitmap=None, elements=())
