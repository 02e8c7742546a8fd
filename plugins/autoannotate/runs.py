"""The operators on auto-label runs: list them (with delegated operations' progress), delete
one, clean up those of deleted fields, re-queue dead or failed shards of a sharded run."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .common import PLUGIN_NAME, log, operator_config


class ListRuns(foo.Operator):
    config = operator_config("list_autoannotate_runs", "List auto-label runs")

    def execute(self, ctx):
        from autoannotate.fiftyone import list_runs

        keep = ("run_key", "status", "function", "model_version", "label_fields", "review", "started_at", "finished_at")
        keep += ("kind", "shards", "progress", "shard_states", "parent_run", "shard")
        runs = [{k: r.get(k) for k in keep} | {"report": r.get("report")} for r in list_runs(ctx.dataset)]
        return {"runs": runs, "rows": [_run_row(r) for r in runs], "delegated": _delegated_rows(ctx.dataset)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        _table(outputs, "rows", _RUN_COLUMNS, "Runs")
        _table(outputs, "delegated", _DELEGATED_COLUMNS, "Delegated auto-label operations (progress)")
        return types.Property(outputs, view=types.View(label="Auto-label runs"))


def _table(outputs, name, columns, label):
    """The list output ``name`` shown as a table of text ``columns`` (``(key, label)`` pairs)."""
    row = types.Object()
    table = types.TableView()
    for key, column in columns:
        row.str(key, label=column)
        table.add_column(key, label=column)
    outputs.list(name, row, label=label, view=table)


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
    config = operator_config("delete_autoannotate_run", "Delete an auto-label run", dynamic=True)

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
    config = operator_config("cleanup_autoannotate_runs", "Clean up auto-label runs of deleted fields", dynamic=True)

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


class RequeueRun(foo.Operator):
    config = operator_config(
        "requeue_autoannotate_run", "Re-queue dead or failed shards of an auto-label run", dynamic=True
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
