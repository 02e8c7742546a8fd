"""Mask and box helpers: mask <-> polygon, COCO RLE, IoU and NMS.

Masks are boolean HxW numpy arrays over the whole image (row = y, column = x). Polygons are flat
``[x1, y1, x2, y2, ...]`` in pixels. Boxes are ``[x1, y1, x2, y2]`` in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw


def mask_bbox(mask: np.ndarray | None) -> tuple[float, float, float, float] | None:
    """``(x1, y1, x2, y2)`` of the set pixels (``x2``/``y2`` exclusive edges), or None if empty."""
    if mask is None or not mask.any():
        return None
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def mask_to_polygon(mask: np.ndarray, *, tolerance: float = 1.0) -> list[float] | None:
    """The outline of the largest connected region of ``mask`` as a flat polygon, simplified by
    Douglas-Peucker with ``tolerance`` pixels; ``None`` if the mask has no region of 3+ vertices.
    Needs OpenCV (``pip install autoannotate[opencv]``)."""
    polys = mask_to_polygons(mask, tolerance=tolerance)
    if not polys:
        return None
    return max(polys, key=_polygon_area)


def mask_to_polygons(mask: np.ndarray, *, tolerance: float = 1.0, min_area: float = 0.0) -> list[list[float]]:
    """Outer outlines of every region of ``mask`` (flat polygons, largest first).

    Vertices are pixel indexes on the region's border, so :func:`polygon_to_mask` gives the mask
    back. Thin regions (1 pixel wide) keep their full outline rather than collapsing to a line;
    specks of fewer than 3 border pixels are dropped.
    """
    import cv2

    m = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
    if m.ndim != 2 or not m.any():
        return []
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = []
    for raw in contours:
        c = cv2.approxPolyDP(raw, tolerance, True) if tolerance > 0 else raw
        if len(c) < 3:
            c = raw
        if len(c) < 3:
            continue
        flat = c.reshape(-1, 2).astype(np.float64).reshape(-1).tolist()
        if _polygon_area(flat) >= min_area:
            out.append(flat)
    out.sort(key=_polygon_area, reverse=True)
    return out


def polygon_to_mask(points: Sequence[float], size: tuple[int, int]) -> np.ndarray:
    """Rasterize a flat polygon onto a boolean mask of ``size`` = ``(width, height)``."""
    img = PIL.Image.new("1", size, 0)
    xy = [(float(points[i]), float(points[i + 1])) for i in range(0, len(points) - 1, 2)]
    if len(xy) >= 2:
        PIL.ImageDraw.Draw(img).polygon(xy, fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def _polygon_area(flat: Sequence[float]) -> float:
    x = np.asarray(flat[0::2], dtype=np.float64)
    y = np.asarray(flat[1::2], dtype=np.float64)
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2.0)


def rle_encode(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: ``{"size": [h, w], "counts": [...]}``: run lengths in column-major
    order, starting with a (possibly empty) run of zeros."""
    m = np.asarray(mask, dtype=bool)
    flat = m.reshape(-1, order="F")
    if flat.size == 0:
        return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": []}
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": [int(r) for r in runs]}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of :func:`rle_encode`."""
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in rle["counts"]:
        if val:
            flat[pos : pos + c] = True
        pos += c
        val = not val
    return flat.reshape((h, w), order="F")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N x 4) and ``b`` (M x 4), ``[x1, y1, x2, y2]``; N x M."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of boxes kept by greedy non-maximum suppression, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    offset = (boxes.max() + 1) * np.asarray(classes, dtype=np.float64)[:, None]
    keep = nms(boxes + offset, scores, iou_threshold)
    return keep
