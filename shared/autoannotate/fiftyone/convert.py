"""Shapes (absolute pixels) -> FiftyOne labels (relative coordinates), with review routing.

Which shape becomes which output type is the core's output stage (:mod:`autoannotate.outputs`);
this module only makes FiftyOne labels of its results.

FiftyOne conventions: boxes are ``[x, y, w, h]`` relative to the image size; a detection's mask
covers its box only; polylines and keypoints are lists of relative ``(x, y)``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import fiftyone as fo
import numpy as np

from ..masks import mask_bbox
from ..outputs import derived_box, mask_polygon, to_output
from ..shapes import Shape
from .classes import CONTAINER, CORE_OUTPUT, Plan

RUN_ATTRIBUTE = "autoannotate_run"
CONTAINER_TYPES = {
    "detections": (fo.Detections, "detections"),
    "polylines": (fo.Polylines, "polylines"),
    "keypoints": (fo.Keypoints, "keypoints"),
    "classifications": (fo.Classifications, "classifications"),
}


def label_list_attr(dataset: Any, path: str) -> str | None:
    """The list attribute (``detections``, ``polylines``, ...) of the label-list field ``path`` of
    ``dataset`` (``frames.<name>`` for a video frame field); None when it is no such field."""
    if path.startswith("frames."):
        field = (dataset.get_frame_field_schema() or {}).get(path[len("frames.") :])
    else:
        field = dataset.get_field(path)
    doc = getattr(field, "document_type", None)
    return next((attr for cls, attr in CONTAINER_TYPES.values() if doc is cls), None)


def rel_box(box: tuple[float, float, float, float], w: int, h: int) -> list[float]:
    """Pixel ``(x1, y1, x2, y2)`` -> FiftyOne's relative ``[x, y, w, h]``, clipped to the image."""
    x1, y1, x2, y2 = box
    x1, x2 = max(0.0, min(x1, w)), max(0.0, min(x2, w))
    y1, y2 = max(0.0, min(y1, h)), max(0.0, min(y2, h))
    return [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h]


def abs_box(rel: list[float], w: int, h: int) -> tuple[float, float, float, float]:
    """FiftyOne's relative ``[x, y, w, h]`` -> pixel ``(x1, y1, x2, y2)``."""
    x, y, bw, bh = rel
    return x * w, y * h, (x + bw) * w, (y + bh) * h


def crop_mask(bitmap: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of an image-sized mask inside pixel ``box`` ``(x1, y1, x2, y2)``: a FiftyOne
    detection's mask, which covers its box only."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return bitmap[y1:y2, x1:x2].copy()


def _mask_detection(bitmap: np.ndarray, w: int, h: int, **kw: Any) -> fo.Detection | None:
    box = mask_bbox(bitmap)  # the derived box of a mask (autoannotate.outputs.derived_box)
    if box is None:
        return None
    return fo.Detection(bounding_box=rel_box(box, w, h), mask=crop_mask(bitmap, box), **kw)


def mask_polyline(bitmap: np.ndarray, w: int, h: int, *, closed: bool = True, **kw: Any) -> fo.Polyline | None:
    """The outline of the largest region of an image-sized mask (the core's mask -> polygon rule,
    :func:`autoannotate.outputs.mask_polygon`) as a FiftyOne polyline, closed and filled (a
    polygon) unless ``closed=False``; None when the mask has no such region."""
    return _polyline(mask_polygon(bitmap) or (), w, h, closed, closed, **kw)


def _polyline(pts: tuple[float, ...], w: int, h: int, closed: bool, filled: bool, **kw: Any) -> fo.Polyline | None:
    if len(pts) < 4:
        return None
    return fo.Polyline(points=[_rel_points(pts, w, h)], closed=closed, filled=filled, **kw)


def _rel_points(flat: tuple[float, ...], w: int, h: int) -> list[tuple[float, float]]:
    return [(flat[i] / w, flat[i + 1] / h) for i in range(0, len(flat) - 1, 2)]


def rotated_box_polyline(s: Shape, w: int, h: int, *, filled: bool = False, **kw: Any) -> fo.Polyline:
    """A rotated rectangle as FiftyOne's own oriented box: ``fo.Polyline.from_rotated_box`` (a
    closed outline of the four corners, relative coordinates). FiftyOne's ``theta`` is in radians
    and turns ``(dx, dy)`` by ``[[cos, -sin], [sin, cos]]`` in image coordinates (y down): the
    same clockwise turn about the centre as a shape's ``rotation`` in degrees, so the corners are
    :func:`autoannotate.outputs.box_corners` (in another order)."""
    x1, y1, x2, y2 = s.points
    return fo.Polyline.from_rotated_box(
        (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, math.radians(s.rotation), frame_size=(w, h), filled=filled, **kw
    )


def shape_to_label(s: Shape, name: str, output: str, size: tuple[int, int], attrs: dict[str, Any]) -> Any:
    """One FiftyOne label for ``s`` in the class's output type (``bbox``, ``polygon``,
    ``polyline``, ``mask``, ``keypoint``, ``tag``), or None when ``s`` cannot give one (an empty
    mask, a shape type the output cannot take).

    Which shape becomes what is the core's output stage (:func:`autoannotate.outputs.to_output`);
    this only makes FiftyOne labels in relative coordinates. A rotated rectangle:

    - ``polyline`` class: FiftyOne's oriented box, a closed polyline of its corners
      (:func:`rotated_box_polyline`, as FiftyOne's own Ultralytics OBB import stores them; an
      upright rectangle too);
    - ``bbox`` class: an ``fo.Detection`` cannot turn, and its field (``fo.Detections``, chosen
      before the run sees any shape) cannot hold a polyline, so the detection holds the upright
      box around the four corners (the core's derived box, what FiftyOne's box evaluation
      compares) and the angle in its ``rotation`` attribute (degrees clockwise about the centre):
      nothing is lost, and a ``polyline`` class draws the oriented outline;
    - ``polygon`` or ``mask`` class: no label here (refinement turns boxes into polygons and
      masks; :func:`box_label` is the fallback).
    """
    w, h = size
    kw = {"label": name, **attrs}
    if s.score is not None:
        kw["confidence"] = float(s.score)
    if output not in CORE_OUTPUT:
        raise ValueError(f"unknown output type {output!r}")
    out = to_output(s, CORE_OUTPUT[output], size)
    if out is None:
        return None
    if output == "tag":
        return fo.Classification(**kw)
    if output == "bbox":
        if out.rotation:
            kw["rotation"] = float(out.rotation)
            return fo.Detection(bounding_box=rel_box(derived_box(out), w, h), **kw)  # type: ignore[arg-type]
        return fo.Detection(bounding_box=rel_box(out.points, w, h), **kw)  # type: ignore[arg-type]
    if output == "mask":
        return _mask_detection(out.bitmap, w, h, **kw)  # type: ignore[arg-type]
    if output in ("polygon", "polyline"):
        if s.type == "rectangle":  # FiftyOne's own oriented box, turned or not
            return rotated_box_polyline(s, w, h, **kw)
        return _polyline(out.points, w, h, out.type == "polygon", output == "polygon", **kw)
    if out.type == "points":
        kps, extra = _rel_points(out.points, w, h), {}
    else:
        kps = [(math.nan, math.nan) if e.outside else (e.points[0] / w, e.points[1] / h) for e in out.elements]
        extra = {"occluded": [bool(e.occluded) for e in out.elements]}
    if "confidence" in kw:  # FiftyOne keypoint confidences are per point
        kw["confidence"] = [kw["confidence"]] * len(kps)
    return fo.Keypoint(points=kps, **kw, **extra)


#: Why a label of a polygon/mask class is stored as its box (marked ``refined=False``).
UNREFINED_REASON = (
    "box refinement gave an empty or degenerate mask, so the detection is kept as its box "
    "(a box polygon for polygon classes, a box without mask for mask classes), marked refined=False"
)


def box_label(s: Shape, name: str, output: str, size: tuple[int, int], attrs: dict[str, Any]) -> Any:
    """The box of ``s`` in the class's container: a closed polygon of its corners (``polygon``;
    a rotated rectangle's turned corners) or a detection without mask (``mask``; the upright box,
    with a rotated rectangle's ``rotation`` attribute), marked ``refined=False``; None when ``s``
    has no box."""
    box = derived_box(s)
    if box is None:
        return None
    w, h = size
    kw: dict[str, Any] = {"label": name, **attrs, "refined": False}
    if s.score is not None:
        kw["confidence"] = float(s.score)
    if output == "polygon":
        if s.type == "rectangle" and s.rotation:
            return rotated_box_polyline(s, w, h, filled=True, **kw)
        x, y, bw, bh = rel_box(box, w, h)
        corners = [(x, y), (x + bw, y), (x + bw, y + bh), (x, y + bh)]
        return fo.Polyline(points=[corners], closed=True, filled=True, **kw)
    if s.type == "rectangle" and s.rotation:
        kw["rotation"] = float(s.rotation)
    return fo.Detection(bounding_box=rel_box(box, w, h), **kw)


class LabelBuilder:
    """Turns one image's mapped, routed shapes into per-field containers.

    A rectangle of a polygon/mask class (its refinement gave no usable mask) is stored as its box,
    marked ``refined=False``, and counted in ``unrefined`` (per class); ``last_unrefined`` lists
    the classes of those of the last image. Shapes that cannot take their class's output type at
    all are counted as ``unconvertible``."""

    def __init__(self, plan: Plan, run_key: str, attribute_names: dict[tuple[int, int], str]) -> None:
        self.plan = plan
        self.run_key = run_key
        self.names = {t.id: t.name for t in plan.targets}
        self.attribute_names = attribute_names
        self.counts: Counter[str] = Counter()
        self.unrefined: Counter[str] = Counter()
        self.last_unrefined: list[str] = []

    def containers(
        self, shapes: list[Shape], reviews: list[str | None] | None, size: tuple[int, int]
    ) -> tuple[dict[str, Any], list[str | None]]:
        """``{field: container}`` for every field of the plan (empty containers included, so a
        processed sample with nothing found is not processed again), and the review status of
        each stored label."""
        lists: dict[str, list] = {kind: [] for kind in self.plan.fields}
        stored: list[str | None] = []
        self.last_unrefined = []
        for s, status in zip(shapes, reviews or [None] * len(shapes)):
            name = self.names[s.label_id]
            attrs = {self.attribute_names[(s.label_id, a.spec_id)]: a.value for a in s.attributes}
            attrs[RUN_ATTRIBUTE] = self.run_key
            if status is not None:
                attrs["review"] = status
            output = self.plan.outputs[name]
            label = shape_to_label(s, name, output, size, attrs)
            if label is None and s.type == "rectangle" and output in ("polygon", "mask"):
                label = box_label(s, name, output, size, attrs)
                if label is not None:
                    self.unrefined[name] += 1
                    self.last_unrefined.append(name)
            if label is None:
                self.counts["unconvertible"] += 1
                continue
            stored.append(status)
            lists[CONTAINER[output]].append(label)
        return {self.plan.fields[kind]: container(kind, labels, self.run_key) for kind, labels in lists.items()}, stored


def container(kind: str, labels: list[Any], run_key: str) -> Any:
    """A FiftyOne label list of ``kind`` (``detections``, ...) stamped with the run's key."""
    cls, attr = CONTAINER_TYPES[kind]
    out = cls(**{attr: labels})
    out[RUN_ATTRIBUTE] = run_key
    return out
