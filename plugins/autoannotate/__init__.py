"""FiftyOne plugin of autoannotate: thin operators over ``autoannotate.fiftyone``.

Install the core with ``pip install "autoannotate[fiftyone,onnx]"`` and put the folder that
contains this plugin on ``FIFTYONE_PLUGINS_DIR`` (or ``fiftyone plugins create``/download it).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoannotate.loading import function_names, parse_label_map, parse_params, split_list
from autoannotate.settings import DEFAULT_BATCH_SIZE

log = logging.getLogger(__name__)

LABEL_LIST_TYPES = ("Detections", "Polylines", "Keypoints", "Classifications")
#: The plugin's name in fiftyone.yml (operator URIs are ``<PLUGIN_NAME>/<operator>``).
PLUGIN_NAME = "@autoannotate/autoannotate"
#: FiftyOne's Model Evaluation panel (it lists the evaluation each run stores under its key).
MODEL_EVALUATION_PANEL = "model_evaluation_panel_builtin"
#: Seconds between two progress updates sent to the App or stored for a delegated run.
PROGRESS_EVERY = 0.5


def _label_fields(ctx, frames=True):
    """The dataset's label-list fields; on videos also its frame fields as ``frames.<name>``."""
    if ctx.dataset is None:
        return []

    def lists(schema, prefix=""):
        return [
            prefix + name
            for name, field in (schema or {}).items()
            if getattr(getattr(field, "document_type", None), "__name__", "") in LABEL_LIST_TYPES
        ]

    out = lists(ctx.dataset.get_field_schema())
    if frames and ctx.dataset.media_type == "video":
        out += lists(ctx.dataset.get_frame_field_schema(), "frames.")
    return out


def _progress_label(done, total):
    return f"{done} / {total if total is not None else '?'} samples"


def _delegated_progress(ctx):
    """``(done, total)`` callback storing the run's progress on its delegated operation (at most
    every ``PROGRESS_EVERY`` seconds, and always the last one)."""
    last = [0.0]

    def report(done, total):
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY and done != total:
            return
        last[0] = now
        ctx.set_progress(progress=(done / total) if total else None, label=_progress_label(done, total))

    return report


def _app_can_schedule():
    """Whether FiftyOne's App offers "Schedule" without a registered orchestrator (1.22: only
    with legacy orchestrators, i.e. ``fiftyone delegated launch`` workers, allowed)."""
    import fiftyone as fo

    return bool(getattr(fo.config, "allow_legacy_orchestrators", True))


def _streams_to_app(ctx):
    """True when the App runs the operator right now: its execution requests carry
    ``operator_uri`` (``fiftyone.operators.execute_operator`` and delegated workers do not), and
    it reads a generator's messages (progress, the result view) as they come. FiftyOne drops a
    generator's return value, so every other caller gets the report returned instead."""
    return not ctx.delegated and "operator_uri" in ctx.request_params


def _saved_calibrations(ctx):
    """Label fields with saved review calibrations (the calibrate operator's Apply)."""
    if ctx.dataset is None:
        return []
    from autoannotate.fiftyone.review import saved_calibrations

    return saved_calibrations(ctx.dataset)


def _stream_to_app(ctx, run, *, name, title, starting, saving):
    """A generator for the App: "done / total samples" progress while ``run(progress)`` works in a
    thread (``starting`` before the first count, ``saving`` appended to the last one), then the
    report it returns (:func:`report_view`, titled ``"<title> report"``), or its error. A run the
    person stops watching goes on to its end."""
    events = queue.Queue()

    def work():
        try:
            events.put(("done", run(lambda done, total: events.put(("progress", done, total)))))
        except Exception as e:  # noqa: BLE001 - shown in the App below
            log.exception("%s failed", name)
            events.put(("error", e))

    threading.Thread(target=work, name=f"autoannotate-{name}", daemon=True).start()
    yield ctx.trigger("set_progress", {"label": starting, "variant": "linear"})
    latest, event, sent = None, None, float("-inf")
    while event is None:
        try:
            got = events.get(timeout=PROGRESS_EVERY)
        except queue.Empty:
            got = None
        if got is not None and got[0] == "progress":
            latest = got
        elif got is not None:
            event = got
        # the first count, then at most one every PROGRESS_EVERY seconds, and always the last
        # one before the result (the run may end within one interval of its previous count)
        if latest is not None and (event is not None or time.monotonic() - sent >= PROGRESS_EVERY):
            _, done, total = latest
            label = _progress_label(done, total)
            if total and done >= total:
                label += saving
            yield ctx.trigger("set_progress", {"progress": (done / total) if total else None, "label": label})
            latest, sent = None, time.monotonic()
    if event[0] == "error":
        yield ctx.ops.notify(f"{name} failed: {event[1]}", variant="error")
        outputs = types.Object()
        outputs.view("failed", types.Error(label="The run did not start or stopped", description=str(event[1])))
        yield ctx.ops.show_output(types.Property(outputs, view=types.View(label=f"{title} failed")).to_json(), {})
        return
    yield ctx.trigger("reload_dataset")
    outputs, results = report_view(event[1], title=f"{title} report")
    yield ctx.ops.show_output(outputs.to_json(), results)


class AutoLabel(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="auto_label",
            label="Auto-label with a model",
            description="Run a model over samples, store labels with confidences and route them for review",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
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
            default="yolox",
            label="Function",
            description="a predefined or installed function (see `autoannotate functions`)",
        )
        if ctx.dataset is not None and ctx.dataset.media_type == "video":
            inputs.enum(
                "tracker",
                function_names("tracking"),
                default="opencv_tracker",
                label="Tracker",
                description="follows the detections between key frames",
            )
            inputs.int("key_frame_interval", default=5, min=1, label="Detect on every Nth frame")
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
        inputs.str("label_field", default="auto_labels", required=True, label="Label field", **flag("label_field"))
        inputs.float(
            "conf_threshold",
            min=0.0,
            max=1.0,
            label="Model confidence threshold",
            description="empty: the model's default",
            **flag("conf_threshold"),
        )
        inputs.bool("route", default=True, label="Route labels for review")
        inputs.float("review_lower", default=0.3, min=0.0, max=1.0, label="Discard below", **flag("review_lower"))
        inputs.float(
            "review_upper", default=0.8, min=0.0, max=1.0, label="Auto-approve at or above", **flag("review_upper")
        )
        saved = _saved_calibrations(ctx)
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
        gt_choices = [f for f in _label_fields(ctx, frames=False) if f != ctx.params.get("label_field")]
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
        if ctx.params.get("delegate") and not _app_can_schedule():
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
            inputs.view(f"error_{i}", types.Error(label=_FIELD_LABELS.get(name, name), description=errors[name]))
        for i, text in enumerate(check.warnings if check else []):
            inputs.view(f"warning_{i}", types.Warning(label="Note", description=text))
        return types.Property(inputs, view=types.View(label="Auto-label with a model"))

    def resolve_delegation(self, ctx):
        # True forces delegation; None (not False) leaves the choice to the App's execution
        # menu and to request_delegation from Python
        return True if ctx.params.get("delegate") else None

    def _run(self, ctx, progress):
        from autoannotate.fiftyone import annotate_dataset

        p = ctx.params
        review = (p.get("review_lower", 0.3), p.get("review_upper", 0.8)) if p.get("route", True) else None
        if review is not None and p.get("review_calibration"):
            from autoannotate.fiftyone.review import saved_calibration

            review = saved_calibration(ctx.dataset, p["review_calibration"]) or review
        label_map = parse_label_map(p.get("label_map"))
        video = {
            "tracker": p.get("tracker") or "opencv_tracker",
            "key_frame_interval": int(p.get("key_frame_interval") or 5),
        }
        report = annotate_dataset(
            ctx.target_view(),
            p.get("function") or "yolox",
            function_params=parse_params(split_list(p.get("function_params"))),
            label_field=p.get("label_field") or "auto_labels",
            classes=split_list(p.get("classes")) or None,
            label_map=label_map or None,
            conf_threshold=p.get("conf_threshold"),
            review=review,
            overwrite=bool(p.get("overwrite")),
            max_samples=p.get("max_samples"),
            eval_gt_field=p.get("eval_gt_field"),
            batch_size=int(p.get("batch_size") or DEFAULT_BATCH_SIZE),
            progress=progress,
            shards=int(p["shards"]) if int(p.get("shards") or 1) > 1 else None,
            **(video if ctx.dataset.media_type == "video" else {}),
        )
        return report.to_dict()

    def execute(self, ctx):
        if _streams_to_app(ctx):
            return self._execute_in_app(ctx)
        # Python callers (execute_operator(...).result) and delegated workers get the report
        return self._run(ctx, _delegated_progress(ctx) if ctx.delegated else True)

    def _execute_in_app(self, ctx):
        function = ctx.params.get("function") or "yolox"
        yield from _stream_to_app(
            ctx,
            lambda progress: self._run(ctx, progress),
            name="auto_label",
            title="Auto-label",
            starting=f"loading {function} and reading the samples",
            saving=": saving the labels" + (", evaluating" if ctx.params.get("eval_gt_field") else ""),
        )

    def resolve_output(self, ctx):
        return report_view(ctx.results or {})[0]


_FIELD_LABELS = {
    "function_params": "Function parameters",
    "classes": "Classes",
    "label_map": "Label map",
    "label_field": "Label field",
    "conf_threshold": "Model confidence threshold",
    "review_lower": "Discard below",
    "review_upper": "Auto-approve at or above",
    "eval_gt_field": "Evaluate against ground truth field",
}

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


class _SetReview(foo.Operator):
    status = ""

    def resolve_input(self, ctx):
        inputs = types.Object()
        n = len(ctx.selected_labels)
        inputs.md(
            f"{n} selected label(s) will be marked **{self.status}**." if n else "Select labels in the App first."
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import set_review

        # who decided: the App's user where FiftyOne knows one (Teams), else AUTOANNOTATE_REVIEWER / the login
        user = getattr(ctx, "user", None)
        reviewer = getattr(user, "name", None) or getattr(user, "email", None)
        result = set_review(ctx.dataset, ctx.selected_labels, self.status, reviewer=reviewer)
        ctx.trigger("reload_dataset")
        # ``set_review`` counts only labels it changed; selected ids that match no label are unknown
        return {
            "updated": result.changed,
            "status": self.status,
            "unchanged": result.unchanged,
            "unknown": len(result.unknown),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("updated", label=f"Labels marked {self.status}")
        outputs.int("unchanged", label=f"Already {self.status}")
        outputs.int("unknown", label="Selected labels not found (deleted or wrong id)")
        return types.Property(outputs, view=types.View(label="Review"))


class AcceptLabels(_SetReview):
    status = "approved"

    @property
    def config(self):
        return foo.OperatorConfig(name="accept_labels", label="Accept selected labels", dynamic=True)


class RejectLabels(_SetReview):
    status = "rejected"

    @property
    def config(self):
        return foo.OperatorConfig(name="reject_labels", label="Reject selected labels", dynamic=True)


class PromoteApproved(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="promote_approved",
            label="Promote approved labels to ground truth",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Promote")
        fields = _label_fields(ctx)
        inputs.enum("label_field", fields or ["auto_labels"], required=True, label="Auto label field")
        inputs.str("gt_field", default="ground_truth", label="Ground truth field")
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import promote_approved

        n = promote_approved(ctx.target_view(), ctx.params["label_field"], ctx.params.get("gt_field") or "ground_truth")
        ctx.trigger("reload_dataset")
        return {"promoted": n}


class AssignReviewers(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="assign_reviewers", label="Assign needs-review samples to reviewers", dynamic=True
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Assign")
        inputs.enum("label_field", _label_fields(ctx) or ["auto_labels"], required=True, label="Auto label field")
        inputs.str("reviewers", required=True, label="Reviewers", description="names, comma-separated")
        choices = types.RadioGroup()
        choices.add_choice("samples", label="Same number of samples each")
        choices.add_choice("labels", label="Same number of labels to review each")
        inputs.enum("balance", choices.values(), default="samples", label="Balance", view=choices)
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import assign_reviewers, review_workload

        view = ctx.target_view()
        field = ctx.params["label_field"]
        counts = assign_reviewers(
            view, field, split_list(ctx.params.get("reviewers")), balance=ctx.params.get("balance") or "samples"
        )
        ctx.trigger("reload_dataset")
        workload = review_workload(view, field)
        return {"assigned": counts, "labels": {name: workload.get(name, {}).get("labels", 0) for name in counts}}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("assigned", label="Samples per reviewer", view=types.KeyValueView())
        outputs.obj("labels", label="Needs-review labels per reviewer", view=types.KeyValueView())
        return types.Property(outputs, view=types.View(label="Reviewers assigned"))


class ListRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="list_autoannotate_runs", label="List auto-label runs")

    def execute(self, ctx):
        from autoannotate.fiftyone import list_runs

        keep = ("run_key", "status", "function", "model_version", "label_fields", "review", "started_at", "finished_at")
        keep += ("kind", "shards", "progress", "shard_states", "parent_run", "shard")
        runs = [{k: r.get(k) for k in keep} | {"report": r.get("report")} for r in list_runs(ctx.dataset)]
        return {"runs": runs, "rows": [_run_row(r) for r in runs], "delegated": _delegated_rows(ctx.dataset)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        row = types.Object()
        table = types.TableView()
        for key, label in _RUN_COLUMNS:
            row.str(key, label=label)
            table.add_column(key, label=label)
        outputs.list("rows", row, label="Runs", view=table)
        drow = types.Object()
        dtable = types.TableView()
        for key, label in _DELEGATED_COLUMNS:
            drow.str(key, label=label)
            dtable.add_column(key, label=label)
        outputs.list("delegated", drow, label="Delegated auto-label operations (progress)", view=dtable)
        return types.Property(outputs, view=types.View(label="Auto-label runs"))


_RUN_COLUMNS = [
    ("run_key", "Run key"),
    ("status", "Status"),
    ("function", "Function"),
    ("label_fields", "Label fields"),
    ("counts", "Labelled / stored / needs review / failed"),
    ("finished_at", "Finished"),
]
_DELEGATED_COLUMNS = [("id", "Operation"), ("state", "State"), ("progress", "Progress"), ("queued_at", "Queued")]


def _run_row(run):
    report = run.get("report") or {}
    counts = (
        f"{report.get('images_processed', 0)} / {report.get('annotations_added', 0)} / "
        f"{report.get('needs_review', 0)} / {len(report.get('failures') or [])}"
        if report
        else str(run.get("progress") or "")  # a sharded run in progress: "2/4 shards done, ..."
    )
    return {
        "run_key": str(run.get("run_key")),
        "status": str(run.get("status")),
        "function": str(run.get("function")),
        "label_fields": ", ".join(run.get("label_fields") or []),
        "counts": counts,
        "finished_at": str(run.get("finished_at") or ""),
    }


def _delegated_rows(dataset):
    """The dataset's delegated ``auto_label`` operations with their stored progress (FiftyOne's
    open-source App has no page for delegated runs; this is where their "done / total" shows)."""
    from fiftyone.operators.delegated import DelegatedOperationService

    try:
        ops = DelegatedOperationService().list_operations(
            operator=f"{PLUGIN_NAME}/auto_label", dataset_name=dataset.name
        )
    except Exception:  # noqa: BLE001 - the runs list must show even if this lookup fails
        log.warning("could not list delegated operations", exc_info=True)
        return []
    return [
        {
            "id": str(op.id),
            "state": str(op.run_state),
            "progress": (op.status.label if op.status is not None and op.status.label else ""),
            "queued_at": str(op.queued_at or ""),
        }
        for op in ops
    ]


class DeleteRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="delete_autoannotate_run", label="Delete an auto-label run", dynamic=True)

    def resolve_input(self, ctx):
        from autoannotate.fiftyone import list_runs

        inputs = types.Object()
        keys = [r["run_key"] for r in list_runs(ctx.dataset)] if ctx.dataset is not None else []
        if not keys:
            inputs.view("none", types.Notice(label="This dataset has no auto-label runs"))
            return types.Property(inputs)
        inputs.enum("run_key", keys, required=True, label="Run", default=keys[-1])
        inputs.bool(
            "delete_labels",
            default=False,
            label="Also delete the labels this run stored",
            description="otherwise they stay; the run record, its evaluation and its needs-review view go",
        )
        return types.Property(inputs, view=types.View(label="Delete an auto-label run"))

    def execute(self, ctx):
        from autoannotate.fiftyone import delete_run

        out = delete_run(ctx.dataset, ctx.params["run_key"], delete_labels=bool(ctx.params.get("delete_labels")))
        ctx.trigger("reload_dataset")
        return out


class CleanupRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="cleanup_autoannotate_runs", label="Clean up auto-label runs of deleted fields", dynamic=True
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.md(
            "Removes the run records, evaluations and needs-review views of runs whose label fields were "
            "deleted (running runs are left alone). Labels are not touched."
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone import cleanup_runs

        out = cleanup_runs(ctx.dataset)
        ctx.trigger("reload_dataset")
        return out

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.list("runs_deleted", types.String(), label="Runs removed")
        outputs.list("views_deleted", types.String(), label="Saved views removed")
        outputs.list("evaluations_deleted", types.String(), label="Evaluations removed")
        return types.Property(outputs, view=types.View(label="Cleanup"))


class TrackLabels(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="track_labels",
            label="Track labels through the video",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Track")
        inputs.str(
            "label_field", required=True, label="Frame label field", description="e.g. detections (frames.detections)"
        )
        inputs.int("frame_number", default=1, min=1, label="Frame to start from")
        inputs.int("num_frames", default=30, min=1, label="Frames to propagate")
        inputs.enum("direction", ["forward", "backward", "both"], default="forward", label="Direction")
        inputs.enum("tracker", function_names("tracking"), default="opencv_tracker", label="Tracker")
        inputs.str(
            "tracker_params", default="", label="Tracker parameters", description="NAME=TYPE:VALUE, comma-separated"
        )
        inputs.bool("overwrite", default=False, label="Replace tracked labels already on later frames")
        inputs.enum(
            "output",
            ["boxes", "masks", "polylines"],
            default="boxes",
            label="Output",
            description="masks: also store each tracked object's mask; polylines: also its outline as a closed "
            "polyline in <field>_polylines (both: sam2_video, edgetam_video)",
        )
        return types.Property(inputs, view=types.View(label="Track labels"))

    def execute(self, ctx):
        if _streams_to_app(ctx):
            tracker = ctx.params.get("tracker") or ctx.params.get("function") or "opencv_tracker"
            return _stream_to_app(
                ctx,
                lambda progress: self._run(ctx, progress),
                name="track_labels",
                title="Track labels",
                starting=f"loading {tracker} and reading the videos",
                saving=": saving the tracked labels",
            )
        # Python callers (execute_operator(...).result) and delegated workers get the report
        report = self._run(ctx, _delegated_progress(ctx) if ctx.delegated else False)
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return report

    def _run(self, ctx, progress):
        from autoannotate.fiftyone import track_labels

        p = ctx.params
        selected = [s["label_id"] for s in ctx.selected_labels if s.get("field", "").endswith(p["label_field"])]
        frames = {s.get("frame_number") for s in ctx.selected_labels if s.get("frame_number")}
        report = track_labels(
            ctx.target_view(),
            p["label_field"].removeprefix("frames."),
            tracker=p.get("tracker") or "opencv_tracker",
            tracker_params=parse_params(split_list(p.get("tracker_params"))),
            frame_number=frames.pop() if len(frames) == 1 else int(p.get("frame_number") or 1),
            label_ids=selected or None,
            num_frames=int(p.get("num_frames") or 30),
            direction=p.get("direction") or "forward",
            overwrite=bool(p.get("overwrite")),
            output=p.get("output") or "boxes",
            progress=progress,
        )
        return report.to_dict()

    def resolve_output(self, ctx):
        return report_view(ctx.results or {}, title="Track labels report")[0]


class AutoLabelShard(foo.Operator):
    """One shard of a sharded auto-label run (queued by ``annotate_dataset(..., shards=N)``)."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="auto_label_shard",
            label="Auto-label: one shard of a sharded run",
            unlisted=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def execute(self, ctx):
        from autoannotate.fiftyone.shard_worker import run_shard

        p = ctx.params
        progress = _delegated_progress(ctx) if ctx.delegated else False
        return run_shard(ctx.dataset, p["run_key"], int(p["shard"]), progress=progress).to_dict()


class RequeueRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="requeue_autoannotate_run", label="Re-queue dead or failed shards of an auto-label run", dynamic=True
        )

    def resolve_input(self, ctx):
        from autoannotate.fiftyone import list_runs

        inputs = types.Object()
        runs = list_runs(ctx.dataset) if ctx.dataset is not None else []
        keys = [r["run_key"] for r in runs if r.get("kind") == "sharded" and r.get("status") != "completed"]
        if not keys:
            inputs.view("none", types.Notice(label="This dataset has no unfinished sharded runs"))
            return types.Property(inputs)
        inputs.enum("run_key", keys, required=True, label="Run", default=keys[-1])
        inputs.float(
            "heartbeat_timeout",
            min=0.0,
            label="Dead after this many seconds without a heartbeat",
            description="empty: 900 (a shard on this machine whose process is gone counts as dead at once)",
        )
        return types.Property(inputs, view=types.View(label="Re-queue shards"))

    def execute(self, ctx):
        from autoannotate.fiftyone.shards import requeue

        p = ctx.params
        out = requeue(ctx.dataset, p["run_key"], heartbeat_timeout=p.get("heartbeat_timeout"))
        return {"run_key": out["run_key"], "requeued": out["requeued"], "states": out["states"]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("run_key", label="Run")
        outputs.list("requeued", types.Number(), label="Shards re-queued")
        return types.Property(outputs, view=types.View(label="Re-queued"))


class ReviewProgressPanel(foo.Panel):
    """Review progress of a label field (per run, class and reviewer) and the precision of
    reviewed labels against confidence, per class (``autoannotate.fiftyone.panel``)."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="autoannotate_review_progress",
            label="Review progress",
            surfaces="grid",
            help_markdown="Auto-approved, approved by reviewers, rejected, waiting and discarded labels per run, "
            "class and reviewer; % reviewed; acceptance rate; precision of reviewed labels by confidence.",
        )

    def _refresh(self, ctx, field=None):
        from autoannotate.fiftyone.panel import panel_content

        content = panel_content(ctx.view, field or ctx.panel.state.label_field)
        ctx.panel.state.set(
            {
                "label_field": content["label_field"],
                "fields": content["fields"],
                "markdown": content["markdown"],
                "traces": content["traces"],
            }
        )

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def on_change_field(self, ctx):
        self._refresh(ctx, ctx.params.get("value"))

    def on_refresh(self, ctx):
        self._refresh(ctx)

    def render(self, ctx):
        from autoannotate.fiftyone.panel import PLOT_LAYOUT

        panel = types.Object()
        fields = ctx.panel.state.fields or []
        if fields:
            panel.enum(
                "label_field",
                fields,
                default=ctx.panel.state.label_field,
                label="Label field",
                on_change=self.on_change_field,
            )
        panel.btn("refresh", label="Refresh", on_click=self.on_refresh)
        panel.md(ctx.panel.state.markdown or "", name="summary")
        if ctx.panel.state.traces:
            panel.plot(
                "precision_by_confidence",
                data=ctx.panel.state.traces,
                layout=dict(PLOT_LAYOUT, title={"text": "Precision of reviewed labels by confidence"}),
                config={"displayModeBar": False},
                height="400px",
                width="100%",
            )
        return types.Property(panel, view=types.GridView(orientation="vertical", height=100, width=100))


class SortByReviewUncertainty(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="sort_by_review_uncertainty", label="Show needs-review labels, most uncertain first", dynamic=True
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.enum("label_field", _label_fields(ctx) or ["auto_labels"], required=True, label="Auto label field")
        inputs.str("run_key", label="Only this run (optional)")
        inputs.md(
            "Samples where two runs disagree come first, then those whose labels' confidence is nearest "
            "the review thresholds of the run that made them."
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone.review import needs_review_view

        view = needs_review_view(
            ctx.dataset, ctx.params["label_field"], ctx.params.get("run_key") or None, order="uncertainty"
        )
        ctx.ops.set_view(view=view)
        return {"samples": view.count()}


def _held_out_text(check):
    """One line of a calibration's held-out check (``Calibration.held_out``)."""
    if not check:
        return "none: no decisions held out (set a held-out share to see the precision reached)"
    t = check["total"]
    if not t["labels"]:
        return f"no held-out label at or above a calibrated upper ({check['decisions']} decisions held out)"
    per = ", ".join(
        f"{k} {e['precision']:.3f} ({e['correct']}/{e['labels']})" for k, e in check["classes"].items() if e["labels"]
    )
    return (
        f"precision {t['precision']:.3f} ({t['correct']} of {t['labels']} held-out labels at or above upper; "
        f"{per}); {check['decisions']} decisions held out"
    )


class CalibrateReview(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="calibrate_review", label="Learn review thresholds from decisions", dynamic=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Calibrate")
        fields = _label_fields(ctx) or ["auto_labels"]
        inputs.enum("label_field", fields, required=True, label="Auto label field")
        inputs.enum(
            "source",
            ["review", *fields],
            default="review",
            label="Decisions from",
            description="'review': reviewers' accept/reject; or a ground-truth field",
        )
        inputs.float("target_precision", default=0.95, min=0.5, max=0.999, label="Target precision")
        inputs.enum(
            "bound",
            ["wilson", "estimate"],
            default="wilson",
            label="Precision must reach it as",
            description="'wilson': the lower end of its Wilson interval (holds on new labels); "
            "'estimate': the observed precision (optimistic)",
        )
        inputs.int("min_decisions", default=30, min=1, label="Least decisions per class")
        from autoannotate.calibrate import DEFAULT_MIN_SUPPORT

        inputs.int(
            "min_support",
            default=DEFAULT_MIN_SUPPORT,
            min=1,
            label="Least decided labels at or above auto-approve",
            description="the auto-approve threshold must rest on at least this many decided labels "
            "(the shell's --min-support)",
        )
        inputs.float(
            "holdout",
            default=0.0,
            min=0.0,
            max=0.9,
            label="Held-out share",
            description="share of the samples (by a hash of their file name) kept out of the thresholds: the "
            "precision the thresholds reach on them is shown",
        )
        inputs.float("fallback_lower", default=0.3, min=0.0, max=1.0, label="Other classes: discard below")
        inputs.float("fallback_upper", default=0.8, min=0.0, max=1.0, label="Other classes: auto-approve at or above")
        inputs.bool(
            "apply",
            default=False,
            label="Apply",
            description="save the thresholds on the dataset (for the next run's review=) and approve the "
            "needs-review labels they would auto-approve",
        )
        return types.Property(inputs)

    def execute(self, ctx):
        from autoannotate.fiftyone.review import apply_calibration, calibrate_review, save_calibration

        p = ctx.params
        view = ctx.target_view()
        cal = calibrate_review(
            view,
            p["label_field"],
            float(p.get("target_precision") or 0.95),
            source=p.get("source") or "review",
            bound=p.get("bound") or "wilson",
            min_decisions=int(p.get("min_decisions") or 30),
            min_support=int(p["min_support"]) if p.get("min_support") else None,
            fallback=(float(p.get("fallback_lower", 0.3)), float(p.get("fallback_upper", 0.8))),
            holdout=float(p.get("holdout") or 0.0),
        )
        approved = 0
        if p.get("apply"):
            save_calibration(ctx.dataset, p["label_field"], cal)
            approved = apply_calibration(view, p["label_field"], cal)
            ctx.trigger("reload_dataset")
        return {
            "thresholds": {k: f"{lo:.3f} / {up:.3f}" for k, (lo, up) in cal.thresholds.items()},
            "refused": cal.refused,
            "auto_approved_share": cal.auto_approved_share,
            "approved": approved,
            "held_out": _held_out_text(cal.held_out),
            "summary": cal.summary(),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("thresholds", label="Review thresholds (lower / upper) per class", view=types.KeyValueView())
        outputs.obj("refused", label="Classes not calibrated", view=types.KeyValueView())
        outputs.float("auto_approved_share", label="Share of labels auto-approved")
        outputs.int("approved", label="Needs-review labels approved now")
        outputs.str("held_out", label="Held-out check (precision on decisions not used)")
        outputs.str("summary", label="Details")
        return types.Property(outputs, view=types.View(label="Calibrated review thresholds"))


def register(p):
    for op in (
        ReviewProgressPanel,
        SortByReviewUncertainty,
        CalibrateReview,
        AutoLabel,
        AcceptLabels,
        RejectLabels,
        PromoteApproved,
        AssignReviewers,
        ListRuns,
        DeleteRun,
        CleanupRuns,
        TrackLabels,
        AutoLabelShard,
        RequeueRun,
    ):
        p.register(op)
