"""A deterministic template tracker built from OpenCV primitives (opencv-python-headless, no
weights) for rectangles.

Each step predicts the box from its last motion, then finds the object's template around that
prediction by normalized cross-correlation (``cv2.matchTemplate``, ``TM_CCOEFF_NORMED``): a coarse
search on a downscaled window at three scales (the box may grow or shrink by :data:`SCALE_STEP`
a frame), then a full-resolution refinement with a sub-pixel peak. The template follows slow
changes of appearance (it is blended with the matched patch, :data:`TEMPLATE_RATE` a frame).
Nothing is drawn at random, so the same frames give the same boxes in any process, order or run.
(It replaced OpenCV's MIL tracker, whose sampler is seeded from the clock inside OpenCV: two
runs a second apart gave boxes a pixel apart, whatever ``cv2.setRNGSeed`` said.)

A box near the frame's edge is matched on its visible part only, and ``track`` returns the whole
box the object is predicted to occupy, which may extend past the frame: the tracking driver
(:class:`autoannotate.tracking.Tracker`) clips it, and ends the track ("left the frame") once
less than half of it is inside. Each step also compares the visible patch with the object's
appearance on the first frame (normalized cross-correlation of grey patches); below
``min_similarity`` the object counts as lost, and so it does when its best match scores below
``min_match`` (hidden behind something, or gone); ``track`` then raises
:class:`~autoannotate.interface.TrackLost` saying so (the track's ``end_reason``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import PIL.Image

from ..interface import (
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
    TrackLost,
)
from ..registry import FunctionRecord

Box = tuple[float, float, float, float]

#: Side (pixels) of the grey patches compared with the first frame's appearance.
PATCH = 32
#: Smallest side (pixels) of the region matched: a smaller box is matched with the context around it.
MIN_SIDE = 8
#: The coarse search runs on a window downscaled so that the template has about this many pixels.
COARSE_PIXELS = 48 * 48
#: Scales tried each frame: the box may grow or shrink by this fraction from one frame to the next.
SCALE_STEP = 0.04
#: Another scale replaces the current one only when its match is better by this much (no jitter).
SCALE_HYSTERESIS = 0.02
#: Weight of the new patch when the template is updated (a match of score >= TEMPLATE_MIN_SCORE).
TEMPLATE_RATE = 0.1
TEMPLATE_MIN_SCORE = 0.6
#: Score taken off a match per search margin of distance from the predicted position (breaks near-ties).
PRIOR = 0.002


@dataclass
class NccState:
    """The object being followed: ``box`` (x1, y1, x2, y2, may extend past the frame),
    ``velocity`` (pixels per frame), its current ``template`` and its ``first`` appearance (grey
    float32 patches of the matched region, see :func:`match_region`)."""

    box: Box
    template: np.ndarray
    first: np.ndarray
    velocity: tuple[float, float] = (0.0, 0.0)


def match_region(box: Box) -> Box:
    """The region matched for ``box``: the box itself, grown around its centre to MIN_SIDE px a side."""
    x1, y1, x2, y2 = box
    gx, gy = max(0.0, MIN_SIDE - (x2 - x1)) / 2, max(0.0, MIN_SIDE - (y2 - y1)) / 2
    return x1 - gx, y1 - gy, x2 + gx, y2 + gy


def _int_rect(box: Box) -> tuple[int, int, int, int]:
    x1, y1 = int(math.floor(box[0] + 0.5)), int(math.floor(box[1] + 0.5))
    return x1, y1, max(x1 + 1, int(math.floor(box[2] + 0.5))), max(y1 + 1, int(math.floor(box[3] + 0.5)))


def _visible(
    gray: np.ndarray, template: np.ndarray, region: Box
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The part of ``template`` (resized to ``region``) that falls inside the frame, and that part's
    rectangle in the frame; ``None`` when less than 2x2 px of it is inside."""
    import cv2

    H, W = gray.shape
    rx1, ry1, rx2, ry2 = _int_rect(region)
    vx1, vy1, vx2, vy2 = max(rx1, 0), max(ry1, 0), min(rx2, W), min(ry2, H)
    if vx2 - vx1 < 2 or vy2 - vy1 < 2:
        return None
    t = cv2.resize(template, (rx2 - rx1, ry2 - ry1), interpolation=cv2.INTER_AREA)
    return t[vy1 - ry1 : vy2 - ry1, vx1 - rx1 : vx2 - rx1], (vx1, vy1, vx2, vy2)


def _peak(res: np.ndarray) -> tuple[float, float, float]:
    """``(score, x, y)`` of the correlation map's maximum, refined to sub-pixel by a parabola; the
    first maximum in row-major order on ties (deterministic)."""
    res = np.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)
    flat = int(np.argmax(res))
    y, x = divmod(flat, res.shape[1])
    score = float(res[y, x])

    def offset(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if d >= 0 else max(-0.5, min(0.5, 0.5 * (a - c) / d))

    dx = offset(res[y, x - 1], score, res[y, x + 1]) if 0 < x < res.shape[1] - 1 else 0.0
    dy = offset(res[y - 1, x], score, res[y + 1, x]) if 0 < y < res.shape[0] - 1 else 0.0
    return score, x + dx, y + dy


def _match(
    gray: np.ndarray, template: np.ndarray, region: Box, margin: int, scale: float
) -> tuple[float, float, float]:
    """Where the template, placed on ``region``, matches best within ``margin`` px: ``(score, dx,
    dy)``, the shift from ``region``. The search runs on the frame downscaled by ``scale`` (<= 1)."""
    import cv2

    found = _visible(gray, template, region)
    if found is None:
        return -1.0, 0.0, 0.0
    t, (vx1, vy1, vx2, vy2) = found
    H, W = gray.shape
    # a side cut by the frame's border: leave room for the object to move further out
    cx, cy = min(margin, max(2, (vx2 - vx1) // 8)), min(margin, max(2, (vy2 - vy1) // 8))
    left, r = cx if vx1 == 0 else 0, cx if vx2 == W else 0
    u, d = cy if vy1 == 0 else 0, cy if vy2 == H else 0
    t = t[u : t.shape[0] - d, left : t.shape[1] - r]
    vx1, vy1, vx2, vy2 = vx1 + left, vy1 + u, vx2 - r, vy2 - d
    wx1, wy1, wx2, wy2 = max(0, vx1 - margin), max(0, vy1 - margin), min(W, vx2 + margin), min(H, vy2 + margin)
    window = gray[wy1:wy2, wx1:wx2]
    fx = fy = 1.0
    if scale < 1.0:
        tw, th = max(2, round(t.shape[1] * scale)), max(2, round(t.shape[0] * scale))
        fx, fy = tw / t.shape[1], th / t.shape[0]
        t = cv2.resize(t, (tw, th), interpolation=cv2.INTER_AREA)
        ww, wh = max(tw, round(window.shape[1] * fx)), max(th, round(window.shape[0] * fy))
        window = cv2.resize(window, (ww, wh), interpolation=cv2.INTER_AREA)
    res = cv2.matchTemplate(window, t, cv2.TM_CCOEFF_NORMED)
    # near-ties (a flat or repeating scene) go to the position nearest the prediction
    ys, xs = np.ogrid[: res.shape[0], : res.shape[1]]
    px, py = (vx1 - wx1) * fx, (vy1 - wy1) * fy
    res = res - PRIOR * np.sqrt((xs - px) ** 2 + (ys - py) ** 2) / max(1.0, margin * max(fx, fy))
    score, x, y = _peak(res)
    return score, wx1 + x / fx - vx1, wy1 + y / fy - vy1


def similarity(gray: np.ndarray, appearance: np.ndarray, region: Box) -> float:
    """Normalized cross-correlation (-1..1) of the frame's visible patch under ``region`` with the
    same part of ``appearance`` (both reduced to at most PATCH x PATCH grey pixels)."""
    import cv2

    found = _visible(gray, appearance, region)
    if found is None:
        return -1.0
    a, (vx1, vy1, vx2, vy2) = found
    size = (min(PATCH, vx2 - vx1), min(PATCH, vy2 - vy1))
    p = cv2.resize(gray[vy1:vy2, vx1:vx2], size, interpolation=cv2.INTER_AREA) - 0.0
    q = cv2.resize(a, size, interpolation=cv2.INTER_AREA) - 0.0
    p, q = p - p.mean(), q - q.mean()
    n = float(np.linalg.norm(p) * np.linalg.norm(q))
    return float((p * q).sum()) / n if n > 1e-6 else 0.0


def _fmt(box: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{round(float(v), 1):g}" for v in box) + "]"


class OpenCvTracker:
    """Rectangles by template matching (see the module doc). ``pp_image`` is the frame as a grey
    float32 array."""

    spec = TrackingFunctionSpec(supported_shape_types=("rectangle",))
    model_version = "opencv-ncc"

    def __init__(self, min_similarity: float = 0.2, min_match: float = 0.5) -> None:
        self.min_similarity = float(min_similarity)
        self.min_match = float(min_match)

    def preprocess_image(self, context: TrackingFunctionContext, image: PIL.Image.Image) -> np.ndarray:
        return np.asarray(image.convert("L"), dtype=np.float32)

    def init_tracking_state(
        self, context: TrackingFunctionShapeContext, pp_image: np.ndarray, shape: TrackableShape
    ) -> NccState:
        import cv2

        gray = pp_image
        H, W = gray.shape
        x1, y1, x2, y2 = (float(v) for v in shape.points)
        box = (min(max(x1, 0.0), W), min(max(y1, 0.0), H), min(max(x2, 0.0), W), min(max(y2, 0.0), H))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            raise ValueError(f"the box {_fmt(shape.points)} has no pixel inside the {W}x{H} image")
        rx1, ry1, rx2, ry2 = _int_rect(match_region(box))
        vx1, vy1, vx2, vy2 = max(rx1, 0), max(ry1, 0), min(rx2, W), min(ry2, H)
        if vx2 - vx1 < 2 or vy2 - vy1 < 2:
            raise ValueError(f"the {W}x{H} image is too small to track the box {_fmt(shape.points)}")
        # a region grown past the border (a box under MIN_SIDE px at the edge) repeats the border pixels
        patch = cv2.copyMakeBorder(
            gray[vy1:vy2, vx1:vx2], vy1 - ry1, ry2 - vy2, vx1 - rx1, rx2 - vx2, cv2.BORDER_REPLICATE
        )
        return NccState(box, patch, patch.copy())

    def track(self, context: TrackingFunctionShapeContext, pp_image: np.ndarray, state: NccState) -> TrackableShape:
        import cv2

        gray = pp_image
        x1, y1, x2, y2 = state.box
        vx, vy = state.velocity
        predicted = (x1 + vx, y1 + vy, x2 + vx, y2 + vy)
        region = match_region(predicted)
        rw, rh = region[2] - region[0], region[3] - region[1]
        coarse = min(1.0, math.sqrt(COARSE_PIXELS / (rw * rh)))
        margin = int(math.ceil(0.4 * max(rw, rh) + 4))
        best: tuple[float, float, float, float] | None = None  # score, scale, dx, dy
        for s in (1.0, 1.0 - SCALE_STEP, 1.0 + SCALE_STEP):
            scaled = _scaled(region, s)
            score, dx, dy = _match(gray, state.template, scaled, margin, coarse)
            if best is None or score > best[0] + (SCALE_HYSTERESIS if best[1] == 1.0 else 0.0):
                best = (score, s, dx, dy)
        assert best is not None
        score, s, dx, dy = best
        moved = _shift(_scaled(predicted, s), dx, dy)
        if coarse < 1.0:  # refine at full resolution around the coarse match
            fine, fdx, fdy = _match(gray, state.template, match_region(moved), int(math.ceil(2 / coarse)) + 1, 1.0)
            if fine > -1.0:
                score, moved = fine, _shift(moved, fdx, fdy)
        if score < self.min_match:
            raise TrackLost(
                f"the object is hidden or gone (its best match near where it was expected scores {score:.2f}, "
                f"min_match {self.min_match:g})"
            )
        region = match_region(moved)
        sim = similarity(gray, state.first, region)
        if sim < self.min_similarity:
            raise TrackLost(
                f"the object no longer looks like on its first frame (similarity {sim:.2f}, "
                f"min_similarity {self.min_similarity:g})"
            )
        H, W = gray.shape
        rx1, ry1, rx2, ry2 = _int_rect(region)
        if score >= TEMPLATE_MIN_SCORE and rx1 >= 0 and ry1 >= 0 and rx2 <= W and ry2 <= H:
            th, tw = state.template.shape
            patch = cv2.resize(gray[ry1:ry2, rx1:rx2], (tw, th), interpolation=cv2.INTER_AREA)
            state.template = (1 - TEMPLATE_RATE) * state.template + TEMPLATE_RATE * patch
        cx, cy = (moved[0] + moved[2] - x1 - x2) / 2, (moved[1] + moved[3] - y1 - y2) / 2
        state.velocity = (0.5 * vx + 0.5 * cx, 0.5 * vy + 0.5 * cy)
        state.box = moved
        return TrackableShape("rectangle", moved)


def _scaled(box: Box, s: float) -> Box:
    cx, cy, hw, hh = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) * s / 2, (box[3] - box[1]) * s / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


def _shift(box: Box, dx: float, dy: float) -> Box:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def create(min_similarity: float = 0.2, min_match: float = 0.5) -> OpenCvTracker:
    """Deterministic OpenCV template tracker for rectangles; a track is lost when the tracked
    patch's correlation with the first frame's appearance falls below ``min_similarity`` (-1..1),
    or when the best match of the object's current appearance near where it was expected scores
    below ``min_match`` (-1..1: it is hidden or gone)."""
    return OpenCvTracker(min_similarity=min_similarity, min_match=min_match)


#: This function in the registry (:mod:`autoannotate.registry`).
FUNCTION = FunctionRecord(
    name="opencv_tracker", kind="tracking", extras=("opencv",), requires=("cv2",), license="Apache-2.0 (OpenCV)"
)
