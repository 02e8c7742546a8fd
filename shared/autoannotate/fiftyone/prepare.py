"""Checks and decisions every FiftyOne run makes before any inference: the collection, the
function, the label fields and the :class:`~autoannotate.fiftyone.plan.Plan`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import fiftyone as fo

from ..auto import AUTO, resolve_interactive
from ..errors import BadParameterError
from ..interface import DetectionFunction, TrackingFunction, model_version
from ..loading import adapt_function, load_function, parse_label_map
from ..run import fingerprint
from .convert import CONTAINER_TYPES
from .plan import Plan, make_plan, parse_classes

__all__ = [
    "resolve_function",
    "resolve_label_map",
    "check_collection",
    "default_refiner",
    "check_field",
    "plan_run",
    "run_config",
    "RESERVED_FIELDS",
]

RESERVED_FIELDS = {"id", "_id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at"}


def resolve_function(
    function: DetectionFunction | TrackingFunction | str, function_params: Mapping[str, Any] | None
) -> tuple[Any, str, dict]:
    """``(function object, its name for records, its parameters)`` from a name or an object."""
    params = dict(function_params or {})
    if isinstance(function, str):
        return load_function(function, **params), function, params
    if params:
        raise BadParameterError("function_params apply only when function is given by name")
    from .models import from_model, is_model  # a FiftyOne model is wrapped here, the one place

    if is_model(function):
        return from_model(function), f"fiftyone:{type(function).__name__}", {}
    return adapt_function(function), type(function).__name__, {}


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
    field = (dataset.get_frame_field_schema() or {}).get(name) if frames else dataset.get_field(name)
    if field is None:
        return
    expected = CONTAINER_TYPES[container][0]
    doc_type = getattr(field, "document_type", None)
    if doc_type is not expected:
        found = doc_type.__name__ if doc_type else type(field).__name__
        raise BadParameterError(
            f"field {name!r} already holds {found}, but this run writes {expected.__name__}; choose another label_field"
        )


def plan_run(
    samples: Any,
    spec: Any,
    *,
    label_field: str,
    classes: Sequence[Any] | str | None,
    label_map: Mapping[str, Any] | None,
    review: Any,
    frames: bool = False,
) -> Plan:
    """What the run will store, checked against the dataset before any inference."""
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
    for kind, field in plan.fields.items():
        check_field(dataset, field, kind, frames=frames)
    return plan


def run_config(
    kind: str,
    samples: Any,
    ids: Sequence[str],
    function: object,
    function_name: str,
    params: Mapping[str, Any],
    plan: Plan,
    *,
    label_fields: list[str],
    label_map: Mapping[str, Any] | None,
    conf_threshold: float | None,
    overwrite: bool,
    **extra: Any,
) -> dict[str, Any]:
    """What a run's record says about it; runs with the same configuration (and the same target
    samples, by fingerprint) resume each other."""
    return {
        "kind": kind,
        "function": function_name,
        "function_params": dict(params),
        "model_version": model_version(function, function_name),
        "label_fields": label_fields,
        "classes": plan.outputs,
        "label_map": dict(label_map or {}),
        "conf_threshold": conf_threshold,
        "review": {k: [t.lower, t.upper] for k, t in plan.review.items()},
        "overwrite": overwrite,
        **extra,
        "dataset": samples._dataset.name,
        "target": fingerprint(ids),
    }
