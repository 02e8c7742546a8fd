"""Run administration on FiftyOne datasets: :func:`delete_run` (a run's record, evaluation,
views, and optionally its labels; a sharded run with its shards) and :func:`cleanup_runs` (what
runs left behind that no longer points anywhere). The records themselves are
:mod:`autoannotate.fiftyone.runs`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .convert import RUN_ATTRIBUTE, label_list_attr
from .db import dataset_key, runs_collection
from .runs import (
    DatasetRuns,
    delegated_operation,
    drop_stale_views,
    expand_run_key,
    field_exists,
    get_run,
    list_runs,
    record_alive,
    review_view_fields,
)
from .schema import delete_view

__all__ = ["delete_run", "cleanup_runs"]


def _stop_queued_shards(record: Mapping[str, Any]) -> dict[str, list[str]]:
    """Take the queued operations of a sharded run out of the queue (conditionally on their
    still being queued, so no worker claims one later) and delete every operation that is not
    running; returns ``{"operations_deleted": [...], "operations_running": [...]}``."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

    svc = DelegatedOperationService()
    out: dict[str, list[str]] = {"operations_deleted": [], "operations_running": []}
    for op_id in record.get("operations") or []:
        oid = ObjectId(op_id)
        op = delegated_operation(svc, op_id)
        if op is None:
            continue
        if op.run_state in (ExecutionRunState.QUEUED, ExecutionRunState.SCHEDULED):
            failed = svc.set_failed(
                oid,
                result=ExecutionResult(error=f"autoannotate run {record.get('run_key')!r} was deleted"),
                required_state=op.run_state,
            )
            if failed is None:  # claimed in the meantime
                op = delegated_operation(svc, op_id)
        if op is not None and op.run_state in (ExecutionRunState.RUNNING, ExecutionRunState.PROCESSING):
            out["operations_running"].append(op_id)
            continue
        svc.delete_operation(oid)
        out["operations_deleted"].append(op_id)
    return out


def delete_run(dataset: Any, run_key: str, *, delete_labels: bool = False) -> dict[str, Any]:
    """Remove one run from ``dataset``: its record, its FiftyOne evaluation, the per-run saved view
    that version-2 runs made, and the field's needs-review view when no remaining run writes
    that field. With ``delete_labels=True`` the labels the run stored (those carrying its key)
    are deleted too; otherwise they stay. ``KeyError`` when the dataset has no such run.

    A sharded run (its parent key) is deleted with its shard runs (their records, and their
    labels with ``delete_labels=True``); its shard operations still queued are failed and
    deleted first, so no worker starts one later, and its finished operations are deleted (a
    shard already running cannot be stopped: its operation is listed in ``operations_running``
    and its run record, while its worker is alive, in ``shard_runs_running``).

    Returns ``{"run_key", "labels_deleted", "evaluation_deleted", "views_deleted"}``, and for a
    sharded run also ``shard_runs_deleted``, ``operations_deleted`` and ``operations_running``."""
    runs = DatasetRuns(dataset)
    record = get_run(dataset, run_key)
    out: dict[str, Any] = {"run_key": run_key, "labels_deleted": 0, "evaluation_deleted": None, "views_deleted": []}
    if record.get("kind") == "sharded":
        out.update(_stop_queued_shards(record), shard_runs_deleted=[])
        out["shard_runs_running"] = []
        for child in expand_run_key(dataset, run_key):
            doc = runs.coll.find_one({"_id": runs._id(child)})
            if doc is not None and doc.get("status") == "running" and record_alive(doc):
                out["shard_runs_running"].append(child)  # its worker still writes: its record stays
                continue
            if doc is not None:
                done = delete_run(dataset, child, delete_labels=delete_labels)
                out["shard_runs_deleted"].append(child)
                out["labels_deleted"] += done["labels_deleted"]
                out["views_deleted"] += done["views_deleted"]
            elif delete_labels:  # its record was deleted on its own, its labels may remain
                out["labels_deleted"] += _delete_labels_of(dataset, record, child)
    if delete_labels:
        out["labels_deleted"] += _delete_labels_of(dataset, record, run_key)
    evaluation = record.get("evaluation")
    eval_key = record.get("eval_key") or (evaluation.get("eval_key") if isinstance(evaluation, dict) else None)
    if eval_key and dataset.has_evaluation(eval_key):
        dataset.delete_evaluation(eval_key)
        out["evaluation_deleted"] = eval_key
    for other in (evaluation.get("eval_keys") or [] if isinstance(evaluation, dict) else [])[1:]:
        if dataset.has_evaluation(other):  # the run's other output types (evaluation.evaluate_run)
            dataset.delete_evaluation(other)
    runs.coll.delete_one({"_id": runs._id(run_key)})
    remaining = {f for r in runs.list() for f in r.get("label_fields") or []}
    views = set(dataset.list_saved_views())
    own = record.get("needs_review_view")
    if own and own in views and own not in review_view_fields(dataset):  # a per-run view (version 2)
        delete_view(dataset, own)
        out["views_deleted"].append(own)
    for name, path in review_view_fields(dataset).items():
        if path in (record.get("label_fields") or []) and (path not in remaining or not field_exists(dataset, path)):
            delete_view(dataset, name)
            out["views_deleted"].append(name)
    return out


def _delete_labels_of(dataset: Any, record: Mapping[str, Any], run_key: str) -> int:
    """Delete the labels carrying ``run_key`` in ``record``'s label fields; returns how many."""
    from fiftyone import ViewField as F

    deleted = 0
    for path in [f for f in record.get("label_fields") or [] if field_exists(dataset, f)]:
        view = dataset.filter_labels(path, F(RUN_ATTRIBUTE) == run_key, only_matches=True)
        attr = label_list_attr(dataset, path)
        deleted += view.count(f"{path}.{attr}") if attr else 0
        dataset.delete_labels(view=view, fields=path)
    return deleted


def cleanup_runs(dataset: Any = None) -> dict[str, Any]:
    """Remove what runs left behind that no longer points anywhere.

    On ``dataset``: every run none of whose label fields exists any more (its record and its
    evaluation, via :func:`delete_run`), the per-run saved views of older versions, and
    needs-review views of deleted fields. Runs still running are left alone. With ``dataset=None``:
    every dataset that has runs, and the run records of datasets that were deleted.

    Returns ``{"runs_deleted": [...], "views_deleted": [...], "evaluations_deleted": [...],
    "orphan_records_deleted": n}``."""
    import fiftyone as fo
    from fiftyone.core.odm import get_db_conn

    out: dict[str, Any] = {
        "runs_deleted": [],
        "views_deleted": [],
        "evaluations_deleted": [],
        "orphan_records_deleted": 0,
    }
    if dataset is None:
        existing = {str(d["_id"]): d.get("name") for d in get_db_conn().datasets.find({}, {"name": 1})}
        coll = runs_collection()
        ids = coll.distinct("dataset_id")
        orphans = [d for d in ids if d not in existing]
        if orphans:
            out["orphan_records_deleted"] = coll.delete_many({"dataset_id": {"$in": orphans}}).deleted_count
        for name in sorted(existing[d] for d in ids if d in existing and existing[d]):
            one = cleanup_runs(fo.load_dataset(name))
            for k in ("runs_deleted", "views_deleted", "evaluations_deleted"):
                out[k] += one[k]
        return out
    runs = list_runs(dataset)
    for r in runs:
        fields = r.get("label_fields") or []
        if r.get("status") == "running" and record_alive(dict(r, _id=f"{dataset_key(dataset)}:{r['run_key']}")):
            continue
        if r.get("kind") == "sharded" and r.get("status") == "running":  # its shards may still be queued
            continue
        if fields and not any(field_exists(dataset, f) for f in fields):
            try:
                done = delete_run(dataset, r["run_key"])
            except KeyError:  # a shard run, deleted with its sharded parent earlier in this loop
                continue
            out["runs_deleted"].append(r["run_key"])
            out["views_deleted"] += done["views_deleted"]
            if done["evaluation_deleted"]:
                out["evaluations_deleted"].append(done["evaluation_deleted"])
    per_field = review_view_fields(dataset)
    views = set(dataset.list_saved_views())
    for r in list_runs(dataset):
        name = r.get("needs_review_view")
        if name and name in views and name not in per_field:
            delete_view(dataset, name)
            out["views_deleted"].append(name)
    out["views_deleted"] += drop_stale_views(dataset)
    return out
