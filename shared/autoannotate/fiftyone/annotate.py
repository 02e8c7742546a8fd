"""``annotate_dataset``: auto-label a FiftyOne dataset, view or selection, with review routing.

A run is planned once (:func:`autoannotate.fiftyone.plan.plan_run` builds and checks the
:class:`~autoannotate.fiftyone.plan.RunPlan`), then handed to the run engine,
:func:`autoannotate.run.run` (:func:`run_plan`); this module contributes the sink that writes
FiftyOne image labels.
Labels are written in batches as results arrive (``set_values`` keyed by sample id), never one
save per sample and never one write at the end. Every processed sample gets a container in the
label field, empty when nothing was found, so a run that is killed and started again skips what
is done and continues with the same run key: no duplicates, and the final state equals an
uninterrupted run. Only the run's own label fields are written; a field holding labels that
autoannotate did not make is never overwritten.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from fiftyone import ViewField as F

from ..driver import ImageResult, Progress, iter_annotations
from ..interface import DetectionFunction, TrackingFunction
from ..report import AnnotateReport
from ..run import Sink, processor, run, write_error
from ..settings import (
    DEFAULT_KEY_FRAME_INTERVAL,
    DEFAULT_WRITE_EVERY,
    DEFAULT_WRITE_INTERVAL,
)
from ..signatures import parameters_of
from ..video import iter_video_tracks
from .convert import CONTAINER_TYPES, RUN_ATTRIBUTE, UNREFINED_REASON, LabelBuilder
from .plan import Plan, RunPlan, check_collection, default_refiner, plan_run
from .runs import DatasetRuns, drop_stale_views, eval_key_for, save_review_view
from .schema import declare_fields, schema_lock
from .shards import queue_sharded_run
from .video import VideoSink

log = logging.getLogger(__name__)

__all__ = ["annotate_dataset", "annotate_video_dataset", "run_plan", "ImageSink", "default_refiner"]


@parameters_of(plan_run)
def annotate_dataset(**kwargs: Any) -> AnnotateReport:
    """Auto-label ``samples`` (a dataset or view) into ``label_field``; returns the run's report.

    - ``function``: a detection function object, or a predefined name with ``function_params``.
      An open-vocabulary function (``sam3``, ``owlv2``, ``grounding_dino``) given by name finds the
      names of ``classes`` (else the dataset's classes), unless ``function_params`` has ``classes``.
    - ``classes``: what to store and how: ``[("person", "polygon"), {"name": "car", "output_type":
      "bbox"}, ClassSpec("dog", "mask")]``; names as stored in the dataset. ``None``: the dataset's
      classes for the field (or its default classes), else every function label. Polygon or mask
      from a box-only detector refines its boxes with ``refine_with`` (a predefined name or an
      interactive function object; default ``auto``: the best of EdgeTAM, SAM 2.1 and SAM whose
      weights are here, else ``grabcut``).
      A box whose refinement gives an empty or degenerate mask is stored as its box (a box polygon,
      or a detection without mask) marked ``refined=False``, never dropped; the report counts them
      in ``extra["unrefined_labels"]`` and warns per sample.
    - ``label_map``: synonyms from function names to dataset names, ``{"car": "vehicle"}``.
    - ``conf_threshold``: passed to the function (``None``: the function's default).
    - ``review``: ``(lower, upper)`` or ``{class: (lower, upper), "*": (...)}``: labels at or above
      ``upper`` get ``review="approved"``, between get ``"needs_review"``, below ``lower`` are not
      stored (counted as ``discarded``). Every stored label carries ``confidence``.
    - ``overwrite``: re-label samples that already have labels in the field (only that field).
    - ``max_samples``: process at most this many samples (after skipping) in this call.
    - ``eval_gt_field``: evaluate the stored boxes against this ground-truth field with FiftyOne's
      ``evaluate_detections``, stored as a FiftyOne evaluation under ``report.extra["eval_key"]``
      (the run key; the App's Model Evaluation panel lists it). Its labels are not changed; like
      every FiftyOne evaluation it adds the ``<eval_key>``, ``<eval_key>_id``, ``<eval_key>_iou``
      attributes to the labels of both fields and ``<eval_key>_tp/_fp/_fn`` counts to samples
      (:func:`~autoannotate.fiftyone.admin.delete_run` removes them). Precision, recall and mAP go to
      ``report.extra["evaluation"]``.
    - ``write_every`` / ``write_interval``: labels are written after this many samples or seconds.

    On a video collection this labels frames with tracks: the detection function runs on every
    ``key_frame_interval``-th frame and ``tracker`` (with ``tracker_params``) in between (see
    :func:`annotate_video_dataset`).

    - ``shards``: split the run into this many parallel tasks instead of running it here: the
      samples are cut into disjoint shards by sample id and each is queued as a delegated
      operation for ``fiftyone delegated launch`` workers, under one parent run (see
      :mod:`autoannotate.fiftyone.shards`). Returns at once with ``extra["run_key"]`` (the parent
      run), ``extra["status"] == "queued"`` and ``extra["operations"]``; ``function`` must be a
      name or file path. Images only; not with ``eval_gt_field`` or ``max_samples``.
    - ``run_info``: extra plain values stored in the run record's configuration (a shard stores
      its parent run and index); runs resume only runs with the same values.
    """
    return run_plan(plan_run(**kwargs))  # every argument: planned and checked in one pass


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
    return run_plan(plan_run(**locals()))


def run_plan(plan: RunPlan) -> AnnotateReport:
    """Run a :class:`~autoannotate.fiftyone.plan.RunPlan` with the run engine: images with the
    driver and :class:`ImageSink`, videos with :func:`autoannotate.video.iter_video_tracks` and
    :class:`~autoannotate.fiftyone.video.VideoSink`; a sharded plan is queued for workers
    (:func:`autoannotate.fiftyone.shards.queue_sharded_run`)."""
    if plan.kind == "sharded":
        return queue_sharded_run(plan)
    sink: Sink
    common: dict[str, Any] = dict(
        mapping=plan.mapping,
        conf_threshold=plan.conf_threshold,
        progress=plan.progress,
        desc=f"auto-labelling {plan.dataset.name}",
    )
    if plan.kind == "video":
        process = processor(
            iter_video_tracks, plan.function, plan.tracker, key_frame_interval=plan.key_frame_interval, **common
        )
        labels = plan.labels
        names = {t.id: t.name for t in labels.targets}
        sink = VideoSink(plan.samples, labels.fields, names, labels.outputs, plan.overwrite, bool(labels.review))
    else:
        process = processor(
            iter_annotations, plan.function, batch_size=plan.batch_size, num_workers=plan.num_workers, **common
        )
        sink = ImageSink(plan.samples, plan.labels, overwrite=plan.overwrite, eval_gt_field=plan.eval_gt_field)
    return run(
        plan.items,
        process,
        sink,
        config=plan.config,
        store=DatasetRuns(plan.dataset),
        router=plan.labels.router(),
        max_items=plan.max_samples,
        write_every=plan.write_every,
        write_interval=plan.write_interval,
        unit=plan.unit,
    )


class ImageSink:
    """The run engine's sink for FiftyOne image samples: one container per plan field per sample,
    written with ``set_values`` in batches."""

    def __init__(self, samples: Any, plan: Plan, *, overwrite: bool, eval_gt_field: str | None) -> None:
        self.samples = samples
        self.dataset = samples._dataset
        self.plan = plan
        self.overwrite = overwrite
        self.eval_gt_field = eval_gt_field
        self.attribute_names = {(t.id, a.id): a.name for t in plan.targets for a in t.attributes}
        self.values: dict[str, dict[Hashable, Any]] = {f: {} for f in plan.fields.values()}
        self.builder = LabelBuilder(plan, "", self.attribute_names)
        self.unrefined_warnings: list[tuple[str, str]] = []

    def done_keys(self, run_key: str | None) -> set[Hashable]:
        primary = self.plan.primary_field
        if self.dataset.get_field(primary) is None:
            return set()
        if self.overwrite:  # only this run's own earlier progress counts as done
            return set(self.samples.match(F(f"{primary}.{RUN_ATTRIBUTE}") == run_key).values("id"))
        return set(self.samples.exists(primary).values("id"))

    def begin(self, run_key: str) -> None:
        self.builder = LabelBuilder(self.plan, run_key, self.attribute_names)
        # declared before any label is written, against the database's schema (concurrent runs
        # on one dataset would otherwise each add their field from a stale copy of the schema)
        declare_fields(self.dataset, self.field_types())

    def field_types(self) -> dict[str, Any]:
        return {field: CONTAINER_TYPES[kind][0] for kind, field in self.plan.fields.items()}

    def stored_counts(self, run_key: str) -> dict[str, int]:
        """What run ``run_key`` stored so far (a resumed run's report starts from it)."""
        from .stored import stored_counts

        primary = self.plan.primary_field
        fields = [primary, *(f for f in self.plan.fields.values() if f != primary)]
        return stored_counts(self.samples, fields, run_key)

    def add(self, result: ImageResult) -> list[str | None]:
        containers, stored = self.builder.containers(result.shapes or [], result.reviews, result.size)  # type: ignore[arg-type]
        if self.builder.last_unrefined:
            per_class = Counter(self.builder.last_unrefined)
            what = ", ".join(f"{n} {name!r}" for name, n in per_class.items())
            self.unrefined_warnings.append(
                (result.name, f"{what} label(s) stored as boxes, marked refined=False: refinement gave no usable mask")
            )
        for field, container in containers.items():
            self.values[field][result.key] = container
        return stored

    def pending(self) -> int:
        return max(len(v) for v in self.values.values())

    def flush(self) -> None:
        for field, values in self.values.items():
            if values:
                try:
                    self.dataset.set_values(field, values, key_field="id")
                except Exception as e:
                    raise write_error(f"field {field!r}", len(values), e) from e
                values.clear()

    def finish(self, report: AnnotateReport) -> None:
        """Declare the label attributes, save the needs-review view, evaluate against ground truth."""
        report.extra["label_fields"] = list(self.plan.fields.values())
        if self.builder.counts["unconvertible"]:
            report.extra["unconvertible_shapes"] = self.builder.counts["unconvertible"]
        if self.builder.unrefined:
            report.extra["unrefined_labels"] = {
                "count": sum(self.builder.unrefined.values()),
                "reason": UNREFINED_REASON,
                "classes": dict(self.builder.unrefined),
            }
            for name, reason in self.unrefined_warnings:
                report.add_warning(name, reason)
        run_key = report.extra.get("run_key")
        with schema_lock(self.dataset):
            # the fields and their label attributes (what the App filters on), verified against
            # the database and repaired if a concurrent writer dropped them
            declare_fields(self.dataset, self.field_types(), attributes=True)
            drop_stale_views(self.dataset)
            if self.plan.review and report.needs_review and run_key:
                views = {field: save_review_view(self.dataset, field, run_key) for field in self.plan.fields.values()}
                report.extra["needs_review_view"] = views[self.plan.primary_field]
                if len(views) > 1:
                    report.extra["needs_review_views"] = views
        if self.eval_gt_field:
            report.extra["evaluation"] = self._evaluate(run_key)
            if isinstance(report.extra["evaluation"], dict) and report.extra["evaluation"].get("eval_key"):
                report.extra["eval_key"] = report.extra["evaluation"]["eval_key"]
            # FiftyOne's evaluation adds its fields from its own copy of the schema: what another
            # process declared meanwhile is verified (and repaired) once more
            declare_fields(self.dataset, self.field_types())

    def _evaluate(self, run_key: str | None) -> Any:
        """The run's classes and output types against the ground truth
        (:func:`~autoannotate.fiftyone.evaluation.evaluate_run`), stored under the run's eval key
        (the App's Model Evaluation panel shows it; a repeated evaluation replaces it)."""
        from .evaluation import evaluate_run

        eval_key = eval_key_for(run_key) if run_key else None
        return evaluate_run(self.samples, self.plan.outputs, self.plan.fields, self.eval_gt_field or "", eval_key)
