"""OpenCV's MIL tracker (ships with opencv-python-headless, no weights) for rectangles.

MIL itself never reports a loss, so each step compares the tracked patch with the object's
appearance on the first frame (normalized cross-correlation of grey patches); below
``min_similarity`` the object counts as lost and ``track`` returns ``None``.

MIL samples patches of the box's size at positions around it, and Haar features inside it. Found
by trying boxes on synthetic frames (OpenCV 4.12): a box as tall or as wide as the frame (e.g. a
YOLOX box ``[255.4, 0.5, 399.4, 300.0]`` in a 400x300 frame, which rounds to a 300 px height) has
no positive sample and ``init`` asserts ``!posSamples.empty()``; so does a box that nearly fills
the frame in both directions (``(0, 0, 396, 296)``, ``(3, 3, 394, 294)`` in 400x300), while one
kept :data:`MARGIN` px from every border starts; and a box under about 5x5 px (1 x anything,
2x10, 4x4) makes ``init`` loop forever. So MIL is given the box clipped to the image, kept
:data:`MARGIN` px from its borders and at least :data:`MIN_SIDE` px a side; the offset between
that box and the real one is added back to what MIL reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image

from ..interface import (
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
)
from ..registry import FunctionRecord

PATCH = 32
#: Pixels MIL's box keeps from every image border (3 is not enough for a box spanning the frame).
MARGIN = 4
#: Smallest side of MIL's box in pixels (smaller boxes can make ``TrackerMIL.init`` loop forever).
MIN_SIDE = 8
#: On a failed start, the box is shrunk around its centre by this fraction and tried once more.
RETRY_SHRINK = 0.25


@dataclass
class MilState:
    tracker: Any
    template: np.ndarray
    size: tuple[int, int]
    #: (x1, y1, x2, y2) of the real box minus those of the box MIL follows.
    offsets: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


def _fit(lo_v: float, hi_v: float, lo: int, hi: int) -> tuple[int, int]:
    """``[lo_v, hi_v]`` as integer ``(start, length)`` inside ``[lo, hi]``, at least MIN_SIDE long."""
    length = max(MIN_SIDE, int(round(min(hi_v, hi) - max(lo_v, lo))))
    length = min(length, hi - lo)
    start = int(round((lo_v + hi_v) / 2 - length / 2))
    return max(lo, min(start, hi - length)), length


def mil_box(
    box: tuple[float, float, float, float], size: tuple[int, int], shrink: float = 0.0
) -> tuple[int, int, int, int]:
    """The ``(x, y, w, h)`` box MIL can start on for ``box`` (x1, y1, x2, y2, already inside the
    image) in an image of ``size``: kept MARGIN px from the borders, MIN_SIDE px a side at least,
    optionally shrunk around its centre by ``shrink`` (a fraction)."""
    W, H = size
    x1, y1, x2, y2 = box
    if shrink:
        dx, dy = (x2 - x1) * shrink / 2, (y2 - y1) * shrink / 2
        x1, y1, x2, y2 = x1 + dx, y1 + dy, x2 - dx, y2 - dy
    x, w = _fit(x1, x2, MARGIN, W - MARGIN)
    y, h = _fit(y1, y2, MARGIN, H - MARGIN)
    return x, y, w, h


def _patch(gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    import cv2

    x1, y1, x2, y2 = (int(round(v)) for v in box)
    h, w = gray.shape
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    p = cv2.resize(gray[y1:y2, x1:x2], (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    p -= p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 1e-6 else p


class OpenCvTracker:
    """Rectangles with cv2.TrackerMIL. ``pp_image`` is ``(bgr, gray)`` arrays of the frame."""

    spec = TrackingFunctionSpec(supported_shape_types=("rectangle",))
    model_version = "opencv-mil"

    def __init__(self, min_similarity: float = 0.2) -> None:
        self.min_similarity = float(min_similarity)

    def preprocess_image(
        self, context: TrackingFunctionContext, image: PIL.Image.Image
    ) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        return bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)

    def init_tracking_state(
        self, context: TrackingFunctionShapeContext, pp_image: Any, shape: TrackableShape
    ) -> MilState:
        import cv2

        bgr, gray = pp_image
        W, H = bgr.shape[1], bgr.shape[0]
        x1, y1, x2, y2 = shape.points
        box = (min(max(x1, 0.0), W), min(max(y1, 0.0), H), min(max(x2, 0.0), W), min(max(y2, 0.0), H))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            raise ValueError(f"the box {_fmt(shape.points)} has no pixel inside the {W}x{H} image")
        if W - 2 * MARGIN < MIN_SIDE or H - 2 * MARGIN < MIN_SIDE:
            raise ValueError(
                f"the {W}x{H} image is too small for the MIL tracker "
                f"(it needs {MIN_SIDE + 2 * MARGIN}x{MIN_SIDE + 2 * MARGIN} px at least)"
            )
        error = None
        for shrink in (0.0, RETRY_SHRINK):
            mx, my, mw, mh = mil_box(box, (W, H), shrink)
            tracker = cv2.TrackerMIL.create()
            try:
                tracker.init(bgr, (mx, my, mw, mh))
            except cv2.error as e:
                error = e
                continue
            template = _patch(gray, box)
            offsets = (box[0] - mx, box[1] - my, box[2] - (mx + mw), box[3] - (my + mh))
            return MilState(
                tracker, template if template is not None else np.zeros((PATCH, PATCH), np.float32), (W, H), offsets
            )
        raise RuntimeError(
            f"OpenCV's MIL tracker cannot start on the box {_fmt(box)} in the {W}x{H} image: {_cv_message(error)}"
        )

    def track(self, context: TrackingFunctionShapeContext, pp_image: Any, state: MilState) -> TrackableShape | None:
        import cv2

        bgr, gray = pp_image
        try:
            ok, (x, y, w, h) = state.tracker.update(bgr)
        except cv2.error as e:
            raise RuntimeError(f"OpenCV's MIL tracker failed: {_cv_message(e)}") from None
        if not ok or w <= 0 or h <= 0:
            return None
        W, H = bgr.shape[1], bgr.shape[0]
        ox1, oy1, ox2, oy2 = state.offsets
        box = (
            max(0.0, float(x) + ox1),
            max(0.0, float(y) + oy1),
            min(float(W), float(x + w) + ox2),
            min(float(H), float(y + h) + oy2),
        )
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            return None
        patch = _patch(gray, box)
        if patch is None or float((patch * state.template).sum()) < self.min_similarity:
            return None
        return TrackableShape("rectangle", box)


def _fmt(box: Any) -> str:
    return "[" + ", ".join(f"{round(float(v), 1):g}" for v in box) + "]"


def _cv_message(e: BaseException | None) -> str:
    """The useful part of an OpenCV error: ``(-215:Assertion failed) ... in function 'init'``."""
    text = " ".join(str(e).split()) if e is not None else "unknown error"
    i = text.find("error: (")
    return text[i + len("error: ") :] if i >= 0 else text[:200]


def create(min_similarity: float = 0.2) -> OpenCvTracker:
    """OpenCV MIL tracker for rectangles; a track is lost when the tracked patch's correlation
    with the first frame's appearance falls below ``min_similarity`` (-1..1)."""
    return OpenCvTracker(min_similarity=min_similarity)


#: This function in the registry (:mod:`autoannotate.registry`).
FUNCTION = FunctionRecord(
    name="opencv_tracker", kind="tracking", extras=("opencv",), requires=("cv2",), license="Apache-2.0 (OpenCV)"
)
