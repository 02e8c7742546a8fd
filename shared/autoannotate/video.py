"""Videos: read frames with OpenCV (``opencv-python-headless``) as upright RGB PIL images, and
turn whole videos into tracks (:func:`iter_video_tracks`, the processor of video runs)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image

from .errors import AutoAnnotateError, BadFunctionError, ImageLoadError
from .interface import DetectionFunction, TrackingFunction

log = logging.getLogger(__name__)


def video_info(path: str | Path) -> dict:
    """``{"frames", "fps", "width", "height"}`` of a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageLoadError(f"{path}: cannot open video")
    try:
        return {
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(cap.get(cv2.CAP_PROP_FPS)) or 25.0,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        cap.release()


def read_frames(path: str | Path, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[PIL.Image.Image]:
    """Frames ``start, start + step, ...`` (0-based) before ``stop``; backwards when ``step < 0``."""
    import cv2

    if not Path(path).is_file():
        raise ImageLoadError(f"{path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageLoadError(f"{path}: cannot open video")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if stop is None:
            stop = total if step > 0 else -1
        indexes = range(start, stop, step)
        if step == 1:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            for _ in indexes:
                ok, frame = cap.read()
                if not ok:
                    return
                yield PIL.Image.fromarray(frame[:, :, ::-1])
            return
        for i in indexes:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                return
            yield PIL.Image.fromarray(frame[:, :, ::-1])
    finally:
        cap.release()


@dataclass
class VideoResult:
    """The outcome for one video: its tracks (label ids are the target's, via the mapping) or the
    reason it failed. ``size`` is ``(width, height)``; ``frames`` the frame count. ``reviews``
    holds each track's review status once routed; ``warnings`` the objects that could not be
    followed (their tracks end early; the rest of the video is labelled)."""

    key: Hashable
    name: str
    tracks: list[Any] | None
    size: tuple[int, int] | None = None
    frames: int = 0
    error: str | None = None
    reviews: list[str | None] | None = None
    warnings: list[str] = field(default_factory=list)
    discarded_tracks: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def route(self, router: Any) -> int:
        """Route each track by its label and best score; returns how many frame labels were
        discarded (all frames of a discarded track)."""
        kept, reviews, discarded = [], [], 0
        for t in self.tracks or []:
            status = router.route(t.label_id, t.score)
            if status == "discarded":
                discarded += len(t.shapes)
                self.discarded_tracks += 1
                continue
            kept.append(t)
            reviews.append(status)
        self.tracks, self.reviews = kept, reviews
        return discarded


def iter_video_tracks(
    detector: DetectionFunction,
    tracker: TrackingFunction,
    items: Sequence[tuple[Hashable, str]],
    *,
    mapping: Any = None,
    conf_threshold: float | None = None,
    key_frame_interval: int = 5,
    report: Any = None,
    progress: Any = True,
    desc: str = "tracking",
) -> Iterator[VideoResult]:
    """Yield a :class:`VideoResult` per ``(key, path)`` video, in order: the detection function on
    key frames, the tracking function in between (:func:`autoannotate.tracking.detect_and_track`;
    every detection validated and mapped). Frames are decoded one at a time. A video that cannot be
    read or whose function breaks the protocol is a failure record; the others go on. ``report``
    (an :class:`~autoannotate.report.AnnotateReport`) counts videos as items."""
    from .driver import failure_reason, progress_bar
    from .tracking import detect_and_track

    bar = progress_bar(progress, len(items), desc, unit="video")
    try:
        for key, path in items:
            name = str(path)
            try:
                info = video_info(path)
                tracks = detect_and_track(
                    detector,
                    tracker,
                    read_frames(path),
                    mapping=mapping,
                    key_frame_interval=key_frame_interval,
                    conf_threshold=conf_threshold,
                )
                result = VideoResult(key, name, tracks, (info["width"], info["height"]), info["frames"])
                result.warnings = [f"track {t.track_id}: {t.end_reason}" for t in tracks if t.failed]
            except BadFunctionError as e:
                result = VideoResult(key, name, None, error=f"function broke the protocol: {e}")
            except AutoAnnotateError as e:
                result = VideoResult(key, name, None, error=failure_reason(e, name))
            except Exception as e:  # noqa: BLE001 - one broken video must not stop the others
                log.debug("error on video %s", name, exc_info=True)
                result = VideoResult(key, name, None, error=f"{type(e).__name__}: {e}")
            _count(report, result)
            bar.update(1)
            yield result
    finally:
        bar.close()


def _count(report: Any, result: VideoResult) -> None:
    if not result.ok:
        log.warning("%s: %s", result.name, result.error)
    if report is not None:
        report.count(result.name, result.error, result.warnings)
