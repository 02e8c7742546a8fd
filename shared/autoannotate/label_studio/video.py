"""Video tasks (``<Video>`` + ``VideoRectangle``): pre-annotate whole videos with tracks, and turn
a box the annotator drew into a tracked sequence over the next frames.

Plain functions of the task, the controls, the functions and the limits: no backend object.
Videos are downloaded under the same rules as images (with ``max_video_bytes`` as the size
limit), and decoded with OpenCV one frame at a time. With a
:class:`~autoannotate.label_studio.video_cache.VideoCache` a task's video is fetched once and kept
on disk (within the cache's byte budget) for the next requests; without one it goes to a
temporary file removed afterwards.

All the boxes of a request are followed in one pass over the video (one tracking session: with
``sam2_video`` every frame is encoded once for all of them).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..interface import DetectionFunction, TrackableShape, TrackingFunction
from ..tracking import detect_and_track, track_shapes
from ..video import read_frames, video_info
from .config import Control
from .fetch import ImageFetcher
from .regions import scored, video_region
from .responses import BadRequest, empty_prediction, failure, task_ref
from .video_cache import VideoCache, temporary_video

log = logging.getLogger(__name__)


def _track_boxes(shapes: Mapping[int, TrackableShape]) -> dict[int, tuple[float, float, float, float]]:
    """Frame index -> pixel box of a track's shapes (a ``TypeError`` for an empty shape, which has none)."""
    boxes = {}
    for k, s in shapes.items():
        box = s.box()
        if box is None:
            raise TypeError(f"the shape on frame {k} is empty and has no box")
        boxes[k] = box
    return boxes


@contextlib.contextmanager
def video_file(fetcher: ImageFetcher, ref: str, max_bytes: int, cache: VideoCache | None = None) -> Iterator[str]:
    """The video at ``ref`` in a local file: the cache's (fetched once), or a temporary file
    removed on exit."""
    if cache is not None:
        with cache.path(fetcher, ref, max_bytes) as path:
            yield path
        return
    with temporary_video(fetcher.fetch(ref, max_bytes=max_bytes)) as path:
        yield path


def pre_annotate_video(
    task: Mapping[str, Any],
    controls: Sequence[Control],
    *,
    detector: DetectionFunction,
    tracker: TrackingFunction,
    fetcher: ImageFetcher,
    key_frame_interval: int,
    conf_threshold: float | None,
    max_video_bytes: int,
    model_version: str,
    video_cache: VideoCache | None = None,
) -> dict:
    """One prediction for a video task: a VideoRectangle region per track (the detector on every
    ``key_frame_interval``-th frame, the tracker in between), on the first control that has a
    mapping (:func:`~autoannotate.label_studio.config.map_controls`). Detections go through that
    control's mapping, so track labels are the control's labels; tracks of unmatched labels are
    dropped. A video that cannot be fetched or read gives a failure record, not an exception."""
    control = next((c for c in controls if c.mapping is not None), None)
    if detector is None or control is None:
        return empty_prediction(model_version)
    try:
        ref = task_ref(task, control, "video")
        with video_file(fetcher, ref, max_video_bytes, video_cache) as path:
            info = video_info(path)
            tracks = detect_and_track(
                detector,
                tracker,
                read_frames(path),
                key_frame_interval=key_frame_interval,
                conf_threshold=conf_threshold,
                mapping=control.mapping,
            )
    except BadRequest as e:
        return failure(str(e))
    except Exception as e:  # noqa: BLE001 - one bad video must not spoil the batch
        return failure(f"{type(e).__name__}: {e}")
    size = (info["width"], info["height"])
    names = {t.id: t.name for t in control.labels}
    regions = []
    for t in tracks:
        label = names.get(t.label_id) if t.label_id is not None else None  # target ids of the control's mapping
        if label is None or not t.shapes:
            continue
        boxes = _track_boxes(t.shapes)
        regions.append(video_region((task.get("id"), t.track_id), control, label, boxes, size, t.score))
    return scored({"result": regions, "model_version": model_version})


def track_drawn_boxes(
    task: Mapping[str, Any],
    context: Any,
    controls: Sequence[Control],
    *,
    tracker: TrackingFunction,
    fetcher: ImageFetcher,
    track_frames: int,
    max_video_bytes: int,
    model_version: str,
    video_cache: VideoCache | None = None,
) -> dict:
    """Follow each VideoRectangle of the interactive ``context`` from its last enabled keyframe
    for ``track_frames`` frames, all of them in one pass over the video; each region keeps its id,
    its labels and the drawn keyframes. A context with no videorectangle (Label Studio asks when
    a video task is opened, before anything is drawn) gets an empty result, as a normal answer;
    :class:`BadRequest` for a videorectangle without usable keyframes."""
    items = (
        [i for i in (context.get("result") or []) if isinstance(i, Mapping) and i.get("type") == "videorectangle"]
        if isinstance(context, Mapping)
        else []
    )
    if not items:
        log.debug("task %s: a video request with no drawn box, nothing to track", task.get("id"))
        return empty_prediction(model_version)
    if not controls:
        raise BadRequest("the labeling config has no VideoRectangle control")
    by_name: dict[Any, Control] = {c.name: c for c in controls}  # looked up with whatever the JSON holds
    ref = task_ref(task, controls[0], "video")
    with video_file(fetcher, ref, max_video_bytes, video_cache) as path:
        info = video_info(path)
        w, h = info["width"], info["height"]
        drawn = []
        for item in items:
            raw_value = item.get("value")
            value = raw_value if isinstance(raw_value, Mapping) else {}
            keys = [k for k in value.get("sequence") or [] if isinstance(k, Mapping) and k.get("enabled", True)]
            try:
                last = max(keys, key=lambda k: int(k["frame"]))
                frame0 = int(last["frame"]) - 1
                x, y, bw, bh = (float(last[k]) for k in ("x", "y", "width", "height"))
            except (KeyError, TypeError, ValueError):
                raise BadRequest("a videorectangle needs keyframes with frame, x, y, width and height") from None
            if not (0 <= frame0 < info["frames"]) or bw <= 0 or bh <= 0:
                raise BadRequest(f"keyframe {frame0 + 1} is outside the video's {info['frames']} frames or empty")
            box = (x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100)
            drawn.append((item, value, frame0, TrackableShape("rectangle", box)))
        first = min(d[2] for d in drawn)
        stop = min(info["frames"], max(d[2] for d in drawn) + track_frames + 1)
        tracks = track_shapes(
            tracker,
            read_frames(path, first, stop),
            [d[3] for d in drawn],
            start_frame=first,
            start_frames=[d[2] for d in drawn],
            num_frames=track_frames,
        )
    regions = []
    for (item, value, frame0, _), track in zip(drawn, tracks):
        control = by_name.get(item.get("from_name"), controls[0])
        labels = value.get("labels") or (control.label_names[:1] or ["object"])
        region = video_region(task.get("id"), control, str(labels[0]), _track_boxes(track.shapes), (w, h))
        earlier = [
            dict(k)
            for k in value.get("sequence") or []
            if isinstance(k, Mapping) and isinstance(k.get("frame"), (int, float)) and int(k["frame"]) < frame0 + 1
        ]
        region["value"]["sequence"] = earlier + region["value"]["sequence"]
        region["value"]["labels"] = [str(lbl) for lbl in labels]
        if item.get("id"):
            region["id"] = str(item["id"])
        regions.append(region)
    return {"result": regions, "score": 0.0, "model_version": model_version}
