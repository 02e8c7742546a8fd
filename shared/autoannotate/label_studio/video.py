"""Video tasks (``<Video>`` + ``VideoRectangle``): pre-annotate whole videos with tracks, and turn
a box the annotator drew into a tracked sequence over the next frames.

Videos are downloaded under the same rules as images (with ``max_video_bytes`` as the size
limit) into a temporary file that is removed afterwards, and decoded with OpenCV.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..interface import TrackableShape
from ..tracking import detect_and_track, track_shapes
from ..video import read_frames, video_info
from .config import Control
from .regions import prediction_score, video_region

if TYPE_CHECKING:
    from .backend import Backend


class VideoSupport:
    def __init__(self, backend: "Backend") -> None:
        self.backend = backend

    @contextlib.contextmanager
    def video_file(self, ref: str) -> Iterator[str]:
        data = self.backend.fetcher.fetch(ref, max_bytes=self.backend.max_video_bytes)
        fd, path = tempfile.mkstemp(prefix="autoannotate-video-", suffix=".mp4")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            yield path
        finally:
            os.unlink(path)

    def pre_annotate(self, task: Mapping[str, Any], controls: list[Control]) -> dict:
        from .backend import BadRequest, _failure

        b = self.backend
        if b.function is None:
            return {"result": [], "score": 0.0, "model_version": b.model_version}
        try:
            control = next(c for c in controls if c.mapping is not None)
        except StopIteration:
            return {"result": [], "score": 0.0, "model_version": b.model_version}
        try:
            ref = b.image_ref(task, control)
            with self.video_file(ref) as path:
                info = video_info(path)
                tracks = detect_and_track(b.function, b.tracker, read_frames(path), key_frame_interval=b.key_frame_interval,
                                          conf_threshold=b.conf_threshold)
        except BadRequest as e:
            return _failure(str(e))
        except Exception as e:  # noqa: BLE001 - one bad video must not spoil the batch
            return _failure(f"{type(e).__name__}: {e}")
        size = (info["width"], info["height"])
        regions = []
        for t in tracks:
            target = control.mapping.target_for(t.label_id) if t.label_id is not None else None  # type: ignore[union-attr]
            if target is None:
                continue
            boxes = {k: s.box() for k, s in t.shapes.items()}
            regions.append(video_region((task.get("id"), t.track_id), control, target.name, boxes, size, t.score))
        return {"result": regions, "score": prediction_score(regions), "model_version": b.model_version}

    def track_drawn_boxes(self, task: Mapping[str, Any], context: Any, controls: list[Control]) -> dict:
        """Follow each VideoRectangle of the context from its last enabled keyframe for
        ``track_frames`` frames; the region keeps its id, its label and the drawn keyframes."""
        from .backend import BadRequest

        b = self.backend
        items = [i for i in (context.get("result") or []) if isinstance(i, Mapping) and i.get("type") == "videorectangle"] \
            if isinstance(context, Mapping) else []
        if not items:
            raise BadRequest("a video context needs at least one videorectangle region")
        by_name = {c.name: c for c in controls}
        regions = []
        ref = b.image_ref(task, controls[0])
        with self.video_file(ref) as path:
            info = video_info(path)
            w, h = info["width"], info["height"]
            for item in items:
                control = by_name.get(item.get("from_name"), controls[0])
                value = item.get("value") if isinstance(item.get("value"), Mapping) else {}
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
                stop = min(info["frames"], frame0 + b.track_frames + 1)
                (track,) = track_shapes(b.tracker, read_frames(path, frame0, stop), [TrackableShape("rectangle", box)],
                                        start_frame=frame0)
                labels = value.get("labels") or (control.label_names[:1] or ["object"])
                region = video_region(task.get("id"), control, str(labels[0]),
                                      {k: s.box() for k, s in track.shapes.items()}, (w, h))
                drawn = [dict(k) for k in value.get("sequence") or [] if isinstance(k, Mapping)
                         and isinstance(k.get("frame"), (int, float)) and int(k["frame"]) < frame0 + 1]
                region["value"]["sequence"] = drawn + region["value"]["sequence"]
                region["value"]["labels"] = [str(lbl) for lbl in labels]
                if item.get("id"):
                    region["id"] = str(item["id"])
                regions.append(region)
        return {"result": regions, "score": 0.0, "model_version": b.model_version}
