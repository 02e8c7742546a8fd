"""The auto-label operator's form and the arguments of ``annotate_dataset`` it gives; every
default comes from ``autoannotate.settings``."""

from __future__ import annotations

from typing import Any

import fiftyone.operators.types as types

from autoannotate.loading import function_names, parse_label_map, parse_params, split_list
from autoannotate.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FUNCTION,
    DEFAULT_KEY_FRAME_INTERVAL,
    DEFAULT_LABEL_FIELD,
    DEFAULT_REVIEW,
    DEFAULT_TRACKER,
)

from .common import app_can_schedule, label_fields, log, review_threshold_inputs, saved_calibrations

#: The form's label of each field the checks may flag.
FIELD_LABELS = {
    "function_params": "Function parameters",
    "classes": "Classes",
    "label_map": "Label map",
    "label_field": "Label field",
    "conf_threshold": "Model confidence threshold",
    "review_lower": "Discard below",
    "review_upper": "Auto-approve at or above",
    "eval_gt_field": "Evaluate against ground truth field",
}


def auto_label_inputs(ctx):
    """The auto-label form: every field with its default (from ``autoannotate.settings``), the
    checks of ``autoannotate.fiftyone.form`` shown on the fields they concern."""
    from autoannotate.fiftyone.form import check_form

    inputs = types.Object()
    inputs.view_target(ctx, action_description="Auto-label")
    try:
        check = check_form(ctx.dataset, ctx.params) if ctx.dataset is not None else None
    except Exception:  # noqa: BLE001 - the form must open; the run makes the same checks again
        log.warning("auto_label form check failed", exc_info=True)
        check = None
    errors = check.errors if check else {}

    def flag(name):
        return {"invalid": True, "error_message": errors[name]} if name in errors else {}

    inputs.enum(
        "function",
        function_names("detection"),
        default=DEFAULT_FUNCTION,
        label="Function",
        description="a predefined or installed function (see `autoannotate functions`)",
    )
    if ctx.dataset is not None and ctx.dataset.media_type == "video":
        inputs.enum(
            "tracker",
            function_names("tracking"),
            default=DEFAULT_TRACKER,
            label="Tracker",
            description="follows the detections between key frames",
        )
        inputs.int("key_frame_interval", default=DEFAULT_KEY_FRAME_INTERVAL, min=1, label="Detect on every Nth frame")
    inputs.str(
        "function_params",
        default="",
        label="Function parameters",
        description=(
            "NAME=TYPE:VALUE, comma-separated, e.g. model=str:yolox_nano; torch models also take "
            "device=str:cuda and dtype=str:bfloat16 (defaults: AUTOANNOTATE_DEVICE / AUTOANNOTATE_DTYPE)"
        ),
        **flag("function_params"),
    )
    inputs.str(
        "classes",
        default="",
        label="Classes",
        description="name:output_type, comma-separated (bbox, polygon, polyline, keypoint, mask, tag); empty: all",
        **flag("classes"),
    )
    inputs.str(
        "label_map",
        default="",
        label="Label map",
        description="function_label=dataset_label, comma-separated (e.g. car=vehicle)",
        **flag("label_map"),
    )
    inputs.str("label_field", default=DEFAULT_LABEL_FIELD, required=True, label="Label field", **flag("label_field"))
    inputs.float(
        "conf_threshold",
        min=0.0,
        max=1.0,
        label="Model confidence threshold",
        description="empty: the model's default",
        **flag("conf_threshold"),
    )
    inputs.bool("route", default=True, label="Route labels for review")
    review_threshold_inputs(
        inputs,
        ("review_lower", "review_upper"),
        ("Discard below", "Auto-approve at or above"),
        (flag("review_lower"), flag("review_upper")),
    )
    saved = saved_calibrations(ctx)
    if saved and ctx.params.get("route", True):
        inputs.enum(
            "review_calibration",
            saved,
            label="Review thresholds from a saved calibration",
            description="the thresholds Calibrate review thresholds saved for a field (replace the two above; "
            "classes it refused or lacks use its fallback)",
        )
    inputs.bool("overwrite", default=False, label="Re-label samples that already have labels in this field")
    inputs.int("max_samples", min=0, label="At most this many samples")
    inputs.int("batch_size", default=DEFAULT_BATCH_SIZE, min=1, label="Images per model call")
    if ctx.dataset is None or ctx.dataset.media_type != "video":
        inputs.int(
            "shards",
            default=1,
            min=1,
            label="Split into N parallel tasks",
            description="above 1: queue N delegated operations (by sample id) for `fiftyone delegated launch` "
            "workers; List auto-label runs shows their progress",
        )
    gt_choices = [f for f in label_fields(ctx, frames=False) if f != ctx.params.get("label_field")]
    if ctx.dataset is not None and ctx.dataset.media_type == "video":
        gt_choices = []  # evaluation is for image datasets
    if gt_choices:
        inputs.enum("eval_gt_field", gt_choices, label="Evaluate against ground truth field")
    inputs.bool(
        "delegate",
        default=False,
        label="Run in the background (delegated)",
        description="queue the run for a `fiftyone delegated launch` worker instead of running it now",
    )
    if ctx.params.get("delegate") and not app_can_schedule():
        inputs.view(
            "delegate_setup",
            types.Warning(
                label="The App cannot schedule background runs yet",
                description=(
                    "FiftyOne 1.22 schedules runs for `fiftyone delegated launch` only when the App is started "
                    "with FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true (otherwise it asks for an orchestrator). "
                    "Untick this to run now, or queue it from Python with request_delegation=True."
                ),
            ),
        )
    for i, name in enumerate(errors):
        inputs.view(f"error_{i}", types.Error(label=FIELD_LABELS.get(name, name), description=errors[name]))
    for i, text in enumerate(check.warnings if check else []):
        inputs.view(f"warning_{i}", types.Warning(label="Note", description=text))
    return types.Property(inputs, view=types.View(label="Auto-label with a model"))


def auto_label_arguments(dataset: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``annotate_dataset``'s arguments (after the view) from the form's ``params``: what the
    person left empty takes the package default; a saved calibration replaces the two review
    thresholds; videos get the tracker and the key-frame interval."""
    p = params
    review = (p.get("review_lower", DEFAULT_REVIEW[0]), p.get("review_upper", DEFAULT_REVIEW[1]))
    if not p.get("route", True):
        review = None
    elif p.get("review_calibration"):
        from autoannotate.fiftyone.review import saved_calibration

        review = saved_calibration(dataset, p["review_calibration"]) or review
    video = {
        "tracker": p.get("tracker") or DEFAULT_TRACKER,
        "key_frame_interval": int(p.get("key_frame_interval") or DEFAULT_KEY_FRAME_INTERVAL),
    }
    return dict(
        function=p.get("function") or DEFAULT_FUNCTION,
        function_params=parse_params(split_list(p.get("function_params"))),
        label_field=p.get("label_field") or DEFAULT_LABEL_FIELD,
        classes=split_list(p.get("classes")) or None,
        label_map=parse_label_map(p.get("label_map")) or None,
        conf_threshold=p.get("conf_threshold"),
        review=review,
        overwrite=bool(p.get("overwrite")),
        max_samples=p.get("max_samples"),
        eval_gt_field=p.get("eval_gt_field"),
        batch_size=int(p.get("batch_size") or DEFAULT_BATCH_SIZE),
        shards=int(p["shards"]) if int(p.get("shards") or 1) > 1 else None,
        **(video if dataset.media_type == "video" else {}),
    )
