"""Shapes (absolute pixels) -> FiftyOne labels (relative coordinates), with review routing.

FiftyOne conventions: boxes are ``[x, y, w, h]`` relative to the image size; a detection's mask
covers its box only; polylines and keypoints are lists of relative ``(x, y)``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import fiftyone as fo
import numpy as np

from ..masks import mask_bbox, mask_to_polygon, polygon_to_mask
from ..shapes import Shape
from .classes import CONTAINER, Plan

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
    box = mask_bbox(bitmap)
    if box is None:
        return None
    return fo.Detection(bounding_box=rel_box(box, w, h), mask=crop_mask(bitmap, box), **kw)


def mask_polyline(bitmap: np.ndarray, w: int, h: int, *, closed: bool = True, **kw: Any) -> fo.Polyline | None:
    """The outline of the largest region of an image-sized mask as a FiftyOne polyline (closed
    and filled: a polygon), or None when the mask has no such region."""
    poly = mask_to_polygon(bitmap)
    return _polyline(tuple(poly) if poly else (), w, h, closed, **kw)


def _polyline(pts: tuple[float, ...], w: int, h: int, closed: bool, **kw: Any) -> fo.Polyline | None:
    if len(pts) < 4:
        return None
    return fo.Polyline(points=[_rel_points(pts, w, h)], closed=closed, filled=closed, **kw)


def _rel_points(flat: tuple[float, ...], w: int, h: int) -> list[tuple[float, float]]:
    return [(flat[i] / w, flat[i + 1] / h) for i in range(0, len(flat) - 1, 2)]


def shape_to_label(s: Shape, name: str, output: str, size: tuple[int, int], attrs: dict[str, Any]) -> Any:
    """One FiftyOne label for ``s`` in the class's output type, or None when ``s`` cannot give one
    (an empty mask, a shape type the output cannot take)."""
    w, h = size
    kw = {"label": name, **attrs}
    if s.score is not None:
        kw["confidence"] = float(s.score)
    if output == "tag":
        return fo.Classification(**kw) if s.type == "tag" else None
    if output == "bbox":
        box = s.bbox()
        return fo.Detection(bounding_box=rel_box(box, w, h), **kw) if box else None
    if output == "mask":
        if s.type == "mask":
            return _mask_detection(s.bitmap, w, h, **kw)  # type: ignore[arg-type]
        if s.type == "polygon":
            return _mask_detection(polygon_to_mask(s.points, size), w, h, **kw)
        return None
    if output in ("polygon", "polyline"):
        closed = output == "polygon"
        if s.type == "mask":
            return mask_polyline(s.bitmap, w, h, closed=closed, **kw)  # type: ignore[arg-type]
        if s.type in ("polygon", "polyline"):
            return _polyline(s.points, w, h, closed, **kw)
        return None
    if output == "keypoint":
        if s.type == "points":
            kps, extra = _rel_points(s.points, w, h), {}
        elif s.type == "skeleton":
            kps = [(math.nan, math.nan) if e.outside else (e.points[0] / w, e.points[1] / h) for e in s.elements]
            extra = {"occluded": [bool(e.occluded) for e in s.elements]}
        else:
            return None
        if "confidence" in kw:  # FiftyOne keypoint confidences are per point
            kw["confidence"] = [kw["confidence"]] * len(kps)
        return fo.Keypoint(points=kps, **kw, **extra)
    raise ValueError(f"unknown output type {output!r}")


#: Why a label of a polygon/mask class is stored as its box (marked ``refined=False``).
UNREFINED_REASON = (
    "box refinement gave an empty or degenerate mask, so the detection is kept as its box "
    "(a box polygon for polygon classes, a box without mask for mask classes), marked refined=False"
)


def box_label(s: Shape, name: str, output: str, size: tuple[int, int], attrs: dict[str, Any]) -> Any:
    """The box of ``s`` in the class's container: a closed box polygon (``polygon``) or a
    detection without mask (``mask``), marked ``refined=False``; None when ``s`` has no box."""
    box = s.bbox()
    if box is None:
        return None
    w, h = size
    kw: dict[str, Any] = {"label": name, **attrs, "refined": False}
    if s.score is not None:
        kw["confidence"] = float(s.score)
    x, y, bw, bh = rel_box(box, w, h)
    if output == "polygon":
        corners = [(x, y), (x + bw, y), (x + bw, y + bh), (x, y + bh)]
        return fo.Polyline(points=[corners], closed=True, filled=True, **kw)
    return fo.Detection(bounding_box=[x, y, bw, bh], **kw)


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
