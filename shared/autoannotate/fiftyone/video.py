"""FiftyOne video datasets: propagate detections with a tracking function, and auto-label whole
videos with tracks (a detection function on key frames, a tracking function in between).

Both are runs of :func:`autoannotate.run.run`: batched frame writes (``set_values`` on
``frames.<field>`` for many videos at once), run records, resumable. FiftyOne frame numbers
start at 1; boxes are relative ``[x, y, w, h]``. Every written label carries ``index`` (the
track id), ``confidence``, ``autoannotate_run`` and, with review routing, ``review``.

Trackers with masks (``sam2_video``, ``edgetam_video``) also give each tracked object's mask:
``track_labels(output="masks")`` stores it on the tracked detections, ``output="polylines"``
stores its outline as a closed polyline in ``frames.<label_field>_polylines``; video
``annotate_dataset`` stores mask and polygon classes from it too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from ..driver import Progress, check_threshold, failure_reason, progress_bar
from ..errors import AutoAnnotateError, BadParameterError
from ..interface import DetectionFunction, TrackableShape, TrackingFunction, VideoSessions, model_version
from ..mapping import LabelMapping
from ..report import AnnotateReport
from ..run import run, write_error
from ..settings import DEFAULT_KEY_FRAME_INTERVAL, DEFAULT_WRITE_EVERY, DEFAULT_WRITE_INTERVAL
from ..shapes import Shape
from ..tracking import track_shapes
from ..video import VideoResult, iter_video_tracks, read_frames, video_info
from .convert import RUN_ATTRIBUTE, abs_box, box_label, container, crop_mask, mask_polyline, rel_box, shape_to_label
from .plan import CONTAINER
from .prepare import check_collection, check_field, plan_run, resolve_function, resolve_label_map, run_config
from .runs import DatasetRuns, drop_stale_views, save_review_view
from .schema import declare_fields, schema_lock, sync_fields

log = logging.getLogger(__name__)

__all__ = ["annotate_video_dataset", "track_labels", "DIRECTIONS"]

DIRECTIONS = ("forward", "backward", "both")
#: What ``track_labels`` writes on tracked frames: boxes, boxes with the object's mask, or boxes
#: and the mask's outline as a closed polyline (in ``frames.<label_field>_polylines``).
TRACK_OUTPUTS = ("boxes", "masks", "polylines")
#: Output types a video run stores: boxes with any tracker; masks and polygons with a tracker
#: that gives masks (``video_session``: sam2_video, edgetam_video).
VIDEO_OUTPUTS = ("bbox", "mask", "polygon")


def _gives_masks(function: object) -> bool:
    return isinstance(function, VideoSessions)


class _MaskTracking:
    """A multi-object tracking function whose sessions give masks: the tracked rectangles carry
    the object's mask (``bitmap``), as with ``track_shapes(..., masks=True)``."""

    def __init__(self, function: VideoSessions) -> None:
        self.function = function

    def __getattr__(self, name: str) -> Any:
        return getattr(self.function, name)

    def video_session(self) -> Any:
        return self.function.video_session(masks=True)


class _FrameSink:
    """Writes per-video ``{frame_number: container}`` into ``frames.<field>`` in batches;
    ``label_field`` is the main field, ``values`` holds the pending writes of every field."""

    def __init__(self, samples: Any, label_field: str) -> None:
        self.samples = samples
        self.dataset = samples._dataset
        self.field = label_field
        self.values: dict[str, dict[Hashable, dict[int, Any]]] = {}
        self.run_key = ""

    def done_keys(self, run_key: str | None) -> set[Hashable]:
        return set()

    def begin(self, run_key: str) -> None:
        self.run_key = run_key

    def stored_counts(self, run_key: str) -> dict[str, int]:
        """What run ``run_key`` stored so far (a resumed run's report starts from it)."""
        from .stored import stored_counts

        return stored_counts(self.samples, self.fields(), run_key, frames=True)

    def pending(self) -> int:
        return len({key for per_video in self.values.values() for key in per_video})

    def put(self, field_name: str, key: Hashable, values: dict[int, Any]) -> None:
        self.values.setdefault(field_name, {})[key] = values

    def flush(self) -> None:
        for name, per_video in list(self.values.items()):
            if not per_video:
                continue
            try:
                if self.dataset.get_frame_field_schema().get(name) is None:
                    # the field is created by this write: under the dataset's schema lock, from
                    # the database's schema (concurrent runs would overwrite each other's field)
                    with schema_lock(self.dataset):
                        sync_fields(self.dataset, frames=True)
                        self.dataset.set_values(f"frames.{name}", per_video, key_field="id")
                        declare_fields(self.dataset, self._field_types([name]), frames=True)
                else:
                    self.dataset.set_values(f"frames.{name}", per_video, key_field="id")
            except Exception as e:
                raise write_error(f"frame field {name!r}", len(per_video), e) from e
            del self.values[name]

    def fields(self) -> list[str]:
        return [self.field]

    def finish(self, report: AnnotateReport) -> None:
        report.extra["label_fields"] = [f"frames.{f}" for f in self.fields()]
        # the fields and their label attributes (what the App filters on), verified against the
        # database and repaired if a concurrent writer dropped them
        declare_fields(self.dataset, self._field_types(self.fields()), frames=True, attributes=True)

    def _field_types(self, names: list[str]) -> dict[str, Any]:
        """``{name: label container type}`` of the frame fields among ``names`` that exist."""
        schema = self.dataset.get_frame_field_schema() or {}
        return {n: schema[n].document_type for n in names if getattr(schema.get(n), "document_type", None)}


class _VideoSink(_FrameSink):
    """Tracks -> frame labels in the plan's fields (detections; polylines for polygon classes).
    Every processed video gets a container on frame 1 of each field at least (an empty one when
    nothing was found), so a resumed run skips it. A mask or polygon class's label comes from the
    tracked object's mask; a frame where the track's shape is a detector box without mask (the key
    frame a track starts or is re-anchored on) stores the box, marked ``refined=False``."""

    def __init__(
        self,
        samples: Any,
        fields: dict[str, str],
        names: dict[int, str],
        outputs: dict[str, str],
        overwrite: bool,
        review: bool = False,
    ) -> None:
        super().__init__(samples, next(iter(fields.values())))
        self.kinds = fields  # container kind -> field
        self.names = names
        self.outputs = outputs
        self.overwrite = overwrite
        self.review = review
        self.tracks = 0
        self.unrefined = 0
        self.track_reviews: dict[str, int] = {}

    def fields(self) -> list[str]:
        return list(self.kinds.values())

    def done_keys(self, run_key: str | None) -> set[Hashable]:
        if self.dataset.get_frame_field_schema().get(self.field) is None:
            return set()
        if self.overwrite:  # only this run's own earlier progress counts as done
            return set(self.samples.match_frames(F(f"{self.field}.{RUN_ATTRIBUTE}") == run_key).values("id"))
        return set(self.samples.match_frames(F(self.field) != None).values("id"))  # noqa: E711 - a query

    def _label(self, t: Any, shape: Any, output: str, size: tuple[int, int], attrs: dict[str, Any]) -> Any:
        name = self.names.get(t.label_id, str(t.label_id))
        box = shape.box()
        if box is None:
            return None
        if output != "bbox" and shape.bitmap is not None:
            s = Shape("mask", t.label_id, score=t.score, bitmap=shape.bitmap)
        else:
            s = Shape("rectangle", t.label_id, box, score=t.score)
        label = shape_to_label(s, name, output, size, attrs)
        if label is None and output != "bbox":
            label = box_label(Shape("rectangle", t.label_id, box, score=t.score), name, output, size, attrs)
            self.unrefined += label is not None
        return label

    def add(self, result: VideoResult) -> list[str | None]:
        size = result.size or (1, 1)
        self.tracks += len(result.tracks or [])
        if result.discarded_tracks:
            self.track_reviews["discarded"] = self.track_reviews.get("discarded", 0) + result.discarded_tracks
        per_frame: dict[str, dict[int, list[Any]]] = {kind: {} for kind in self.kinds}
        stored: list[str | None] = []
        for t, status in zip(result.tracks or [], result.reviews or [None] * len(result.tracks or [])):
            attrs: dict[str, Any] = {"index": t.track_id, RUN_ATTRIBUTE: self.run_key}
            if status:
                attrs["review"] = status
                self.track_reviews[status] = self.track_reviews.get(status, 0) + 1
            output = self.outputs.get(self.names.get(t.label_id, ""), "bbox")
            for k, shape in sorted(t.shapes.items()):
                label = self._label(t, shape, output, size, attrs)
                if label is None:
                    continue
                per_frame[CONTAINER[output]].setdefault(k + 1, []).append(label)
                stored.append(status)
        for kind, name in self.kinds.items():
            labels = per_frame[kind]
            values: dict[int, Any] = {n: None for n in range(1, result.frames + 1)} if self.overwrite else {}
            values.update({n: container(kind, items, self.run_key) for n, items in labels.items()})
            if not labels:
                values[1] = container(kind, [], self.run_key)
            self.put(name, result.key, values)
        return stored

    def finish(self, report: AnnotateReport) -> None:
        super().finish(report)
        report.extra["tracks"] = self.tracks
        if self.unrefined:
            report.extra["unrefined_labels"] = self.unrefined  # mask/polygon labels stored as their box
        if self.track_reviews:
            report.extra["tracks_by_review"] = dict(self.track_reviews)
        drop_stale_views(self.dataset)
        run_key = report.extra.get("run_key")
        if self.review and report.needs_review and run_key:
            report.extra["needs_review_view"] = save_review_view(self.dataset, f"frames.{self.field}", run_key)


def annotate_video_dataset(
    samples: Any,
    function: DetectionFunction | str,
    *,
    label_field: str,
    classes: Sequence[Any] | str | None = None,
    label_map: Mapping[str, Any] | str | None = None,
    tracker: TrackingFunction | str = "opencv_tracker",
    function_params: Mapping[str, Any] | None = None,
    tracker_params: Mapping[str, Any] | None = None,
    conf_threshold: float | None = None,
    review: Any = None,
    key_frame_interval: int = DEFAULT_KEY_FRAME_INTERVAL,
    overwrite: bool = False,
    max_samples: int | None = None,
    progress: Progress = True,
    write_every: int = DEFAULT_WRITE_EVERY,
    write_interval: float = DEFAULT_WRITE_INTERVAL,
) -> AnnotateReport:
    """Frame-level detections with track ids (``index``) for every video: the detection function
    runs on key frames, the tracker in between, detections are linked by IoU. Every detection is
    validated and mapped onto the dataset's classes like an image's (``classes``, ``label_map``).
    Videos store boxes; with a tracker that gives masks (``sam2_video``, ``edgetam_video``),
    classes may also ask for ``mask`` (the tracked object's mask on its detection) or ``polygon``
    (its outline, a closed polyline in ``frames.<label_field>`` or, next to boxes,
    ``frames.<label_field>_polylines``): the tracker's masks are used, no box refinement; on the
    key frame a track starts on, its label is the detector's box, marked ``refined=False`` and
    counted in ``extra["unrefined_labels"]``. Videos whose ``frames.<label_field>`` already has
    labels are skipped unless ``overwrite``; a killed run continues where it stopped. Review
    routing applies per track, by the track's best detection score; the report counts frame
    labels."""
    check_collection(samples, "video")
    label_map = resolve_label_map(label_map)
    conf_threshold = check_threshold(conf_threshold)
    if not isinstance(key_frame_interval, int) or key_frame_interval < 1:
        raise BadParameterError(f"key_frame_interval must be an integer >= 1, got {key_frame_interval!r}")
    detector, fn_name, params = resolve_function(function, function_params)
    track_fn, tracker_name, t_params = resolve_function(tracker, tracker_params)
    plan = plan_run(
        samples,
        detector.spec,
        label_field=label_field,
        classes=classes,
        label_map=label_map,
        review=review,
        frames=True,
    )
    not_boxes = {k: v for k, v in plan.outputs.items() if v != "bbox"}
    if not_boxes and (not _gives_masks(track_fn) or any(v not in VIDEO_OUTPUTS for v in not_boxes.values())):
        raise BadParameterError(
            "videos are labelled with boxes (bbox), or with masks and polygons by a tracker that gives masks "
            f"(sam2_video, edgetam_video; this run's: {tracker_name!r}); these classes ask for more: {not_boxes}"
        )
    if not_boxes:
        track_fn = _MaskTracking(track_fn)
    dataset = samples._dataset
    mapping = LabelMapping.build(
        detector.spec, plan.targets, label_map=label_map, allow_unmatched=True, target_name=f"dataset {dataset.name!r}"
    )
    ids, paths = samples.values(["id", "filepath"])
    config = run_config(
        "video",
        samples,
        ids,
        detector,
        fn_name,
        params,
        plan,
        label_fields=[f"frames.{f}" for f in plan.fields.values()],
        label_map=label_map,
        conf_threshold=conf_threshold,
        overwrite=overwrite,
        tracker=tracker_name,
        tracker_params=t_params,
        key_frame_interval=key_frame_interval,
    )
    sink = _VideoSink(
        samples, plan.fields, {t.id: t.name for t in plan.targets}, plan.outputs, overwrite, bool(plan.review)
    )

    def process(todo: Sequence[tuple[Hashable, Any]], report: AnnotateReport) -> Iterator[VideoResult]:
        return iter_video_tracks(
            detector,
            track_fn,
            todo,
            mapping=mapping,
            conf_threshold=conf_threshold,
            key_frame_interval=key_frame_interval,
            report=report,
            progress=progress,
            desc=f"auto-labelling {dataset.name}",
        )

    return run(
        zip(ids, paths),
        process,
        sink,
        config=config,
        store=DatasetRuns(dataset),
        router=plan.router(),
        max_items=max_samples,
        write_every=write_every,
        write_interval=write_interval,
        unit="videos",
    )


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


class _PropagationSink(_FrameSink):
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
    fn, fn_name, params = resolve_function(tracker, tracker_params)
    dataset = samples._dataset
    if dataset.get_frame_field_schema().get(label_field) is None:
        raise BadParameterError(f"{label_field!r} is not a frame field of dataset {dataset.name!r}")
    if output != "boxes" and not _gives_masks(fn):
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

    def process(todo: Sequence[tuple[Hashable, Any]], report: AnnotateReport) -> Iterator[_Propagated]:
        bar = progress_bar(progress, len(todo), "tracking", unit="video")
        try:
            for key, path in todo:
                result = propagation.video(samples, key, path, sink.run_key)
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

    ids, paths = samples.values(["id", "filepath"])
    report = run(
        zip(ids, paths),
        process,
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
