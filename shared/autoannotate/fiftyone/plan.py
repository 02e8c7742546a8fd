"""A FiftyOne run planned once: :func:`plan_run` builds and checks the :class:`RunPlan` in one pass
before any inference, for images, videos and sharded runs alike; the front end then hands it to
the run engine (:func:`autoannotate.fiftyone.annotate.run_plan`).

Everything a run could refuse is refused here: a wrong class, a field of another type, a
threshold out of range, a missing ground-truth field, labels ``overwrite`` would wrongly replace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from ..auto import AUTO, resolve_interactive
from ..driver import Progress, check_threshold
from ..errors import BadParameterError
from ..interface import DetectionFunction, InteractiveFunction, TrackingFunction, VideoSessions, model_version
from ..loading import checked_params, parse_label_map, with_classes
from ..mapping import LabelMapping
from ..refine import refined
from ..run import check_max_items, check_write_policy, fingerprint
from ..settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_KEY_FRAME_INTERVAL,
    DEFAULT_NUM_WORKERS,
    DEFAULT_WRITE_EVERY,
    DEFAULT_WRITE_INTERVAL,
)
from ..sharding import check_shards
from .classes import Plan, class_names, make_plan, parse_classes
from .convert import CONTAINER_TYPES, RUN_ATTRIBUTE
from .models import resolve_function
from .video import MaskTracking

__all__ = [
    "RunPlan",
    "plan_run",
    "plan_labels",
    "resolve_function",
    "resolve_label_map",
    "typed_function_params",
    "check_collection",
    "check_field",
    "default_refiner",
    "RESERVED_FIELDS",
    "VIDEO_OUTPUTS",
    "SHARD_ARGS",
    "ENGINE_OPTIONS",
    "Plan",
    "make_plan",
    "parse_classes",
]

RESERVED_FIELDS = {"id", "_id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at"}
#: Output types a video run stores: boxes with any tracker; masks and polygons with a tracker
#: that gives masks (``video_session``: sam2_video, edgetam_video).
VIDEO_OUTPUTS = ("bbox", "mask", "polygon")
#: ``annotate_dataset`` arguments a shard receives (JSON values only: they are stored).
SHARD_ARGS = (
    "label_field",
    "classes",
    "label_map",
    "conf_threshold",
    "review",
    "overwrite",
    "batch_size",
    "num_workers",
    "function_params",
    "refine_with",
    "write_every",
    "write_interval",
)
#: ``plan_run`` arguments a :class:`RunPlan` carries as given, for the run engine and the driver.
ENGINE_OPTIONS = (
    "conf_threshold",
    "overwrite",
    "max_samples",
    "batch_size",
    "num_workers",
    "progress",
    "write_every",
    "write_interval",
    "key_frame_interval",
)


@dataclass
class RunPlan:
    """One FiftyOne run, decided and checked (see :func:`plan_run`).

    ``kind``: ``"images"``, ``"video"`` or ``"sharded"`` (queued for workers, run nowhere here);
    ``function``: the detection function (for images wrapped in a
    :class:`~autoannotate.refine.BoxRefiner` when boxes must become masks or polygons; for a
    sharded run the name each worker loads); ``labels``: classes and output types, label fields,
    review thresholds; ``mapping``: function labels onto the dataset's classes; ``config``: the
    run record's configuration (what a run resumes by); ``items``: ``(sample id, filepath)``
    pairs; the engine's and driver's options (:data:`ENGINE_OPTIONS`) are ``plan_run``'s
    arguments, its defaults where none was given.
    """

    kind: str
    samples: Any
    function: Any
    function_name: str
    labels: Plan
    config: dict[str, Any]
    _: KW_ONLY
    conf_threshold: float | None
    overwrite: bool
    max_samples: int | None
    batch_size: int
    num_workers: int
    progress: Progress
    write_every: int
    write_interval: float
    key_frame_interval: int
    mapping: LabelMapping | None = None
    items: list[tuple[str, str]] = field(default_factory=list)
    eval_gt_field: str | None = None
    tracker: Any = None
    shards: int = 0
    shard_args: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> Any:
        return self.samples._dataset

    @property
    def unit(self) -> str:
        return "videos" if self.kind == "video" else "images"


def plan_run(
    samples: Any,
    function: DetectionFunction | str,
    *,
    label_field: str,
    classes: Sequence[Any] | str | None = None,
    label_map: Mapping[str, Any] | str | None = None,
    conf_threshold: float | None = None,
    review: Any = None,
    overwrite: bool = False,
    max_samples: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = DEFAULT_NUM_WORKERS,
    progress: Progress = True,
    function_params: Mapping[str, Any] | None = None,
    refine_with: InteractiveFunction | str | None = None,
    eval_gt_field: str | None = None,
    write_every: int = DEFAULT_WRITE_EVERY,
    write_interval: float = DEFAULT_WRITE_INTERVAL,
    tracker: TrackingFunction | str = "opencv_tracker",
    tracker_params: Mapping[str, Any] | None = None,
    key_frame_interval: int = DEFAULT_KEY_FRAME_INTERVAL,
    shards: int | None = None,
    run_info: Mapping[str, Any] | None = None,
) -> RunPlan:
    """The one plan of an ``annotate_dataset`` run: these are its parameters (``annotate_dataset``
    takes its signature from here) and they mean what its docstring says. Raises
    :class:`BadParameterError` (or :class:`~autoannotate.errors.LabelMappingError`) before any
    inference."""
    args = dict(locals())  # every argument by name: the plan's options, a shard's stored arguments
    check_collection(samples)
    dataset = samples._dataset
    # an open-vocabulary function (sam3, owlv2, grounding_dino) is built to find the run's classes
    # (the dataset's when none are given); shards get them as explicit function_params
    args["function_params"] = function_params = with_classes(
        function, function_params, class_names(classes, dataset.classes.get(label_field) or dataset.default_classes)
    )
    # checked and typed as create() receives them: the run record keeps max_detections=10, not '10'
    args["function_params"] = function_params = typed_function_params(function, function_params)
    args["tracker_params"] = typed_function_params(tracker, tracker_params)
    if shards is not None:
        return _plan_shards(samples, function, shards, args)
    check_max_items(max_samples, "max_samples")
    check_write_policy(write_every, write_interval)
    args["conf_threshold"] = check_threshold(conf_threshold)
    args["label_map"] = resolve_label_map(label_map)
    if samples.media_type == "video":
        if eval_gt_field:
            raise BadParameterError("eval_gt_field is not supported for videos yet")
        return _plan_video(samples, args)
    if samples.media_type not in ("image", None):
        raise BadParameterError(
            f"annotate_dataset labels images and videos; this collection holds {samples.media_type!r}"
        )
    fn, fn_name, params = resolve_function(function, function_params, "detection")
    labels = _plan_labels(samples, fn.spec, args)
    if eval_gt_field is not None and dataset.get_field(eval_gt_field) is None:
        raise BadParameterError(f"eval_gt_field {eval_gt_field!r} is not a field of dataset {dataset.name!r}")
    if overwrite:
        _refuse_foreign_labels(samples, labels)
    fn = refined(fn, labels.refine, refine_with)
    config = dict(label_fields=list(labels.fields.values()), refine=dict(labels.refine), **dict(run_info or {}))
    return _planned("images", samples, fn, fn_name, params, labels, args, config, eval_gt_field=eval_gt_field)


def _plan_video(samples: Any, args: dict[str, Any]) -> RunPlan:
    """Videos: the detector on key frames, ``tracker`` in between; boxes with any tracker, masks
    and polygons with one that gives masks."""
    key_frame_interval = args["key_frame_interval"]
    if not isinstance(key_frame_interval, int) or key_frame_interval < 1:
        raise BadParameterError(f"key_frame_interval must be an integer >= 1, got {key_frame_interval!r}")
    detector, fn_name, params = resolve_function(args["function"], args["function_params"], "detection")
    track_fn, tracker_name, t_params = resolve_function(args["tracker"], args["tracker_params"], "tracking")
    labels = _plan_labels(samples, detector.spec, args, frames=True)
    not_boxes = {k: v for k, v in labels.outputs.items() if v != "bbox"}
    if not_boxes and (
        not isinstance(track_fn, VideoSessions) or any(v not in VIDEO_OUTPUTS for v in not_boxes.values())
    ):
        raise BadParameterError(
            "videos are labelled with boxes (bbox), or with masks and polygons by a tracker that gives masks "
            f"(sam2_video, edgetam_video; this run's: {tracker_name!r}); these classes ask for more: {not_boxes}"
        )
    if not_boxes:
        track_fn = MaskTracking(track_fn)
    config = dict(
        label_fields=[f"frames.{f}" for f in labels.fields.values()],
        tracker=tracker_name,
        tracker_params=t_params,
        key_frame_interval=key_frame_interval,
    )
    return _planned("video", samples, detector, fn_name, params, labels, args, config, tracker=track_fn)


def _plan_shards(samples: Any, function: DetectionFunction | str, shards: int, args: dict[str, Any]) -> RunPlan:
    """A sharded run: the same checks a plain run makes (a wrong class fails here, not in N
    workers), and the arguments each worker receives, as plain values."""
    check_shards(shards)
    if samples.media_type not in ("image", None):
        raise BadParameterError(f"shards= is for image collections for now; this one holds {samples.media_type!r}")
    if not isinstance(function, str):
        raise BadParameterError(
            "shards= needs the function by name or file path (each worker loads it), not a function object"
        )
    for name, why in (
        ("eval_gt_field", "evaluate after the run with FiftyOne's evaluate_detections"),
        ("max_samples", "select the samples with a view instead"),
    ):
        if args.get(name) is not None:
            raise BadParameterError(f"{name} is not supported with shards= ({why})")
    if not isinstance(args.get("refine_with"), (str, type(None))):
        raise BadParameterError("shards= needs refine_with by name, not a function object")
    stored = {k: args.get(k) for k in SHARD_ARGS}
    stored["label_map"] = resolve_label_map(stored.get("label_map"))
    # review= may be a Calibration or ReviewThresholds: stored below as the plain per-class
    # thresholds the plan resolved it to (what the workers' plans resolve again, identically)
    review = stored.pop("review", None)
    try:
        stored = json.loads(json.dumps(stored))
    except TypeError as e:
        raise BadParameterError(
            f"shards= stores the run's arguments for the workers; they must be plain values: {e}"
        ) from None
    fn, fn_name, _ = resolve_function(function, stored.get("function_params"), "detection")
    labels = _plan_labels(samples, fn.spec, {**stored, "review": review})
    plain_review = {k: [t.lower, t.upper] for k, t in labels.review.items()}
    stored["review"] = plain_review if review is not None else None
    config = {
        "kind": "sharded",
        "function": fn_name,
        "model_version": model_version(fn, fn_name),
        "label_fields": list(labels.fields.values()),
        "review": plain_review,
        "shards": shards,
    }
    options = {k: args[k] for k in ENGINE_OPTIONS}
    return RunPlan("sharded", samples, function, fn_name, labels, config, shards=shards, shard_args=stored, **options)


def typed_function_params(function: Any, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` as ``function``'s ``create`` will receive them, checked without building it
    (:func:`~autoannotate.loading.checked_params`); as given when ``function`` is an object."""
    return checked_params(function, params) if isinstance(function, str) else dict(params or {})


def resolve_label_map(label_map: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """``label_map`` as a dict: a mapping as given, or the form's text ``"car=vehicle, ..."``."""
    if label_map is None:
        return None
    if isinstance(label_map, str):
        return parse_label_map(label_map) or None
    if not isinstance(label_map, Mapping):
        raise BadParameterError(f"label_map must be a dict or 'function_label=dataset_label, ...', got {label_map!r}")
    return dict(label_map)


def check_collection(samples: Any, media_type: str | None = None) -> None:
    """``samples`` must be a FiftyOne dataset or view (of ``media_type``, when given)."""
    if not isinstance(samples, fo.core.collections.SampleCollection):
        raise BadParameterError(f"samples must be a FiftyOne dataset or view, got {type(samples).__name__}")
    if media_type is not None and samples.media_type != media_type:
        raise BadParameterError(f"this needs a {media_type} collection; this one holds {samples.media_type!r}")


def default_refiner() -> str:
    """The interactive function that refines boxes by default: ``auto``'s choice (the best of
    EdgeTAM, SAM 2.1 and SAM whose weights are on this machine, else ``grabcut``)."""
    return resolve_interactive(AUTO)[0]


def check_field(dataset: fo.Dataset, name: str, container: str, *, frames: bool = False) -> None:
    """``name`` is a usable field name, and holds ``container``'s type if it exists already."""
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit() or name in RESERVED_FIELDS:
        raise BadParameterError(f"label_field {name!r} is not a usable field name")
    found_field = (dataset.get_frame_field_schema() or {}).get(name) if frames else dataset.get_field(name)
    if found_field is None:
        return
    expected = CONTAINER_TYPES[container][0]
    doc_type = getattr(found_field, "document_type", None)
    if doc_type is not expected:
        found = doc_type.__name__ if doc_type else type(found_field).__name__
        raise BadParameterError(
            f"field {name!r} already holds {found}, but this run writes {expected.__name__}; choose another label_field"
        )


def plan_labels(
    samples: Any,
    spec: Any,
    *,
    label_field: str,
    classes: Sequence[Any] | str | None,
    label_map: Mapping[str, Any] | None,
    review: Any,
    frames: bool = False,
) -> Plan:
    """What the run will store (the label plan), checked against the dataset's fields."""
    dataset = samples._dataset
    class_specs = parse_classes(classes)
    dataset_classes = dataset.classes.get(label_field) or dataset.default_classes or None
    plan = make_plan(
        spec,
        label_field=label_field,
        classes=class_specs,
        label_map=label_map,
        dataset_classes=None if class_specs else dataset_classes,
        review=review,
    )
    for kind, name in plan.fields.items():
        check_field(dataset, name, kind, frames=frames)
    return plan


def _refuse_foreign_labels(samples: Any, labels: Plan) -> None:
    dataset = samples._dataset
    for name in labels.fields.values():
        if dataset.get_field(name) is None:
            continue
        foreign = samples.exists(name).match(~F(f"{name}.{RUN_ATTRIBUTE}").exists()).count()
        if foreign:
            raise BadParameterError(
                f"{foreign} samples have labels in {name!r} that autoannotate did not make; overwrite=True "
                "would replace them. Choose another label_field"
            )


def _plan_labels(samples: Any, spec: Any, args: Mapping[str, Any], *, frames: bool = False) -> Plan:
    """:func:`plan_labels` with the run's ``label_field``, ``classes``, ``label_map`` and ``review``."""
    return plan_labels(
        samples, spec, frames=frames, **{k: args[k] for k in ("label_field", "classes", "label_map", "review")}
    )


def _planned(
    kind: str,
    samples: Any,
    function: Any,
    function_name: str,
    params: Mapping[str, Any],
    labels: Plan,
    args: Mapping[str, Any],
    config: Mapping[str, Any],
    **plan: Any,
) -> RunPlan:
    """The plan of an image or video run: its items, the mapping of the function's labels onto
    the dataset's classes, the engine's options as given, and the run record's configuration
    (``config``: its label fields and what this kind adds). Runs with the same configuration (and the same target
    samples, by fingerprint) resume each other."""
    dataset = samples._dataset
    label_map = args["label_map"]
    ids, paths = samples.values(["id", "filepath"])
    config = {
        "kind": kind,
        "function": function_name,
        "function_params": dict(params),
        "model_version": model_version(function, function_name),
        "label_fields": config["label_fields"],  # (the records' order of keys, as before)
        "classes": labels.outputs,
        "label_map": dict(label_map or {}),
        "conf_threshold": args["conf_threshold"],
        "review": {k: [t.lower, t.upper] for k, t in labels.review.items()},
        "overwrite": args["overwrite"],
        **config,
        "dataset": dataset.name,
        "target": fingerprint(ids),
    }
    mapping = LabelMapping.build(
        function.spec,
        labels.targets,
        label_map=label_map,
        allow_unmatched=True,
        target_name=f"dataset {dataset.name!r}",
    )
    options = {k: args[k] for k in ENGINE_OPTIONS}
    return RunPlan(
        kind,
        samples,
        function,
        function_name,
        labels,
        config,
        mapping=mapping,
        items=list(zip(ids, paths)),
        **options,
        **plan,
    )
