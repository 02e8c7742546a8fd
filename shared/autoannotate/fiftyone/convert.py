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
from .plan import CONTAINER, Plan

RUN_ATTRIBUTE = "autoannotate_run"
CONTAINER_TYPES = {
    "detections": (fo.Detections, "detections"),
    "polylines": (fo.Polylines, "polylines"),
    "keypoints": (fo.Keypoints, "keypoints"),
    "classifications": (fo.Classifications, "classifications"),
}


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


def _mask_detection(bitmap: np.ndarray, w: int, h: int, **kw: Any) -> fo.Detection | None:
    box = mask_bbox(bitmap)
    if box is None:
        return None
    x1, y1, x2, y2 = (int(v) for v in box)
    return fo.Detection(bounding_box=rel_box((x1, y1, x2, y2), w, h), mask=bitmap[y1:y2, x1:x2].copy(), **kw)


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
            poly = mask_to_polygon(s.bitmap)  # type: ignore[arg-type]
            pts = tuple(poly) if poly else ()
        elif s.type in ("polygon", "polyline"):
            pts = s.points
        else:
            return None
        if len(pts) < 4:
            return None
        return fo.Polyline(points=[_rel_points(pts, w, h)], closed=closed, filled=closed, **kw)
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


class LabelBuilder:
    """Turns one image's mapped, routed shapes into per-field containers; counts shapes that
    cannot take their class's output type (``unconvertible``)."""

    def __init__(self, plan: Plan, run_key: str, attribute_names: dict[tuple[int, int], str]) -> None:
        self.plan = plan
        self.run_key = run_key
        self.names = {t.id: t.name for t in plan.targets}
        self.attribute_names = attribute_names
        self.counts: Counter[str] = Counter()

    def containers(
        self, shapes: list[Shape], reviews: list[str | None] | None, size: tuple[int, int]
    ) -> tuple[dict[str, Any], list[str | None]]:
        """``{field: container}`` for every field of the plan (empty containers included, so a
        processed sample with nothing found is not processed again), and the review status of
        each stored label."""
        lists: dict[str, list] = {kind: [] for kind in self.plan.fields}
        stored: list[str | None] = []
        for s, status in zip(shapes, reviews or [None] * len(shapes)):
            name = self.names[s.label_id]
            attrs = {self.attribute_names[(s.label_id, a.spec_id)]: a.value for a in s.attributes}
            attrs[RUN_ATTRIBUTE] = self.run_key
            if status is not None:
                attrs["review"] = status
            label = shape_to_label(s, name, self.plan.outputs[name], size, attrs)
            if label is None:
                self.counts["unconvertible"] += 1
                continue
            stored.append(status)
            lists[CONTAINER[self.plan.outputs[name]]].append(label)
        return {self.plan.fields[kind]: container(kind, labels, self.run_key) for kind, labels in lists.items()}, stored


def container(kind: str, labels: list[Any], run_key: str) -> Any:
    """A FiftyOne label list of ``kind`` (``detections``, ...) stamped with the run's key."""
    cls, attr = CONTAINER_TYPES[kind]
    out = cls(**{attr: labels})
    out[RUN_ATTRIBUTE] = run_key
    return out
