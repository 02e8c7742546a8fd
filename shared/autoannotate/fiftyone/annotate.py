"""``annotate_dataset``: auto-label a FiftyOne dataset, view or selection, with review routing.

Labels are written in batches as results arrive (``set_values`` keyed by sample id), never one
save per sample and never one write at the end. Every processed sample gets a container in the
label field, empty when nothing was found, so a run that is killed and started again skips what
is done and continues with the same run key: no duplicates, and the final state equals an
uninterrupted run. Only the run's own label fields are written; a field holding labels that
autoannotate did not make is never overwritten.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Sequence

import fiftyone as fo
from fiftyone import ViewField as F

from ..driver import Progress, check_threshold, iter_annotations
from ..errors import AutoAnnotateError, BadParameterError
from ..loading import load_function
from ..mapping import LabelMapping
from ..refine import BoxRefiner
from ..report import AnnotateReport
from . import runs
from .convert import CONTAINER_TYPES, RUN_ATTRIBUTE, LabelBuilder
from .plan import parse_classes, make_plan

log = logging.getLogger(__name__)

RESERVED_FIELDS = {"id", "_id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at"}


def _resolve_function(function: Any, function_params: Mapping[str, Any] | None) -> tuple[Any, str, dict]:
    params = dict(function_params or {})
    if isinstance(function, str):
        return load_function(function, **params), function, params
    if params:
        raise BadParameterError("function_params apply only when function is given by name")
    return function, type(function).__name__, {}


def default_refiner() -> str:
    """``sam`` when its vit_b weights are on this machine (and the package is installed), else ``grabcut``."""
    try:
        import segment_anything  # noqa: F401

        from ..functions.sam import weights_available

        return "sam" if weights_available("vit_b") else "grabcut"
    except ImportError:
        return "grabcut"


def _check_field(dataset: fo.Dataset, name: str, container: str) -> None:
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit() or name in RESERVED_FIELDS:
        raise BadParameterError(f"label_field {name!r} is not a usable field name")
    field = dataset.get_field(name)
    if field is None:
        return
    expected = CONTAINER_TYPES[container][0]
    doc_type = getattr(field, "document_type", None)
    if doc_type is not expected:
        found = doc_type.__name__ if doc_type else type(field).__name__
        raise BadParameterError(
            f"field {name!r} already holds {found}, but this run writes {expected.__name__}; choose another label_field"
        )


def annotate_dataset(
    samples: Any,
    function: Any,
    *,
    label_field: str,
    classes: Sequence[Any] | None = None,
    label_map: Mapping[str, Any] | None = None,
    conf_threshold: float | None = None,
    review: Any = None,
    overwrite: bool = False,
    max_samples: int | None = None,
    batch_size: int = 8,
    num_workers: int = 2,
    progress: Progress = True,
    function_params: Mapping[str, Any] | None = None,
    refine_with: str | None = None,
    eval_gt_field: str | None = None,
    write_every: int = 64,
    write_interval: float = 5.0,
) -> AnnotateReport:
    """Auto-label ``samples`` (a dataset or view) into ``label_field``; returns the run's report.

    - ``function``: a detection function object, or a predefined name with ``function_params``.
    - ``classes``: what to store and how: ``[("person", "polygon"), {"name": "car", "output_type":
      "bbox"}, ClassSpec("dog", "mask")]``; names as stored in the dataset. ``None``: the dataset's
      classes for the field (or its default classes), else every function label. Polygon or mask
      from a box-only detector refines its boxes with ``refine_with`` (default: ``sam`` when its
      weights are here, else ``grabcut``).
    - ``label_map``: synonyms from function names to dataset names, ``{"car": "vehicle"}``.
    - ``conf_threshold``: passed to the function (``None``: the function's default).
    - ``review``: ``(lower, upper)`` or ``{class: (lower, upper), "*": (...)}``: labels at or above
      ``upper`` get ``review="approved"``, between get ``"needs_review"``, below ``lower`` are not
      stored (counted as ``discarded``). Every stored label carries ``confidence``.
    - ``overwrite``: re-label samples that already have labels in the field (only that field).
    - ``max_samples``: process at most this many samples (after skipping) in this call.
    - ``eval_gt_field``: evaluate the stored boxes against this ground-truth field (nothing is
      written to it); precision, recall and mAP go to ``report.extra["evaluation"]``.

    On a video collection this labels frames with tracks (see
    :func:`autoannotate.fiftyone.video.annotate_video_dataset`).
    """
    if not isinstance(samples, fo.core.collections.SampleCollection):
        raise BadParameterError(f"samples must be a FiftyOne dataset or view, got {type(samples).__name__}")
    if samples.media_type == "video":
        from .video import annotate_video_dataset

        if classes is not None or label_map or max_samples is not None or eval_gt_field:
            raise BadParameterError("for videos, classes, label_map, max_samples and eval_gt_field are not supported yet")
        return annotate_video_dataset(samples, function, label_field=label_field, function_params=function_params,
                                      conf_threshold=conf_threshold, review=review, overwrite=overwrite,
                                      progress=bool(progress) and not callable(progress))
    if samples.media_type not in ("image", None):
        raise BadParameterError(f"annotate_dataset labels images and videos; this collection holds {samples.media_type!r}")
    conf_threshold = check_threshold(conf_threshold)
    if max_samples is not None and max_samples < 0:
        raise BadParameterError(f"max_samples must be >= 0, got {max_samples}")
    dataset = samples._dataset
    class_specs = parse_classes(classes)
    fn, fn_name, params = _resolve_function(function, function_params)
    dataset_classes = dataset.classes.get(label_field) or dataset.default_classes or None
    plan = make_plan(
        fn.spec, label_field=label_field, classes=class_specs, label_map=label_map,
        dataset_classes=None if class_specs else dataset_classes, review=review,
    )
    for kind, field in plan.fields.items():
        _check_field(dataset, field, kind)
    if eval_gt_field is not None and dataset.get_field(eval_gt_field) is None:
        raise BadParameterError(f"eval_gt_field {eval_gt_field!r} is not a field of dataset {dataset.name!r}")
    if overwrite:
        for field in plan.fields.values():
            foreign = samples.exists(field).match(~F(f"{field}.{RUN_ATTRIBUTE}").exists()).count() if dataset.get_field(field) else 0
            if foreign:
                raise BadParameterError(
                    f"{foreign} samples have labels in {field!r} that autoannotate did not make; overwrite=True "
                    "would replace them. Choose another label_field"
                )
    if plan.refine:
        interactive_name = refine_with or default_refiner()
        fn = BoxRefiner(fn, load_function(interactive_name), outputs=plan.refine)
    mapping = LabelMapping.build(fn.spec, plan.targets, synonyms=label_map, allow_unmatched=True,
                                 target_name=f"dataset {dataset.name!r}")

    config = {
        "function": fn_name,
        "function_params": params,
        "model_version": str(getattr(fn, "model_version", fn_name)),
        "label_fields": list(plan.fields.values()),
        "classes": plan.outputs,
        "label_map": dict(label_map or {}),
        "conf_threshold": conf_threshold,
        "review": {k: [t.lower, t.upper] for k, t in plan.review.items()},
        "overwrite": overwrite,
        "refine": {k: v for k, v in plan.refine.items()},
    }
    chash = runs.config_hash(config)
    previous = runs.find_resumable(dataset, chash)
    run_key = previous["run_key"] if previous else runs.new_run_key(dataset)
    record = dict(previous or {}, **config, run_key=run_key, config_hash=chash, status="running",
                  dataset=dataset.name, started_at=(previous or {}).get("started_at") or runs.now())
    record["resumed"] = bool(previous)
    runs.save_run(dataset, record)

    primary = plan.primary_field
    ids, paths = samples.values(["id", "filepath"])
    if dataset.get_field(primary) is None:
        done: set[str] = set()
    elif overwrite:  # only this run's own earlier progress counts as done
        done = set(samples.match(F(f"{primary}.{RUN_ATTRIBUTE}") == run_key).values("id"))
    else:
        done = set(samples.exists(primary).values("id"))
    todo = [(i, p) for i, p in zip(ids, paths) if i not in done]
    if max_samples is not None:
        todo = todo[:max_samples]

    report = AnnotateReport(images_attempted=len(done), images_skipped=len(done))
    attr_names = {(t.id, a.id): a.name for t in plan.targets for a in t.attributes}
    builder = LabelBuilder(plan, run_key, attr_names)
    pending: dict[str, dict[str, Any]] = {f: {} for f in plan.fields.values()}
    last_write = time.monotonic()

    def flush() -> None:
        nonlocal last_write
        for field, values in pending.items():
            if values:
                try:
                    dataset.set_values(field, values, key_field="id")
                except Exception as e:
                    raise AutoAnnotateError(
                        f"writing labels to {field!r} failed ({type(e).__name__}: {e}); what was written is kept "
                        "and running the same call again continues where it stopped"
                    ) from e
                values.clear()
        last_write = time.monotonic()

    status = "failed"
    try:
        for result in iter_annotations(
            fn, todo, mapping=mapping, conf_threshold=conf_threshold, batch_size=batch_size,
            num_workers=num_workers, progress=progress, total=len(todo), report=report, desc=f"auto-labelling {dataset.name}",
        ):
            if result.ok:
                for field, container in builder.containers(result.shapes or [], result.size).items():  # type: ignore[arg-type]
                    pending[field][result.key] = container
            n_pending = max(len(v) for v in pending.values())
            if n_pending >= write_every or (n_pending and time.monotonic() - last_write >= write_interval):
                flush()
        flush()
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            if status != "completed" and any(pending.values()):
                flush()
        except Exception:  # noqa: BLE001 - the original error matters more
            log.exception("could not save pending labels")
        report.annotations_added = builder.counts["added"]
        report.auto_approved = builder.counts["auto_approved"]
        report.needs_review = builder.counts["needs_review"]
        report.discarded = builder.counts["discarded"]
        report.extra.update({"run_key": run_key, "label_fields": list(plan.fields.values())})
        if builder.counts["unconvertible"]:
            report.extra["unconvertible_shapes"] = builder.counts["unconvertible"]
        if status == "completed":
            _finish(dataset, samples, plan, run_key, record, report, eval_gt_field)
        record.update(status=status, finished_at=runs.now(), report=report.to_dict())
        try:
            runs.save_run(dataset, record)
        except Exception:  # noqa: BLE001
            log.exception("could not save the run record")
    return report


def _finish(dataset, samples, plan, run_key, record, report, eval_gt_field) -> None:
    """Declare the label attributes, save the needs-review view, evaluate against ground truth."""
    try:
        dataset.add_dynamic_sample_fields()
    except Exception:  # noqa: BLE001 - schema declaration only helps the App's filters
        log.debug("could not declare dynamic fields", exc_info=True)
    if plan.review and report.needs_review:
        name = f"{run_key}-needs-review".replace("_", "-")
        view = dataset.filter_labels(plan.primary_field, (F("review") == "needs_review") & (F(RUN_ATTRIBUTE) == run_key))
        dataset.save_view(name, view, description=f"labels of autoannotate run {run_key} waiting for review",
                          overwrite=True)
        record["needs_review_view"] = name
        report.extra["needs_review_view"] = name
    if eval_gt_field:
        if "detections" not in plan.fields:
            report.extra["evaluation"] = "skipped: only boxes and masks are evaluated"
            return
        results = samples.evaluate_detections(
            plan.fields["detections"], gt_field=eval_gt_field, eval_key=None, compute_mAP=True, progress=False
        )
        metrics = results.metrics()
        report.extra["evaluation"] = {
            "gt_field": eval_gt_field,
            "precision": round(float(metrics["precision"]), 4),
            "recall": round(float(metrics["recall"]), 4),
            "mAP": round(float(results.mAP()), 4),
        }
