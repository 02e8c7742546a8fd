"""Drive tracking functions over frames.

- :func:`track_shapes`: follow given shapes from their first frame onwards; a track stops at the
  first frame where the function returns ``None`` (lost).
- :func:`detect_and_track`: run a detection function on key frames and a tracking function in
  between; detections are linked to live tracks by IoU (same label, greedy by IoU), unmatched
  detections start new tracks, so a whole video gets tracks with stable ids.

Every shape a tracking function returns is validated (same type as the tracked shape, finite
points of the right count, a mask of the frame's size); a violation raises
:class:`BadFunctionError`. ``preprocess_image`` runs once per frame, however many objects are
tracked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import PIL.Image

from .errors import BadFunctionError
from .interface import (
    DetectionFunctionContext,
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
)
from .masks import box_iou
from .validation import check_points

@dataclass
class Track:
    """One object followed through frames: ``shapes`` maps frame index -> shape (pixels)."""

    track_id: int
    label_id: int | None = None
    score: float | None = None
    shapes: dict[int, TrackableShape] = field(default_factory=dict)
    lost_at: int | None = None
    state: Any = field(default=None, repr=False)
    missed_key_frames: int = 0

    @property
    def last_frame(self) -> int:
        return max(self.shapes)

    def box(self, frame: int) -> tuple[float, float, float, float] | None:
        s = self.shapes.get(frame)
        return s.box() if s else None


def validate_tracked(original_type: str, shape: Any, size: tuple[int, int], *, where: str = "track()") -> None:
    """Raise :class:`BadFunctionError` unless ``shape`` is a sane TrackableShape of ``original_type``."""
    if not isinstance(shape, TrackableShape):
        raise BadFunctionError(f"{where} must return a TrackableShape or None, the function returned {type(shape).__name__}")
    if shape.type != original_type:
        raise BadFunctionError(f"{where} returned a {shape.type!r} for a tracked {original_type!r}")
    if shape.type == "mask":
        w, h = size
        if shape.bitmap is None or getattr(shape.bitmap, "shape", None) != (h, w):
            got = None if shape.bitmap is None else getattr(shape.bitmap, "shape", None)
            raise BadFunctionError(f"{where} returned a mask of shape {got} for a {w}x{h} frame")
        return
    check_points(shape.type, shape.points, where)


class Tracker:
    """Follows many shapes with one tracking function, one preprocessing per frame."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.supported = set(function.spec.supported_shape_types)
        self._pre = getattr(function, "preprocess_image", None)
        self._next_id = 0
        self.tracks: list[Track] = []

    def preprocess(self, frame_index: int, image: PIL.Image.Image) -> Any:
        return self._pre(TrackingFunctionContext(frame_index), image) if self._pre else image

    def start(self, pp: Any, frame_index: int, shape: TrackableShape, *, label_id: int | None = None,
              score: float | None = None, size: tuple[int, int] | None = None) -> Track:
        if shape.type not in self.supported:
            raise BadFunctionError(
                f"this tracking function follows {sorted(self.supported)}, not {shape.type!r} shapes"
            )
        if size is not None:
            validate_tracked(shape.type, shape, size, where="the shape to track")
        track = Track(self._next_id, label_id, score, {frame_index: shape})
        self._next_id += 1
        track.state = self.function.init_tracking_state(TrackingFunctionShapeContext(shape.type, frame_index), pp, shape)
        self.tracks.append(track)
        return track

    def restart(self, track: Track, pp: Any, frame_index: int, shape: TrackableShape) -> None:
        """Re-anchor a live track on a fresh shape (a matching detection)."""
        track.shapes[frame_index] = shape
        track.state = self.function.init_tracking_state(TrackingFunctionShapeContext(shape.type, frame_index), pp, shape)

    def live(self) -> list[Track]:
        return [t for t in self.tracks if t.lost_at is None]

    def step(self, pp: Any, frame_index: int, size: tuple[int, int]) -> None:
        """Advance every live track to ``frame_index``; lost tracks stop there."""
        for t in self.live():
            original = t.shapes[min(t.shapes)].type
            ctx = TrackingFunctionShapeContext(original, frame_index)
            shape = self.function.track(ctx, pp, t.state)
            if shape is None:
                t.lost_at = frame_index
                continue
            validate_tracked(original, shape, size, where=f"track() on frame {frame_index}")
            t.shapes[frame_index] = shape


def track_shapes(
    function: Any,
    frames: Iterable[PIL.Image.Image],
    shapes: list[TrackableShape],
    *,
    start_frame: int = 0,
    labels: list[int | None] | None = None,
) -> list[Track]:
    """Follow ``shapes`` (given on the first of ``frames``) through the following frames.

    ``frames`` are upright RGB images, the first one at index ``start_frame``; iterating stops
    early when every track is lost. Returns one :class:`Track` per shape, in order."""
    tracker = Tracker(function)
    index = start_frame
    for k, image in enumerate(frames):
        index = start_frame + k
        pp = tracker.preprocess(index, image)
        if k == 0:
            for i, s in enumerate(shapes):
                tracker.start(pp, index, s, label_id=(labels or [None] * len(shapes))[i], size=image.size)
            continue
        if not tracker.live():
            break
        tracker.step(pp, index, image.size)
    return tracker.tracks


def detect_and_track(
    detector: Any,
    tracking_function: Any,
    frames: Iterable[PIL.Image.Image],
    *,
    key_frame_interval: int = 5,
    iou_threshold: float = 0.3,
    conf_threshold: float | None = None,
    max_missed_key_frames: int = 1,
    start_frame: int = 0,
) -> list[Track]:
    """Tracks with stable ids over a whole video: detect on every ``key_frame_interval``-th frame,
    track in between. A live track that no detection confirms for more than
    ``max_missed_key_frames`` key frames in a row is ended. Detector labels are kept on tracks."""
    if key_frame_interval < 1:
        raise ValueError("key_frame_interval must be >= 1")
    tracker = Tracker(tracking_function)
    if "rectangle" not in tracker.supported:
        raise BadFunctionError("detect_and_track links detector boxes: the tracking function must follow rectangles")
    for k, image in enumerate(frames):
        index = start_frame + k
        pp = tracker.preprocess(index, image)
        if k > 0:
            tracker.step(pp, index, image.size)
        if k % key_frame_interval:
            continue
        ctx = DetectionFunctionContext(frame_name=f"frame {index}", conf_threshold=conf_threshold)
        dets = [s for s in detector.detect(ctx, image) if s.type == "rectangle"]
        if conf_threshold is not None:
            dets = [d for d in dets if d.score is None or d.score >= conf_threshold]
        live = [t for t in tracker.live() if index in t.shapes]
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        if live and dets:
            ious = box_iou(np.array([d.points for d in dets]), np.array([t.box(index) for t in live]))
            for di, ti in sorted(np.ndindex(*ious.shape), key=lambda p: -ious[p]):
                if ious[di, ti] < iou_threshold or di in used_dets or ti in used_tracks:
                    continue
                if live[ti].label_id is not None and live[ti].label_id != dets[di].label_id:
                    continue
                used_dets.add(di)
                used_tracks.add(ti)
                t = live[ti]
                tracker.restart(t, pp, index, TrackableShape("rectangle", dets[di].points))
                t.missed_key_frames = 0
                if dets[di].score is not None:
                    t.score = max(t.score or 0.0, dets[di].score)
        for ti, t in enumerate(live):
            if ti not in used_tracks:
                t.missed_key_frames += 1
                if t.missed_key_frames > max_missed_key_frames:
                    t.lost_at = index
                    del t.shapes[index]
        for di, d in enumerate(dets):
            if di not in used_dets:
                tracker.start(pp, index, TrackableShape("rectangle", d.points), label_id=d.label_id, score=d.score)
    return tracker.tracks
