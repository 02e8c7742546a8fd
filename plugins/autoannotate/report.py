"""The App's view of a run's report (``auto_label``, ``track_labels``): counts, run key, the
needs-review button, the evaluation, failures and warnings as tables."""

from __future__ import annotations

import os

import fiftyone.operators.types as types

#: FiftyOne's Model Evaluation panel (it lists the evaluation each run stores under its key).
MODEL_EVALUATION_PANEL = "model_evaluation_panel_builtin"

_COUNTS = [
    ("images_attempted", "Samples attempted"),
    ("images_processed", "Samples labelled"),
    ("images_skipped", "Samples skipped (already labelled)"),
    ("annotations_added", "Labels stored"),
    ("auto_approved", "Auto-approved"),
    ("needs_review", "Needs review"),
    ("discarded", "Discarded"),
]


def _file_rows(items):
    return [
        {
            "file": os.path.basename(str(f.get("image", ""))) or str(f.get("image", "")),
            "reason": str(f.get("reason", "")),
        }
        for f in items or []
    ]


def _table(outputs, name, label, rows):
    row = types.Object()
    row.str("file", label="File")
    row.str("reason", label="Reason")
    table = types.TableView()
    table.add_column("file", label="File")
    table.add_column("reason", label="Reason")
    outputs.list(name, row, label=label, view=table)


def report_view(report, title="Auto-label report"):
    """The App's view of a run's report (``auto_label``, ``track_labels``): ``(types.Property,
    results)``: the counts, the run key and label fields, a button opening the needs-review view,
    the evaluation, failures and warnings as tables of file and reason, then anything else the
    report carries; ``title`` labels the view."""
    extra = dict(report.get("extra") or {})
    failures = _file_rows(report.get("failures"))
    warnings = _file_rows(report.get("warnings"))
    outputs = types.Object()
    results = {}
    attempted = report.get("images_attempted", 0)
    if not report:
        outputs.view("empty", types.Notice(label="No report"))
        return types.Property(outputs, view=types.View(label=title)), results
    if extra.get("status") == "queued":  # a sharded run: the workers label the samples later
        n = extra.get("samples")
        headline = (
            f"**Queued: {'' if n is None else f'{n} samples in '}{extra.get('shards', '?')} shards** "
            f"(run {extra.get('run_key')}); nothing labelled yet: `fiftyone delegated launch` workers label "
            "them (the runs list shows their progress)"
        )
        results["summary"] = headline
        outputs.md(headline, name="summary")
        for name in ("run_key", "shards", "samples"):
            if extra.get(name) is not None:
                outputs.str(name, label={"run_key": "Run key", "shards": "Shards", "samples": "Samples queued"}[name])
                results[name] = str(extra[name])
        if extra.get("operations"):
            outputs.str("operations", label="Delegated operations")
            results["operations"] = ", ".join(str(o) for o in extra["operations"])
        return types.Property(outputs, view=types.View(label="Auto-label queued")), results
    headline = (
        f"**{report.get('images_processed', 0)} of {attempted} samples labelled**, "
        f"{report.get('annotations_added', 0)} labels stored"
    )
    if failures:
        headline += f", **{len(failures)} failed** (see the table below)"
    elif attempted:
        headline += ", no failures"
    results["summary"] = headline
    outputs.md(headline, name="summary")
    for name, label in _COUNTS:
        outputs.int(name, label=label)
        results[name] = report.get(name, 0)
    run_key = extra.pop("run_key", None)
    outputs.str("run_key", label="Run key")
    results["run_key"] = run_key or "(none: there was nothing to do)"
    fields = extra.pop("label_fields", None)
    if fields:
        outputs.str("label_fields", label="Label fields")
        results["label_fields"] = ", ".join(fields)
    view_name = extra.pop("needs_review_view", None)
    if view_name:
        outputs.str("needs_review_view", label="Needs-review view")
        results["needs_review_view"] = view_name
        outputs.view(
            "open_needs_review",
            types.Button(
                label=f"Open the needs-review view ({report.get('needs_review', 0)} labels)",
                operator="set_view",
                params={"name": view_name},
            ),
        )
    evaluation = extra.pop("evaluation", None)
    if isinstance(evaluation, dict):
        evaluation = dict(evaluation)
        by_type = evaluation.pop("by_type", None) or {}
        evaluation.pop("eval_keys", None)
        first = next(iter(by_type), None)
        for kind, e in list(by_type.items())[1:]:  # the first type's metrics are the top-level ones
            for metric in ("precision", "recall", "mAP"):
                evaluation[f"{kind}_{metric}"] = e[metric]
        for key, value in evaluation.items():
            if value is None:
                continue
            label = {
                "gt_field": "Evaluated against",
                "mAP": "mAP",
                "eval_key": "Evaluation key",
                "classes": "Classes of the run",
                "evaluated": "Evaluated (output type, classes, matching)",
                "not_evaluated": "Not evaluated",
                "classes_without_ground_truth": "Classes without ground truth here",
            }.get(key, key.replace("_", " ").capitalize().replace("map", "mAP"))
            if first and key in ("precision", "recall", "mAP"):
                label += f" ({first})"
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                outputs.float(f"evaluation_{key}", label=label)
            else:
                outputs.str(f"evaluation_{key}", label=label)
                value = str(value)
            results[f"evaluation_{key}"] = value
        if evaluation.get("eval_key"):
            outputs.view(
                "open_evaluation",
                types.Button(
                    label="Open the Model Evaluation panel",
                    operator="open_panel",
                    params={"name": MODEL_EVALUATION_PANEL, "isActive": True, "layout": "horizontal"},
                ),
            )
    elif evaluation is not None:
        outputs.str("evaluation", label="Evaluation")
        results["evaluation"] = str(evaluation)
    if failures:
        _table(outputs, "failures", f"Failures ({len(failures)})", failures)
        results["failures"] = failures
    if warnings:
        _table(outputs, "warnings", f"Warnings ({len(warnings)})", warnings)
        results["warnings"] = warnings
    for key, value in extra.items():
        if value is None or (isinstance(evaluation, dict) and value in evaluation.values() and key.startswith("eval")):
            continue
        outputs.str(f"extra_{key}", label=key.replace("_", " ").capitalize())
        results[f"extra_{key}"] = value if isinstance(value, str) else _plain(value)
    return types.Property(outputs, view=types.View(label=title)), results


def _plain(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)
