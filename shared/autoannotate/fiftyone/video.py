"""FiftyOne video datasets: auto-label whole videos with tracks (a detection function on key
frames, a tracking function in between): the sink that writes a video plan's tracks as frame
labels (run by ``annotate_dataset`` / ``annotate_video_dataset`` in
:mod:`autoannotate.fiftyone.annotate`, processed by :func:`autoannotate.video.iter_video_tracks`).
Propagating existing labels is :mod:`autoannotate.fiftyone.propagation` (``track_labels``).

A run of :func:`autoannotate.run.run`, planned by :func:`autoannotate.fiftyone.plan.plan_run`:
batched frame writes (``set_values`` on ``frames.<field>`` for many videos at once, the
:class:`FrameSink` both video features share), run records, resumable. FiftyOne frame numbers
start at 1; boxes are relative ``[x, y, w, h]``. Every written label carries ``index`` (the
track id), ``confidence``, ``autoannotate_run`` and, with review routing, ``review``.
Trackers with masks (``sam2_video``, ``edgetam_video``) give each tracked object's mask: mask
and polygon classes are stored from it.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

from fiftyone import ViewField as F

from ..interface import VideoSessions
from ..report import AnnotateReport
from ..run import write_error
from ..shapes import Shape
from ..video import VideoResult
from .classes import CONTAINER
from .convert import RUN_ATTRIBUTE, box_label, container, shape_to_label
from .runs import drop_stale_views, save_review_view
from .schema import declare_fields, schema_lock, sync_fields

log = logging.getLogger(__name__)

__all__ = ["VideoSink", "FrameSink", "MaskTracking"]


class MaskTracking:
    """A multi-object tracking function whose sessions give masks: the tracked rectangles carry
    the object's mask (``bitmap``), as with ``track_shapes(..., masks=True)``."""

    def __init__(self, function: VideoSessions) -> None:
        self.function = function

    def __getattr__(self, name: str) -> Any:
        return getattr(self.function, name)

    def video_session(self) -> Any:
        return self.function.video_session(masks=True)


class FrameSink:
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


class VideoSink(FrameSink):
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
