"""Drive tracking functions over frames.

- :func:`track_shapes`: follow given shapes from their first frame onwards; a track stops at the
  first frame where the function returns ``None`` (lost).
- :func:`detect_and_track`: run a detection function on key frames and a tracking function in
  between; detections are validated, thresholded and label-mapped exactly as for images
  (:func:`autoannotate.driver.process_output`), then linked to live tracks by IoU (same label,
  greedy by IoU); unmatched detections start new tracks, so a whole video gets tracks with stable
  ids.

Objects fail one by one, never the whole video: a rectangle is clipped to the frame before
tracking starts; a box that is degenerate after clipping, a tracking function whose
``init_tracking_state`` or ``track`` raises, or a tracked shape that breaks the rules (same type as
the tracked shape, finite points of the right count, a mask of the frame's size) ends that one
track, with :attr:`Track.end_reason` saying why (and :attr:`Track.failed`); the other tracks go on.

A track also ends, with the reason in :attr:`Track.end_reason`, when its object leaves the frame
(the tracked rectangle, which a function may return unclipped, has less than :data:`MIN_INSIDE`
of its area inside the frame; a rectangle mostly inside is clipped to the frame), when its
rectangle stays put against the frame's edge while the picture under it changes (a tracker that
clamps the box of an object that walked out), or when the function raises :class:`~autoannotate.interface.TrackLost` (lost, and why: e.g. the patch no
longer looks like the object). ``preprocess_image`` runs
once per frame, however many objects are tracked.

Multi-object tracking functions (SAM 2 video: one memory for every object of a video) also have
``video_session()``, which returns a session for one video with ``add(obj_id, frame_index,
pp_image, shape)`` (prompt an object on a frame; raises if it cannot), ``track(frame_index,
pp_image)`` (every followed object on the next frame: ``{obj_id: shape or None}``, ``None`` when
lost) and ``remove(obj_ids)``. :class:`Tracker` then drives all objects through that one session
(one per :class:`Tracker`, so per video and per run) instead of ``init_tracking_state`` /
``track`` per object; a session that raises ends every track it followed, with ``end_reason``.
Frame indexes given to a session increase by one from frame to frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image

from .driver import check_threshold, process_output
from .errors import BadFunctionError, BadParameterError
from .interface import (
    DetectionFunction,
    DetectionFunctionContext,
    Preprocessing,
    TrackableShape,
    TrackingFunction,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackLost,
    VideoSessions,
)
from .loading import adapt_function
from .mapping import LabelMapping
from .masks import box_iou
from .track_rules import (
    StuckAtEdge,
    clip_rectangle,
    degenerate,
    left_frame,
    short_error,
    validate_tracked,
)


@dataclass
class Track:
    """One object followed through frames: ``shapes`` maps frame index -> shape (pixels).

    ``lost_at`` is the first frame the object is no longer followed on (``None``: followed to the
    end). ``end_reason`` is ``None`` when the track ran to the end or ended without a reason (the
    tracking function returned ``None``, or no detection confirmed it); otherwise a sentence
    saying why it ended: the object left the frame or was lost (``lost on frame N: ...``), or it
    could not be tracked (further), which also sets ``failed`` (a start the function refused, a
    function that raised, a shape that broke the protocol)."""

    track_id: int
    label_id: int | None = None
    score: float | None = None
    shapes: dict[int, TrackableShape] = field(default_factory=dict)
    lost_at: int | None = None
    state: Any = field(default=None, repr=False)
    missed_key_frames: int = 0
    end_reason: str | None = None
    failed: bool = False

    @property
    def last_frame(self) -> int:
        return max(self.shapes)

    def box(self, frame: int) -> tuple[float, float, float, float] | None:
        s = self.shapes.get(frame)
        return s.box() if s else None


class Tracker:
    """Follows many shapes with one tracking function, one preprocessing per frame.

    One object's failure (a box it cannot start on, an exception in the function, a bad tracked
    shape) ends that object's track with ``end_reason``; the others go on."""

    def __init__(self, function: TrackingFunction, *, masks: bool = False) -> None:
        function = adapt_function(function)
        self.function = function
        self.supported = set(function.spec.supported_shape_types)
        self._pre = function.preprocess_image if isinstance(function, Preprocessing) else None
        self._next_id = 0
        self.tracks: list[Track] = []
        self._stuck = StuckAtEdge()
        sessions = function if isinstance(function, VideoSessions) else None
        if masks and sessions is None:
            raise BadParameterError(
                f"{type(function).__name__} gives no masks for tracked boxes; use sam2_video or edgetam_video"
            )
        #: The multi-object session of this video, for functions that have one (see the module doc);
        #: with ``masks``, the tracked rectangles it gives carry the object's mask as ``bitmap``.
        self.session: Any = (
            (sessions.video_session(masks=True) if masks else sessions.video_session()) if sessions else None
        )

    def preprocess(self, frame_index: int, image: PIL.Image.Image) -> Any:
        return self._pre(TrackingFunctionContext(frame_index), image) if self._pre else image

    def _init_state(
        self, pp: Any, frame_index: int, shape: TrackableShape, size: tuple[int, int] | None, verb: str, track_id: int
    ) -> tuple[TrackableShape, Any, str | None]:
        """Clip, check and start the tracking function on ``shape``: ``(shape to record, state,
        None)`` or ``(shape to record, None, why not)``."""
        if size is not None:
            clipped = clip_rectangle(shape, size)
            why = degenerate(clipped, size)
            if why is not None:
                return shape, None, why
            shape = clipped
        try:
            if self.session is not None:
                self.session.add(track_id, frame_index, pp, shape)
                state = self.session
            else:
                state = self.function.init_tracking_state(
                    TrackingFunctionShapeContext(shape.type, frame_index), pp, shape
                )
        except Exception as e:  # noqa: BLE001 - one object the function cannot follow must not stop the video
            return shape, None, f"the tracker could not {verb} on this box (error: {short_error(e)})"
        return shape, state, None

    def start(
        self,
        pp: Any,
        frame_index: int,
        shape: TrackableShape,
        *,
        label_id: int | None = None,
        score: float | None = None,
        size: tuple[int, int] | None = None,
    ) -> Track:
        """Start following ``shape`` from ``frame_index``; ``size`` is the frame's ``(width,
        height)`` (rectangles are clipped to it). Always returns the new track, which ends at once
        (``lost_at = frame_index + 1``, ``end_reason`` set) if the object cannot be tracked."""
        if shape.type not in self.supported:
            raise BadFunctionError(
                f"this tracking function follows {sorted(self.supported)}, not {shape.type!r} shapes"
            )
        if size is not None:
            validate_tracked(shape.type, shape, size, where="the shape to track")
        shape, state, why = self._init_state(pp, frame_index, shape, size, "start", self._next_id)
        track = Track(self._next_id, label_id, score, {frame_index: shape})
        self._next_id += 1
        self.tracks.append(track)
        if why is not None:
            track.lost_at = frame_index + 1
            track.end_reason = f"not tracked: {why}"
            track.failed = True
        else:
            track.state = state
        return track

    def restart(
        self, track: Track, pp: Any, frame_index: int, shape: TrackableShape, size: tuple[int, int] | None = None
    ) -> None:
        """Re-anchor a live track on a fresh shape (a matching detection); if the function cannot
        start on it, the track ends after this frame with ``end_reason``. A multi-object session
        keeps following an object it follows already (see the function's doc)."""
        shape, state, why = self._init_state(pp, frame_index, shape, size, "restart", track.track_id)
        track.shapes[frame_index] = shape
        self._stuck.still.pop(track.track_id, None)  # a detection confirms the object there
        if why is not None:
            self._stop(track, frame_index + 1, why, on=frame_index)
        else:
            track.state = state

    def live(self) -> list[Track]:
        return [t for t in self.tracks if t.lost_at is None]

    def step(self, pp: Any, frame_index: int, size: tuple[int, int], image: PIL.Image.Image | None = None) -> None:
        """Advance every live track to ``frame_index``; lost or failing tracks stop there, and so do
        boxes of per-shape trackers stuck at the frame's edge while the picture under them changes
        (``image``: the frame, needed for that check; a video session's boxes are its masks' own)."""
        if self.session is not None:
            self._step_session(pp, frame_index, size)
        else:
            self._step_functions(pp, frame_index, size)
        if image is not None and self.session is None:  # a session segments each frame anew: no clamped box
            for t, why in self._stuck.check(self.live(), frame_index, image):
                self.end(t, frame_index, why)
                del t.shapes[frame_index]

    def _step_functions(self, pp: Any, frame_index: int, size: tuple[int, int]) -> None:
        for t in self.live():
            original = t.shapes[min(t.shapes)].type
            ctx = TrackingFunctionShapeContext(original, frame_index)
            try:
                shape = self.function.track(ctx, pp, t.state)
            except TrackLost as e:
                self.end(t, frame_index, f"lost on frame {frame_index}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - one object's failure must not stop the others
                self._stop(t, frame_index, f"the tracking function raised {short_error(e)}")
                continue
            self._record(t, shape, frame_index, size, original)

    def _record(
        self, t: Track, shape: Any, frame_index: int, size: tuple[int, int], original: str | None = None
    ) -> None:
        """Check a tracked shape and store it (a rectangle clipped to the frame), or end the track:
        ``None`` (lost), a broken shape (failed), an object that left the frame."""
        if shape is None:
            self.end(t, frame_index)
            return
        try:
            validate_tracked(
                original or t.shapes[min(t.shapes)].type, shape, size, where=f"track() on frame {frame_index}"
            )
        except BadFunctionError as e:
            self._stop(t, frame_index, str(e))
            return
        why = left_frame(shape, size)
        if why is not None:
            self.end(t, frame_index, f"ended on frame {frame_index}: {why}")
            return
        t.shapes[frame_index] = clip_rectangle(shape, size)

    def _step_session(self, pp: Any, frame_index: int, size: tuple[int, int]) -> None:
        live = self.live()
        if not live:
            return
        try:
            shapes = self.session.track(frame_index, pp)
        except Exception as e:  # noqa: BLE001 - the session follows every object: they all stop, the video goes on
            for t in live:
                self._stop(t, frame_index, f"the tracking function raised {short_error(e)}")
            return
        for t in live:
            self._record(t, shapes.get(t.track_id), frame_index, size)

    def end(self, t: Track, frame_index: int, why: str | None = None) -> None:
        """End ``t`` on ``frame_index`` (its first frame without the object); ``why`` goes to
        ``end_reason`` (``None``: lost normally)."""
        t.lost_at = frame_index
        t.state = None
        if why is not None:
            t.end_reason = why
        if self.session is not None:
            self.session.remove([t.track_id])

    def _stop(self, t: Track, frame_index: int, why: str, on: int | None = None) -> None:
        """End ``t`` on ``frame_index`` as failed: stopped on frame ``on`` (default the same)."""
        self.end(t, frame_index, f"tracking stopped on frame {frame_index if on is None else on}: {why}")
        t.failed = True

    def finish(self) -> list[Track]:
        """The tracks, with the tracking function's states (a video session: the model's memory,
        frame features) let go: the returned tracks hold only their shapes."""
        for t in self.tracks:
            t.state = None
        self.session = None
        return self.tracks


def track_shapes(
    function: TrackingFunction,
    frames: Iterable[PIL.Image.Image],
    shapes: list[TrackableShape],
    *,
    start_frame: int = 0,
    labels: list[int | None] | None = None,
    masks: bool = False,
    start_frames: list[int] | None = None,
    num_frames: int | None = None,
) -> list[Track]:
    """Follow ``shapes`` (given on the first of ``frames``) through the following frames.

    ``frames`` are upright RGB images, the first one at index ``start_frame``; iterating stops
    early when every track is lost. Returns one :class:`Track` per shape, in order; an object that
    cannot be tracked (further) has ``end_reason`` set and does not stop the others. ``masks``: the
    tracked rectangles also carry the object's mask (``bitmap``), for multi-object functions that
    have masks (``sam2_video``, ``edgetam_video``; others raise :class:`BadParameterError`).

    ``start_frames``: the frame index each shape is given on (default: all on ``start_frame``), so
    the objects of a video drawn on different frames are followed in one pass (one session);
    ``num_frames``: follow each object at most that many frames after its own start."""
    starts = list(start_frames) if start_frames is not None else [start_frame] * len(shapes)
    if len(starts) != len(shapes) or any(f < start_frame for f in starts):
        raise ValueError("start_frames needs one frame index >= start_frame per shape")
    tracker = Tracker(function, masks=masks)
    by_shape: list[Track | None] = [None] * len(shapes)
    last_start = max(starts, default=start_frame)
    for k, image in enumerate(frames):
        index = start_frame + k
        if index > last_start and not tracker.live():
            break
        pp = tracker.preprocess(index, image)
        if num_frames is not None:
            for t in tracker.live():
                if index - min(t.shapes) > num_frames:
                    tracker.end(t, index)
        tracker.step(pp, index, image.size, image)
        for i, s in enumerate(shapes):
            if starts[i] == index:
                label = (labels or [None] * len(shapes))[i]
                by_shape[i] = tracker.start(pp, index, s, label_id=label, size=image.size)
    out: list[Track] = []
    for i, found in enumerate(by_shape):
        if found is None:  # the frames ended before this shape's frame
            found = Track(
                -1 - i,
                (labels or [None] * len(shapes))[i],
                None,
                {},
                starts[i],
                end_reason=f"not tracked: no frame {starts[i]}",
            )
        out.append(found)
    tracker.finish()
    return out


def detect_and_track(
    detector: DetectionFunction,
    tracking_function: TrackingFunction,
    frames: Iterable[PIL.Image.Image],
    *,
    mapping: LabelMapping | None = None,
    key_frame_interval: int = 5,
    iou_threshold: float = 0.3,
    conf_threshold: float | None = None,
    max_missed_key_frames: int = 1,
    start_frame: int = 0,
) -> list[Track]:
    """Tracks with stable ids over a whole video: detect on every ``key_frame_interval``-th frame,
    track in between. A live track that no detection confirms for more than
    ``max_missed_key_frames`` key frames in a row is ended.

    Each key frame's detections go through :func:`~autoannotate.driver.process_output`: they are
    validated against the detector's spec (a protocol break raises :class:`BadFunctionError`
    naming the frame: the whole video has failed), thresholded with ``conf_threshold`` and mapped
    with ``mapping`` (default: identity), so ``Track.label_id`` is a target label id. Only
    rectangles are linked and tracked."""
    if key_frame_interval < 1:
        raise ValueError("key_frame_interval must be >= 1")
    conf_threshold = check_threshold(conf_threshold)
    detector = adapt_function(detector)
    tracker = Tracker(tracking_function)
    if "rectangle" not in tracker.supported:
        raise BadFunctionError("detect_and_track links detector boxes: the tracking function must follow rectangles")
    if mapping is None:
        mapping = LabelMapping.build(detector.spec)
    for k, image in enumerate(frames):
        index = start_frame + k
        pp = tracker.preprocess(index, image)
        if k > 0:
            tracker.step(pp, index, image.size, image)
        if k % key_frame_interval:
            continue
        ctx = DetectionFunctionContext(frame_name=f"frame {index}", conf_threshold=conf_threshold)
        raw = detector.detect(ctx, image)
        try:
            shapes = process_output(detector.spec, raw, image.size, ctx, mapping)
        except BadFunctionError as e:
            if ctx.frame_name in str(e):
                raise
            raise BadFunctionError(f"on {ctx.frame_name!r}: {e}") from e
        dets = [s for s in shapes if s.type == "rectangle"]
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
                tracker.restart(t, pp, index, TrackableShape("rectangle", dets[di].points), size=image.size)
                t.missed_key_frames = 0
                score = dets[di].score
                if score is not None:
                    t.score = max(t.score or 0.0, score)
        for ti, t in enumerate(live):
            if ti not in used_tracks:
                t.missed_key_frames += 1
                if t.missed_key_frames > max_missed_key_frames:
                    tracker.end(t, index)
                    del t.shapes[index]
        for di, d in enumerate(dets):
            if di not in used_dets:
                tracker.start(
                    pp,
                    index,
                    TrackableShape("rectangle", d.points),
                    label_id=d.label_id,
                    score=d.score,
                    size=image.size,
                )
    return tracker.finish()
