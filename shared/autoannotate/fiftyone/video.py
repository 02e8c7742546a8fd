"""FiftyOne video datasets: propagate detections with a tracking function, and auto-label whole
videos with tracks (a detection function on key frames, a tracking function in between).

FiftyOne frame numbers start at 1; boxes are relative ``[x, y, w, h]``. Every written detection
carries ``index`` (the track id), ``confidence``, ``autoannotate_run`` and, with review routing,
``review``. Each video is written once, with all its frames (one save per video).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import fiftyone as fo

from ..driver import check_threshold
from ..errors import AutoAnnotateError, BadParameterError
from ..interface import TrackableShape
from ..loading import load_function
from ..report import AnnotateReport
from ..tracking import detect_and_track, track_shapes
from ..video import read_frames, video_info
from . import runs
from .convert import RUN_ATTRIBUTE
from .plan import ReviewThresholds, parse_review

log = logging.getLogger(__name__)

DIRECTIONS = ("forward", "backward", "both")


def _function(function: Any, params: Mapping[str, Any] | None) -> tuple[Any, str]:
    if isinstance(function, str):
        return load_function(function, **dict(params or {})), function
    return function, type(function).__name__


def _abs_box(rel: list[float], w: int, h: int) -> tuple[float, float, float, float]:
    x, y, bw, bh = rel
    return x * w, y * h, (x + bw) * w, (y + bh) * h


def _rel_box(box: tuple[float, float, float, float], w: int, h: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h]


def _check_video(samples: Any) -> None:
    if not isinstance(samples, fo.core.collections.SampleCollection):
        raise BadParameterError(f"samples must be a FiftyOne dataset or view, got {type(samples).__name__}")
    if samples.media_type != "video":
        raise BadParameterError(f"this needs a video collection; this one holds {samples.media_type!r}")


def track_labels(
    samples: Any,
    label_field: str,
    *,
    function: Any = "opencv_tracker",
    function_params: Mapping[str, Any] | None = None,
    frame_number: int = 1,
    label_ids: list[str] | None = None,
    num_frames: int = 30,
    direction: str = "forward",
    overwrite: bool = False,
    progress: bool = False,
) -> AnnotateReport:
    """Propagate the detections of ``frames.<label_field>`` on ``frame_number`` (or only the
    labels in ``label_ids``) ``num_frames`` frames forward, backward or both.

    Each source detection gets an ``index`` (its track id) if it has none; the tracked copies on
    other frames share it. Frames that already hold a detection with that index keep it unless
    ``overwrite``. Returns a report: ``annotations_added`` tracked detections written."""
    _check_video(samples)
    if direction not in DIRECTIONS:
        raise BadParameterError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if num_frames < 1 or frame_number < 1:
        raise BadParameterError("num_frames and frame_number must be >= 1")
    fn, fn_name = _function(function, function_params)
    dataset = samples._dataset
    if dataset.get_frame_field_schema().get(label_field) is None:
        raise BadParameterError(f"{label_field!r} is not a frame field of dataset {dataset.name!r}")
    run_key = runs.new_run_key(dataset)
    record = {"run_key": run_key, "kind": "track_labels", "function": fn_name, "function_params": dict(function_params or {}),
              "model_version": str(getattr(fn, "model_version", fn_name)), "label_fields": [f"frames.{label_field}"],
              "frame_number": frame_number, "num_frames": num_frames, "direction": direction, "started_at": runs.now(),
              "status": "running", "dataset": dataset.name}
    runs.save_run(dataset, record)
    report = AnnotateReport()
    wanted = set(label_ids or [])
    for sample in samples.iter_samples(progress=progress):
        report.images_attempted += 1
        frame = sample.frames[frame_number] if frame_number in sample.frames else None
        dets = frame[label_field].detections if frame is not None and frame[label_field] is not None else []
        if wanted:
            dets = [d for d in dets if d.id in wanted]
        if not dets:
            report.images_skipped += 1
            continue
        try:
            info = video_info(sample.filepath)
            w, h = info["width"], info["height"]
            used = {d.index for f in sample.frames.values() if f[label_field] is not None
                    for d in f[label_field].detections if d.index is not None}
            next_index = max(used, default=-1) + 1
            for d in dets:
                if d.index is None:
                    d.index = next_index
                    next_index += 1
            steps = [1, -1] if direction == "both" else [1 if direction == "forward" else -1]
            added = 0
            for step in steps:
                start = frame_number - 1
                stop = min(info["frames"], start + num_frames + 1) if step > 0 else max(-1, start - num_frames - 1)
                shapes = [TrackableShape("rectangle", _abs_box(d.bounding_box, w, h)) for d in dets]
                tracks = track_shapes(fn, read_frames(sample.filepath, start, stop, step), shapes)
                for d, t in zip(dets, tracks):
                    for k, shape in t.shapes.items():
                        if k == 0:
                            continue
                        n = frame_number + k * step
                        added += _put(sample, n, label_field, d, _rel_box(shape.box(), w, h), run_key, overwrite)
            sample.save()
            report.images_processed += 1
            report.annotations_added += added
        except AutoAnnotateError as e:
            report.add_failure(sample.filepath, str(e))
        except Exception as e:  # noqa: BLE001 - one broken video must not stop the others
            report.add_failure(sample.filepath, f"{type(e).__name__}: {e}")
    record.update(status="completed", finished_at=runs.now(), report=report.to_dict())
    runs.save_run(dataset, record)
    report.extra["run_key"] = run_key
    return report


def _put(sample: Any, n: int, field: str, source: Any, box: list[float], run_key: str, overwrite: bool) -> int:
    frame = sample.frames[n]
    container = frame[field] or fo.Detections()
    same = [d for d in container.detections if d.index == source.index]
    if same and not overwrite:
        return 0
    container.detections = [d for d in container.detections if d.index != source.index] + [
        fo.Detection(label=source.label, bounding_box=box, index=source.index, confidence=source.confidence,
                     tracked=True, **{RUN_ATTRIBUTE: run_key})
    ]
    frame[field] = container
    return 1


def annotate_video_dataset(
    samples: Any,
    function: Any,
    *,
    label_field: str,
    tracker: Any = "opencv_tracker",
    function_params: Mapping[str, Any] | None = None,
    tracker_params: Mapping[str, Any] | None = None,
    conf_threshold: float | None = None,
    review: Any = None,
    key_frame_interval: int = 5,
    overwrite: bool = False,
    progress: bool = False,
) -> AnnotateReport:
    """Frame-level detections with track ids (``index``) for every video: the detection function
    runs on key frames, the tracker in between, detections are linked by IoU. Videos whose
    ``frames.<label_field>`` already has labels are skipped unless ``overwrite``. Review routing
    applies per track, by the track's best detection score."""
    _check_video(samples)
    conf_threshold = check_threshold(conf_threshold)
    routing = parse_review(review)
    if isinstance(routing, dict):
        raise BadParameterError("per-class review thresholds are not supported for videos yet; give (lower, upper)")
    detector, fn_name = _function(function, function_params)
    track_fn, tracker_name = _function(tracker, tracker_params)
    dataset = samples._dataset
    names = {lbl.id: lbl.name for lbl in detector.spec.labels}
    run_key = runs.new_run_key(dataset)
    record = {"run_key": run_key, "kind": "video", "function": fn_name, "tracker": tracker_name,
              "model_version": str(getattr(detector, "model_version", fn_name)), "label_fields": [f"frames.{label_field}"],
              "conf_threshold": conf_threshold, "review": None if routing is None else [routing.lower, routing.upper],
              "key_frame_interval": key_frame_interval, "started_at": runs.now(), "status": "running",
              "dataset": dataset.name}
    runs.save_run(dataset, record)
    report = AnnotateReport()
    has_field = dataset.get_frame_field_schema().get(label_field) is not None
    for sample in samples.iter_samples(progress=progress):
        report.images_attempted += 1
        if has_field and not overwrite and any(f[label_field] is not None for f in sample.frames.values()):
            report.images_skipped += 1
            continue
        try:
            info = video_info(sample.filepath)
            w, h = info["width"], info["height"]
            tracks = detect_and_track(detector, track_fn, read_frames(sample.filepath), key_frame_interval=key_frame_interval,
                                      conf_threshold=conf_threshold)
            per_frame: dict[int, list] = {}
            for t in tracks:
                status = _route(routing, t.score, report)
                if status == "discarded":
                    continue
                for k, shape in t.shapes.items():
                    attrs = {RUN_ATTRIBUTE: run_key}
                    if status:
                        attrs["review"] = status
                    per_frame.setdefault(k + 1, []).append(fo.Detection(
                        label=names.get(t.label_id, str(t.label_id)), bounding_box=_rel_box(shape.box(), w, h),
                        index=t.track_id, confidence=t.score, **attrs))
            if overwrite:
                for f in sample.frames.values():
                    f[label_field] = None
            for n, dets in per_frame.items():
                sample.frames[n][label_field] = fo.Detections(detections=dets)
                report.annotations_added += len(dets)
            sample.save()
            report.images_processed += 1
            report.extra["tracks"] = report.extra.get("tracks", 0) + len(tracks)
        except Exception as e:  # noqa: BLE001 - one broken video must not stop the others
            report.add_failure(sample.filepath, f"{type(e).__name__}: {e}" if not isinstance(e, AutoAnnotateError) else str(e))
    record.update(status="completed", finished_at=runs.now(), report=report.to_dict())
    runs.save_run(dataset, record)
    report.extra["run_key"] = run_key
    return report


def _route(routing: ReviewThresholds | None, score: float | None, report: AnnotateReport) -> str | None:
    if routing is None:
        return None
    status = routing.route(score)
    if status == "approved":
        report.auto_approved += 1
    elif status == "needs_review":
        report.needs_review += 1
    else:
        report.discarded += 1
    return status
