"""Sharded runs: one auto-label run split into N delegated operations of FiftyOne's own engine.

``annotate_dataset(..., shards=N)`` does not label anything itself. It checks the run as a plain
run would (function, classes, label fields), stores a *parent* run record and queues N delegated
operations (``@autoannotate/autoannotate/auto_label_shard``) in FiftyOne's database. Any number
of ``fiftyone delegated launch`` workers that share that database (``FIFTYONE_DATABASE_URI``)
and the media claim them; FiftyOne's claim is conditional on the queued state, so two workers
never run one operation.

- Shard ``i`` is the samples of the target view whose id hashes to ``i``
  (:func:`autoannotate.sharding.shard_of`): disjoint, deterministic, stable under re-runs.
- Each shard is a plain run of :func:`~autoannotate.fiftyone.annotate_dataset` over its samples
  (one run per :data:`~autoannotate.fiftyone.shard_worker.SHARD_BATCH` samples, so no query
  holds more ids than that), with its own run record (``parent_run`` and ``shard`` in its
  configuration): it skips what is done, resumes a dead shard under the same run key, never
  stores a sample twice.
- While it works a shard writes its progress and a heartbeat (host, process id, time) into the
  parent record at most every :data:`HEARTBEAT_EVERY` seconds. A shard whose operation is still
  ``running`` while its process is gone (same host) or silent for longer than the heartbeat
  timeout is *dead* (only beats since the operation's last claim count); :func:`requeue` puts
  dead and failed shards back in the queue and clears their progress, and the worker that
  claims one beats at once and continues where the dead one stopped.
- The last shard to finish stores the combined report in the parent record and marks it
  ``completed``.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping
from typing import Any

from ..errors import BadParameterError
from ..report import AnnotateReport
from ..run import new_run_key, now
from .plan import RunPlan
from .runs import HEARTBEAT_TIMEOUT, dataset_key, parent_shard_states, runs_collection

__all__ = [
    "SHARD_OPERATOR",
    "queue_sharded_run",
    "shard_states",
    "requeue",
    "wait_for_run",
    "find_run_dataset",
]

#: The plugin operator that runs one shard (queued once per shard).
SHARD_OPERATOR = "@autoannotate/autoannotate/auto_label_shard"
#: A working shard writes its progress and heartbeat at most this often (seconds).
HEARTBEAT_EVERY = 2.0


def parent_id(dataset: Any, run_key: str) -> str:
    return f"{dataset_key(dataset)}:{run_key}"


def queue_sharded_run(plan: RunPlan) -> AnnotateReport:
    """Queue a sharded run (``plan.kind == "sharded"``, planned by
    :func:`~autoannotate.fiftyone.plan.plan_run`: what ``annotate_dataset(..., shards=N)`` does) as
    ``plan.shards`` delegated operations under one parent run; returns a report with no counts yet
    whose ``extra`` names the parent ``run_key``, ``status="queued"``, the ``shards`` and the
    delegated ``operations`` (ids)."""
    from fiftyone.operators.delegated import DelegatedOperationService

    samples, shards = plan.samples, plan.shards
    dataset = samples._dataset
    dataset.persistent = True  # workers in other processes must find it
    run_key = new_run_key("sharded")
    view = samples._serialize() if samples is not dataset else []
    coll = runs_collection()
    coll.insert_one(
        {
            "_id": parent_id(dataset, run_key),
            "dataset_id": dataset_key(dataset),
            "dataset": dataset.name,
            "run_key": run_key,
            "config_hash": f"sharded:{run_key}",  # never resumed as a plain run
            "status": "running",
            "started_at": now(),
            **plan.config,
            "shard_args": dict(plan.shard_args, function=plan.function),
            "view": view,
            "operations": [],
            "shard_progress": {},
            "shard_reports": {},
        }
    )
    svc = DelegatedOperationService()
    ops = []
    for index in range(shards):
        op = svc.queue_operation(
            operator=SHARD_OPERATOR,
            label=f"auto-label {dataset.name}: shard {index} (of 0..{shards - 1}) ({run_key})",
            context={
                "request_params": {
                    "dataset_name": dataset.name,
                    "params": {"run_key": run_key, "shard": index},
                }
            },
        )
        ops.append(str(op.id))
    coll.update_one({"_id": parent_id(dataset, run_key)}, {"$set": {"operations": ops}})
    report = AnnotateReport()
    report.extra.update(
        run_key=run_key,
        status="queued",
        shards=shards,
        samples=samples.count(),
        operations=ops,
        label_fields=list(plan.labels.fields.values()),
    )
    return report


def parent_record(dataset: Any, run_key: str) -> dict[str, Any]:
    doc = runs_collection().find_one({"_id": parent_id(dataset, run_key)})
    if doc is None or doc.get("kind") != "sharded":
        raise BadParameterError(f"dataset {dataset.name!r} has no sharded autoannotate run {run_key!r}")
    return doc


def shard_target(dataset: Any, parent: Mapping[str, Any]) -> Any:
    from fiftyone.core.view import DatasetView

    return DatasetView._build(dataset, parent["view"]) if parent.get("view") else dataset.view()


def shard_states(dataset: Any, run_key: str, *, heartbeat_timeout: float | None = None) -> list[dict[str, Any]]:
    """One dict per shard: ``shard``, ``operation`` (delegated operation id), ``state`` (the
    operation's ``queued``/``running``/``completed``/``failed``, or ``dead``: running, but its
    process is gone or silent for ``heartbeat_timeout`` seconds, default
    :data:`~autoannotate.fiftyone.runs.HEARTBEAT_TIMEOUT`), ``done``/``total`` samples,
    ``heartbeat_at``, ``owner`` (host, pid) and the shard's own ``run_keys`` once finished (one
    run per :data:`~autoannotate.fiftyone.shard_worker.SHARD_BATCH` samples). A heartbeat from
    before the operation's last claim (a requeued shard's previous worker) is not counted."""
    timeout = HEARTBEAT_TIMEOUT if heartbeat_timeout is None else _dt.timedelta(seconds=heartbeat_timeout)
    return parent_shard_states(parent_record(dataset, run_key), timeout)


def requeue(dataset: Any, run_key: str, *, heartbeat_timeout: float | None = None) -> dict[str, Any]:
    """Put the dead and failed shards of ``run_key`` back in the queue (the same delegated
    operation, conditionally on the state it was found in: of two requeues at once, one acts).
    The worker that claims a requeued shard resumes its run where it stopped.

    Returns ``{"run_key", "requeued": [shard, ...], "states": shard_states(...)}``."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    svc = DelegatedOperationService()
    coll = runs_collection()
    requeued = []
    for s in shard_states(dataset, run_key, heartbeat_timeout=heartbeat_timeout):
        found = {"dead": ExecutionRunState.RUNNING, "failed": ExecutionRunState.FAILED}.get(s["state"])
        if found is not None and svc.set_queued(ObjectId(s["operation"]), required_state=found) is not None:
            # the dead worker's progress entry goes (unless the next worker already replaced it)
            entry = f"shard_progress.{s['shard']}"
            coll.update_one(
                {"_id": parent_id(dataset, run_key), f"{entry}.heartbeat_at": s["heartbeat_at"]},
                {"$unset": {entry: ""}},
            )
            requeued.append(s["shard"])
    return {
        "run_key": run_key,
        "requeued": requeued,
        "states": shard_states(dataset, run_key, heartbeat_timeout=heartbeat_timeout),
    }


def wait_for_run(dataset: Any, run_key: str, *, timeout: float = 3600.0, poll: float = 0.5) -> dict[str, Any]:
    """Block until the sharded run ``run_key`` is completed; returns its record (with the
    combined ``report``). ``TimeoutError`` naming the shards' states otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        parent = parent_record(dataset, run_key)
        if parent.get("status") == "completed":
            return {k: v for k, v in parent.items() if k not in ("_id", "dataset_id")}
        states = parent_shard_states(parent, HEARTBEAT_TIMEOUT)
        failed = [s for s in states if s["state"] == "failed"]
        if failed and all(s["state"] in ("completed", "failed", "dead") for s in states):
            raise RuntimeError(
                f"sharded run {run_key!r}: shards {[s['shard'] for s in failed]} failed (re-queue them with "
                f"`autoannotate fiftyone requeue {run_key}`); first error:\n{failed[0]['error']}"
            )
        if time.monotonic() > deadline:
            where = [(s["shard"], s["state"]) for s in states]
            raise TimeoutError(f"sharded run {run_key!r} not completed after {timeout:.0f} s: shards {where}")
        time.sleep(poll)


def find_run_dataset(run_key: str) -> str:
    """The name of the dataset that holds run ``run_key`` (run keys are unique across datasets)."""
    doc = runs_collection().find_one({"run_key": run_key}, {"dataset": 1})
    if doc is None or not doc.get("dataset"):
        raise BadParameterError(f"no autoannotate run {run_key!r} in this database (FIFTYONE_DATABASE_URI)")
    return str(doc["dataset"])
