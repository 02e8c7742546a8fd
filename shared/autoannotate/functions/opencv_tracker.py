"""OpenCV's MIL tracker (ships with opencv-python-headless, no weights) for rectangles.

MIL itself never reports a loss, so each step compares the tracked patch with the object's
appearance on the first frame (normalized cross-correlation of grey patches); below
``min_similarity`` the object counts as lost and ``track`` returns ``None``.
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

PATCH = 32


@dataclass
class MilState:
    tracker: Any
    template: np.ndarray
    size: tuple[int, int]


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

    def preprocess_image(self, context: TrackingFunctionContext, image: PIL.Image.Image) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        return bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)

    def init_tracking_state(self, context: TrackingFunctionShapeContext, pp_image: Any, shape: TrackableShape) -> MilState:
        import cv2

        bgr, gray = pp_image
        x1, y1, x2, y2 = shape.points
        tracker = cv2.TrackerMIL.create()
        tracker.init(bgr, (int(round(x1)), int(round(y1)), max(1, int(round(x2 - x1))), max(1, int(round(y2 - y1)))))
        template = _patch(gray, shape.points)
        return MilState(tracker, template if template is not None else np.zeros((PATCH, PATCH), np.float32),
                        (bgr.shape[1], bgr.shape[0]))

    def track(self, context: TrackingFunctionShapeContext, pp_image: Any, state: MilState) -> TrackableShape | None:
        bgr, gray = pp_image
        ok, (x, y, w, h) = state.tracker.update(bgr)
        if not ok or w <= 0 or h <= 0:
            return None
        W, H = bgr.shape[1], bgr.shape[0]
        box = (max(0.0, float(x)), max(0.0, float(y)), min(float(W), float(x + w)), min(float(H), float(y + h)))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            return None
        patch = _patch(gray, box)
        if patch is None or float((patch * state.template).sum()) < self.min_similarity:
            return None
        return TrackableShape("rectangle", box)


def create(min_similarity: float = 0.2) -> OpenCvTracker:
    """OpenCV MIL tracker for rectangles; a track is lost when the tracked patch's correlation
    with the first frame's appearance falls below ``min_similarity`` (-1..1)."""
    return OpenCvTracker(min_similarity=min_similarity)
