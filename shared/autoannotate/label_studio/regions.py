"""Shapes (absolute pixels) -> Label Studio result regions (percent of the original image size).

Which shape becomes which region is the core's output stage (:mod:`autoannotate.outputs`, by the
control's output type, :data:`CONTROL_OUTPUT`); this module only changes units. Label Studio's
convention: ``x``, ``y``, ``width``, ``height`` and polygon/keypoint points are percentages (0-100)
of ``original_width`` / ``original_height``; a rectangle's ``rotation`` turns it clockwise about
its top-left corner (:func:`rectangle_value`); brush masks are Label Studio RLE
(``label_studio_sdk.converter.brush.mask2rle``). :func:`build_prediction` turns per-control shapes
into one prediction and is the only place that numbers regions: ids are derived from the task, the
control and the region's index, so the same input always gives the same ids and no two regions of
a prediction share one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..outputs import box_corners, to_output
from ..shapes import Shape, rectangle
from .config import Control


def region_id(*parts: Any) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()[:12]


def brush_rle(mask: np.ndarray) -> list[int]:
    """Label Studio brush RLE of a boolean H x W mask, byte-identical to
    ``label_studio_sdk.converter.brush.mask2rle(mask * 255)`` but vectorized: the SDK's pure
    Python encoder takes seconds per full-image mask, this takes milliseconds.

    Format (thi-ng rle-pack): 32-bit value count (4 RGBA bytes per pixel), 5-bit word size - 1,
    four 4-bit run-size classes (3, 4, 8, 16 bits), then per run ``1``, a 2-bit size class, the
    run length - 1 and the 8-bit value; padded with zero bits to whole bytes (a full zero byte
    when already aligned, as the SDK does).
    """
    flat = np.asarray(mask, dtype=bool).ravel()
    header = (flat.size * 4 << 21) | (7 << 16) | (2 << 12) | (3 << 8) | (7 << 4) | 15  # 53 bits
    widths = np.zeros(0, np.int64)
    fields = np.zeros(0, np.int64)
    if flat.size:
        edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        starts = np.concatenate([[0], edges])
        lengths = np.diff(np.concatenate([starts, [flat.size]])).astype(np.int64) * 4
        values = np.where(flat[starts], 255, 0).astype(np.int64)
        # runs longer than 65536 values become full 65536 chunks plus the remainder
        extra = (lengths - 1) // 65536
        values = np.repeat(values, extra + 1)
        last = np.cumsum(extra + 1) - 1
        lengths_out = np.full(values.size, 65536, np.int64)
        lengths_out[last] = lengths - extra * 65536
        L = lengths_out
        cls = np.select([L <= 8, L <= 16, L <= 256], [0, 1, 2], 3)
        bits = np.array([3, 4, 8, 16], np.int64)[cls]
        flag = (L > 1).astype(np.int64)
        widths = 1 + 2 + bits + 8
        fields = (flag << (widths - 1)) | (cls << (bits + 8)) | ((L - 1) << 8) | values
    total = 53 + int(widths.sum())
    pad = 8 - total % 8
    run_of_bit = np.repeat(np.arange(widths.size), widths)
    offset = np.arange(run_of_bit.size) - np.repeat(np.cumsum(widths) - widths, widths)
    body = ((fields[run_of_bit] >> (widths[run_of_bit] - 1 - offset)) & 1).astype(np.uint8)
    head = np.array([(header >> (52 - i)) & 1 for i in range(53)], np.uint8)
    bitstream = np.concatenate([head, body, np.zeros(pad, np.uint8)])
    return np.packbits(bitstream).tolist()


def _pct(v: float, total: int) -> float:
    return float(min(max(v / total * 100.0, 0.0), 100.0))


#: The output type (:mod:`autoannotate.outputs`) each Label Studio control tag shows.
CONTROL_OUTPUT = {
    "RectangleLabels": "box",
    "Labels": "box",
    "PolygonLabels": "polygon",
    "BrushLabels": "mask",
    "KeyPointLabels": "keypoints",
    "Choices": "tag",
}


def shape_value(s: Shape, control: Control, label: str, size: tuple[int, int]) -> dict | None:
    """The ``value`` of a region for ``s`` in ``control``, or None when it cannot be shown there.

    Which shape becomes what is :func:`autoannotate.outputs.to_output` (a mask or polygon on a
    rectangle control shows its box, a mask on a polygon control its outline, ...); this only
    turns pixels into Label Studio's percent. A rotated rectangle keeps its rotation
    (:func:`rectangle_value`)."""
    output = CONTROL_OUTPUT.get(control.tag)
    out = to_output(s, output, size) if output else None
    if out is None:
        return None
    w, h = size
    key = control.tag.lower()
    if output == "box":
        return {**rectangle_value(out, size), key: [label]}
    if output == "polygon":
        pts = out.points
        return {
            "points": [[_pct(pts[i], w), _pct(pts[i + 1], h)] for i in range(0, len(pts), 2)],
            "closed": True,
            key: [label],
        }
    if output == "mask":
        return {"format": "rle", "rle": brush_rle(out.bitmap), key: [label]}  # type: ignore[arg-type]
    if output == "keypoints":
        if out.type != "points":
            return None  # a skeleton shows as its keypoints, one region each (_control_regions)
        return {"x": _pct(out.points[0], w), "y": _pct(out.points[1], h), "width": 0.5, key: [label]}
    return {"choices": [label]}


def rectangle_value(s: Shape, size: tuple[int, int]) -> dict[str, float]:
    """``x``, ``y``, ``width``, ``height`` (percent of ``size`` = ``(width, height)``) and
    ``rotation`` (degrees) of a Label Studio rectangle showing rectangle ``s`` (pixels).

    Label Studio's ``x``/``y`` are the top-left corner of the *unrotated* box and ``rotation``
    turns the box clockwise about that corner, while a shape's rotation turns it about its
    centre: so ``x``/``y`` are where the shape's top-left corner lands once rotated (the first of
    :func:`autoannotate.outputs.box_corners`), and width, height and angle are the shape's.
    Upright boxes are clipped to the image; rotated ones are kept as they are (a corner may lie
    outside). :func:`rectangle_from_value` is the inverse."""
    w, h = size
    x1, y1, x2, y2 = s.points
    if not s.rotation:
        return {
            "x": _pct(x1, w),
            "y": _pct(y1, h),
            "width": _pct(x2 - x1, w),
            "height": _pct(y2 - y1, h),
            "rotation": 0,
        }
    cx, cy = box_corners(s)[:2]
    return {
        "x": cx / w * 100.0,
        "y": cy / h * 100.0,
        "width": (x2 - x1) / w * 100.0,
        "height": (y2 - y1) / h * 100.0,
        "rotation": float(s.rotation),
    }


def rectangle_from_value(value: Mapping[str, Any], size: tuple[int, int], label_id: int = 0) -> Shape:
    """The pixel rectangle (a rotated one about its centre, as shapes are) that a Label Studio
    rectangle ``value`` (``x``, ``y``, ``width``, ``height`` in percent of ``size``; ``rotation``
    in degrees clockwise about the top-left corner, 0 when absent) shows: the inverse of
    :func:`rectangle_value`."""
    w, h = size
    x, y = float(value["x"]) * w / 100.0, float(value["y"]) * h / 100.0
    bw, bh = float(value["width"]) * w / 100.0, float(value["height"]) * h / 100.0
    r = float(value.get("rotation") or 0.0) % 360.0
    a = math.radians(r)
    cos, sin = math.cos(a), math.sin(a)
    # the centre: the top-left corner plus the half diagonal turned by the rotation
    cx, cy = x + bw / 2 * cos - bh / 2 * sin, y + bw / 2 * sin + bh / 2 * cos
    return rectangle(label_id, [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], rotation=r)


def _control_regions(shapes: Sequence[Shape], control: Control, size: tuple[int, int]) -> list[dict]:
    """Regions (ids not yet assigned) of ``control`` for shapes already mapped onto its labels."""
    w, h = size
    names = {t.id: t.name for t in control.labels}
    out: list[dict] = []
    for s in shapes:
        label = names.get(s.label_id)
        if label is None:
            continue
        pieces = [s]
        if control.tag == "KeyPointLabels" and s.type == "skeleton":
            pieces = [e for e in s.elements if not e.outside]
        elif control.tag == "KeyPointLabels" and s.type == "points":  # one region per point
            pieces = [replace(s, points=s.points[i : i + 2]) for i in range(0, len(s.points) - 1, 2)]
        for piece in pieces:
            value = shape_value(piece, control, label, size)
            if value is None:
                continue
            region = {
                "id": "",  # numbered by build_prediction
                "from_name": control.name,
                "to_name": control.to_name,
                "type": control.tag.lower(),
                "original_width": w,
                "original_height": h,
                "image_rotation": 0,
                "value": value,
            }
            if s.score is not None:
                region["score"] = float(s.score)
            out.append(region)
    return out


def build_prediction(
    task_key: Any,
    parts: Sequence[tuple[Control, Sequence[Shape]]],
    size: tuple[int, int],
    model_version: str,
) -> dict:
    """A whole Label Studio prediction for one task: ``{"result": regions, "score": mean region
    score, "model_version": model_version}``.

    ``parts`` pairs each control with shapes already mapped onto its labels (label ids are the
    control's label ids, e.g. ``control.mapping.map_shapes(shapes)``); ``size`` is the image's
    (width, height). Region ids are assigned here and only here: ``region_id(task_key, control
    name, index of the region in the prediction)``, so they are unique across controls and the
    same input always gives the same ids.
    """
    regions: list[dict] = []
    for control, shapes in parts:
        regions += _control_regions(shapes, control, size)
    for i, r in enumerate(regions):
        r["id"] = region_id(task_key, r["from_name"], i)
    return scored({"result": regions, "model_version": str(model_version)})


def to_regions(task_id: Any, shapes: list[Shape], control: Control, size: tuple[int, int]) -> list[dict]:
    """Regions of one control for shapes already mapped onto its labels (label ids = its labels):
    ``build_prediction(task_id, [(control, shapes)], size, ...)["result"]``."""
    return build_prediction(task_id, [(control, shapes)], size, "")["result"]


def prediction_score(regions: list[dict]) -> float | None:
    """A task-level score: the mean of the regions' scores (None when none has one)."""
    scores = [r["score"] for r in regions if "score" in r]
    return float(sum(scores) / len(scores)) if scores else None


def scored(prediction: dict) -> dict:
    """``prediction`` with its task-level ``score`` (:func:`prediction_score`), left out when no
    region has a score: Label Studio would show a function that gives no scores as "0.00%"."""
    score = prediction_score(prediction["result"])
    return prediction if score is None else {**prediction, "score": score}


def video_region(
    key: Any,
    control: Control,
    label: str,
    boxes: dict[int, tuple[float, float, float, float]],
    size: tuple[int, int],
    score: float | None = None,
) -> dict:
    """A VideoRectangle region: ``boxes`` maps 0-based frame index -> pixel box. Keyframes are
    1-based ``frame`` numbers with ``time`` in seconds at the control's frame rate. Label Studio
    interpolates between keyframes; the last keyframe is disabled, so the region ends there."""
    w, h = size
    fps = control.frame_rate or 24.0
    seq = []
    for k in sorted(boxes):
        x1, y1, x2, y2 = boxes[k]
        seq.append(
            {
                "frame": k + 1,
                "enabled": True,
                "rotation": 0,
                "time": k / fps,
                "x": _pct(x1, w),
                "y": _pct(y1, h),
                "width": _pct(x2 - x1, w),
                "height": _pct(y2 - y1, h),
            }
        )
    if seq:
        seq[-1] = {**seq[-1], "enabled": False}
    region: dict[str, Any] = {
        "id": region_id(key, control.name, label, min(boxes) if boxes else 0),
        "from_name": control.name,
        "to_name": control.to_name,
        "type": "videorectangle",
        "origin": "prediction",
        "value": {"sequence": seq, "labels": [label]},
    }
    if score is not None:
        region["score"] = float(score)
    return region
