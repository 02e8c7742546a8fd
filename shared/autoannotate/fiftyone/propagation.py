"""FiftyOne video propagation: ``track_labels`` follows the detections of one frame (or the
selected labels) forward, backward or both with a tracking function.

A run of :func:`autoannotate.run.run` like every other (batched frame writes with the
:class:`~autoannotate.fiftyone.video.FrameSink`, run records, resumable). Tracked copies share
their source's ``index`` (track id); with a tracker that gives masks (``sam2_video``,
``edgetam_video``) ``output="masks"`` stores each tracked object's mask and ``output="polylines"``
its outline as a closed polyline in ``frames.<label_field>_polylines``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo

from ..driver import Progress, failure_reason, progress_bar
from ..errors import AutoAnnotateError, BadParameterError
from ..interface import TrackableShape, TrackingFunction, VideoSessions, model_version
from ..report import AnnotateReport
from ..run import processor, run
from ..settings import DEFAULT_WRITE_EVERY, DEFAULT_WRITE_INTERVAL
from ..tracking import track_shapes
from ..video import read_frames, video_info
from .convert import RUN_ATTRIBUTE, abs_box, crop_mask, mask_polyline, rel_box
from .models import resolve_function
from .plan import check_collection, check_field
from .runs import DatasetRuns
from .video import FrameSink

__all__ = ["track_labels", "DIRECTIONS", "TRACK_OUTPUTS"]

DIRECTIONS = ("forward", "backward", "both")
#: What ``track_labels`` writes on tracked frames: boxes, boxes with the object's mask, or boxes
#: and the mask's outline as a closed polyline (in ``frames.<label_field>_polylines``).
TRACK_OUTPUTS = ("boxes", "masks", "polylines")


@dataclass
class _Propagated:
    """One video's tracked copies: ``values`` maps frame number -> the frame's new container;
    ``polylines`` the same for the outlines (``output="polylines"``)."""

    key: Hashable
    name: str
    values: dict[int, Any] = field(default_factory=dict)
    polylines: dict[int, Any] = field(default_factory=dict)
    added: int = 0
    outlines: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def route(self, router: Any) -> int:
        return 0  # tracked copies keep the review state of their source labels


class _PropagationSink(FrameSink):
    def __init__(self, samples: Any, label_field: str, polylines_field: str | None = None) -> None:
        super().__init__(samples, label_field)
        self.polylines_field = polylines_field
        self.outlines = 0

    def fields(self) -> list[str]:
        return [self.field] + ([self.polylines_field] if self.polylines_field else [])

    def add(self, result: _Propagated) -> list[str | None]:
        if result.values:
            self.put(self.field, result.key, result.values)
        if result.polylines and self.polylines_field:
            self.put(self.polylines_field, result.key, result.polylines)
        self.outlines += result.outlines
        return [None] * result.added

    def finish(self, report: AnnotateReport) -> None:
        super().finish(report)
        if self.polylines_field:
            report.extra["polylines_added"] = self.outlines


def track_labels(
    samples: Any,
    label_field: str,
    *,
    tracker: TrackingFunction | str = "opencv_tracker",
    tracker_params: Mapping[str, Any] | None = None,
    frame_number: int = 1,
    label_ids: list[str] | None = None,
    num_frames: int = 30,
    direction: str = "forward",
    overwrite: bool = False,
    progress: Progress = False,
    write_every: int = DEFAULT_WRITE_EVERY,
    write_interval: float = DEFAULT_WRITE_INTERVAL,
    output: str = "boxes",
) -> AnnotateReport:
    """Propagate the detections of ``frames.<label_field>`` on ``frame_number`` (or only the
    labels in ``label_ids``) ``num_frames`` frames forward, backward or both with ``tracker``.

    Each source detection gets an ``index`` (its track id) if it has none; the tracked copies on
    other frames share it. Frames that already hold a detection with that index keep it unless
    ``overwrite``. An object the tracker cannot follow is a warning in the report; the other
    objects are tracked. Returns a report: ``annotations_added`` tracked detections written.
    ``output="masks"`` also stores each tracked detection's instance mask; ``output="polylines"``
    stores the mask's outline as a closed, filled polyline with the same ``index``, ``label`` and
    ``confidence`` in ``frames.<label_field>_polylines`` (``extra["polylines_added"]`` counts
    them; a frame's polyline of that index is kept unless ``overwrite``). Both need a tracker that
    gives masks (``sam2_video`` and ``edgetam_video`` follow every object of a video in one
    session and give masks; other trackers raise :class:`BadParameterError`).
    """
    check_collection(samples, "video")
    if direction not in DIRECTIONS:
        raise BadParameterError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if output not in TRACK_OUTPUTS:
        raise BadParameterError(f"output must be one of {TRACK_OUTPUTS}, got {output!r}")
    if num_frames < 1 or frame_number < 1:
        raise BadParameterError("num_frames and frame_number must be >= 1")
    fn, fn_name, params = resolve_function(tracker, tracker_params, "tracking")
    dataset = samples._dataset
    if dataset.get_frame_field_schema().get(label_field) is None:
        raise BadParameterError(f"{label_field!r} is not a frame field of dataset {dataset.name!r}")
    if output != "boxes" and not isinstance(fn, VideoSessions):
        raise BadParameterError(
            f"tracker {fn_name!r} gives no masks; use sam2_video or edgetam_video for output={output!r}"
        )
    polylines_field = f"{label_field}_polylines" if output == "polylines" else None
    if polylines_field:
        check_field(dataset, polylines_field, "polylines", frames=True)
    propagation = _Propagation(
        fn, label_field, frame_number, set(label_ids or []), num_frames, direction, overwrite, output, polylines_field
    )
    config = {
        "kind": "track_labels",
        "tracker": fn_name,
        "tracker_params": params,
        "model_version": model_version(fn, fn_name),
        "label_fields": [f"frames.{label_field}"] + ([f"frames.{polylines_field}"] if polylines_field else []),
        "frame_number": frame_number,
        "num_frames": num_frames,
        "direction": direction,
        "output": output,
        "label_ids": sorted(label_ids or []),
        "overwrite": overwrite,
        "dataset": dataset.name,
    }
    sink = _PropagationSink(samples, label_field, polylines_field)

    ids, paths = samples.values(["id", "filepath"])
    report = run(
        zip(ids, paths),
        processor(propagation.videos, samples, sink, progress=progress),
        sink,
        config=config,
        store=DatasetRuns(dataset),
        key_prefix="track",
        write_every=write_every,
        write_interval=write_interval,
        unit="videos",
    )
    if propagation.kept:
        report.extra["kept_existing"] = propagation.kept  # frames that already held that track (overwrite=False)
    return report


@dataclass
class _Propagation:
    """How ``track_labels`` follows the source detections of one video."""

    function: TrackingFunction
    field: str
    frame_number: int
    wanted: set[str]
    num_frames: int
    direction: str
    overwrite: bool
    output: str = "boxes"
    polylines_field: str | None = None
    kept: int = 0

    def videos(
        self,
        samples: Any,
        sink: FrameSink,
        todo: Sequence[tuple[Hashable, Any]],
        *,
        report: AnnotateReport,
        progress: Progress,
    ) -> Iterator[_Propagated]:
        """The run's processor: one :class:`_Propagated` per video, counted in ``report``."""
        bar = progress_bar(progress, len(todo), "tracking", unit="video")
        try:
            for key, path in todo:
                result = self.video(samples, key, path, sink.run_key)
                report.images_attempted += 1
                if not result.ok:
                    report.add_failure(result.name, result.error or "unknown error")
                elif result.values:
                    report.images_processed += 1
                else:
                    report.images_skipped += 1  # nothing to track on that frame
                for w in result.warnings:
                    report.add_warning(result.name, w)
                bar.update(1)
                yield result
        finally:
            bar.close()

    def video(self, samples: Any, key: Hashable, path: str, run_key: str) -> _Propagated:
        result = _Propagated(key, path)
        try:
            frames = self._frames(samples, key, self.field)
            outlines = self._frames(samples, key, self.polylines_field) if self.polylines_field else {}
            source = frames.get(self.frame_number)
            dets = [
                d for d in (source.detections if source is not None else []) if not self.wanted or d.id in self.wanted
            ]
            if not dets:
                return result
            self._index(frames, dets)
            result.values[self.frame_number] = source
            info = video_info(path)
            for step in [1, -1] if self.direction == "both" else [1 if self.direction == "forward" else -1]:
                result.added += self._follow(path, info, step, dets, frames, outlines, result, run_key)
        except AutoAnnotateError as e:
            result.error = failure_reason(e, path)
        except Exception as e:  # noqa: BLE001 - one broken video must not stop the others
            result.error = f"{type(e).__name__}: {e}"
        return result

    @staticmethod
    def _frames(samples: Any, key: Hashable, name: str) -> dict[int, Any]:
        sample = samples.select(key).first()
        return {n: f[name] for n, f in sample.frames.items() if f.has_field(name) and f[name] is not None}

    @staticmethod
    def _index(frames: dict[int, Any], dets: list[Any]) -> None:
        used = {d.index for c in frames.values() for d in c.detections if d.index is not None}
        next_index = max(used, default=-1) + 1
        for d in dets:
            if d.index is None:
                d.index = next_index
                next_index += 1

    def _follow(
        self,
        path: str,
        info: dict,
        step: int,
        dets: list[Any],
        frames: dict[int, Any],
        outlines: dict[int, Any],
        result: _Propagated,
        run_key: str,
    ) -> int:
        w, h = info["width"], info["height"]
        start = self.frame_number - 1
        stop = min(info["frames"], start + self.num_frames + 1) if step > 0 else max(-1, start - self.num_frames - 1)
        shapes = [TrackableShape("rectangle", abs_box(d.bounding_box, w, h)) for d in dets]
        masks = self.output != "boxes"
        tracks = track_shapes(self.function, read_frames(path, start, stop, step), shapes, masks=masks)
        added = 0
        for d, t in zip(dets, tracks):
            if t.end_reason:  # the tracker counts frames from this run's first: say FiftyOne's numbers
                reason = re.sub(
                    r"on frame (\d+)", lambda m: f"on frame {self.frame_number + int(m.group(1)) * step}", t.end_reason
                )
                result.warnings.append(f"label {d.id} ({d.label}): {reason}")
            for k, shape in t.shapes.items():
                box = shape.box()
                if k == 0 or box is None:
                    continue
                n = self.frame_number + k * step
                mask = crop_mask(shape.bitmap, box) if self.output == "masks" and shape.bitmap is not None else None
                added += self._put(frames, result, n, d, rel_box(box, w, h), run_key, mask)
                if self.output == "polylines" and shape.bitmap is not None:
                    self._put_outline(outlines, result, n, d, shape.bitmap, (w, h), run_key)
        return added

    def _put_outline(
        self,
        outlines: dict[int, Any],
        result: _Propagated,
        n: int,
        source: Any,
        bitmap: Any,
        size: tuple[int, int],
        run_key: str,
    ) -> None:
        current = outlines.setdefault(n, fo.Polylines())
        if not self.overwrite and any(p.index == source.index for p in current.polylines):
            self.kept += 1
            return
        attrs: dict[str, Any] = {
            "label": source.label,
            "index": source.index,
            "confidence": source.confidence,
            "tracked": True,
            RUN_ATTRIBUTE: run_key,
        }
        line = mask_polyline(bitmap, *size, **attrs)
        if line is None:
            return
        current.polylines = [p for p in current.polylines if p.index != source.index] + [line]
        result.polylines[n] = current
        result.outlines += 1

    def _put(
        self,
        frames: dict[int, Any],
        result: _Propagated,
        n: int,
        source: Any,
        box: list[float],
        run_key: str,
        mask: Any = None,
    ) -> int:
        current = frames.setdefault(n, fo.Detections())
        if not self.overwrite and any(d.index == source.index for d in current.detections):
            self.kept += 1
            return 0
        current.detections = [d for d in current.detections if d.index != source.index] + [
            fo.Detection(
                label=source.label,
                bounding_box=box,
                index=source.index,
                confidence=source.confidence,
                tracked=True,
                **({"mask": mask} if mask is not None else {}),
                **{RUN_ATTRIBUTE: run_key},
            )
        ]
        result.values[n] = current
        return 1
