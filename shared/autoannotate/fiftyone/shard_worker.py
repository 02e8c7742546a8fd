"""Run one shard of a sharded run in this process: what the ``auto_label_shard`` operator does
in a ``fiftyone delegated launch`` worker (see :mod:`autoannotate.fiftyone.shards`).

Separate from :mod:`~autoannotate.fiftyone.shards` because it calls
:func:`~autoannotate.fiftyone.annotate_dataset`, which imports that module to queue shards.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from ..errors import BadParameterError
from ..report import AnnotateReport
from ..run import now
from ..sharding import select_shard
from .annotate import annotate_dataset
from .runs import runs_collection, trim_record
from .shards import HEARTBEAT_EVERY, parent_id, parent_record, shard_target

__all__ = ["run_shard", "SHARD_BATCH"]

#: A shard's samples are labelled in runs of at most this many (one ``select`` each).
SHARD_BATCH = 10_000


def run_shard(dataset: Any, run_key: str, shard: int, *, progress: Any = False) -> AnnotateReport:
    """Run shard ``shard`` of the sharded run ``run_key`` in this process (what the
    ``auto_label_shard`` operator does in a worker); a shard that died before continues where it
    stopped. ``progress``: as for ``annotate_dataset`` (a ``(done, total)`` callable is called
    too). When this is the last shard to finish, the parent run is completed."""
    parent = parent_record(dataset, run_key)
    shards = int(parent["shards"])
    if not 0 <= shard < shards:
        raise BadParameterError(f"run {run_key!r} has shards 0 to {shards - 1}, not {shard}")
    coll = runs_collection()
    pid = parent_id(dataset, run_key)
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    last = [0.0]

    def beat(done: int, total: int | None, state: str = "running") -> None:
        t = time.monotonic()
        if state == "running" and t - last[0] < HEARTBEAT_EVERY and done != total:
            return
        last[0] = t
        entry = {"state": state, "done": done, "total": total, "heartbeat_at": now(), "owner": owner}
        coll.update_one({"_id": pid}, {"$set": {f"shard_progress.{shard}": entry}})

    def on_progress(done: int, total: int | None) -> None:
        beat(done, total)
        if callable(progress) and not isinstance(progress, bool):
            progress(done, total)

    beat(0, None, "starting")  # at once: listing the ids and loading the model take a while
    view = shard_target(dataset, parent)
    mine = [sid for (sid,) in select_shard([(i,) for i in view.values("id")], shard, shards)]
    beat(0, len(mine), "starting")
    args = dict(parent["shard_args"])
    function = args.pop("function")
    # a view selecting ids holds them all in one query: a shard runs as one run per batch of at
    # most SHARD_BATCH samples (each resumable on its own, as any run)
    report = AnnotateReport()
    run_keys = []
    batch = [0, 0]  # the batch's first index in the shard, its size

    def batch_progress(done: int, total: int | None) -> None:
        # ``total`` counts the batch's samples still to do: the others were done before (a resume)
        skipped = batch[1] - total if total is not None else 0
        on_progress(batch[0] + skipped + done, len(mine))

    for start in range(0, max(len(mine), 1), SHARD_BATCH):
        batch[:] = [start, len(mine[start : start + SHARD_BATCH])]
        part = annotate_dataset(
            view.select(mine[start : start + SHARD_BATCH]),
            function,
            **args,
            progress=batch_progress,
            run_info={"parent_run": run_key, "shard": shard, "shards": shards},
        )
        report.merge(part)
        report.extra.update({k: v for k, v in part.extra.items() if k != "run_key"})
        if part.extra.get("run_key"):
            run_keys.append(part.extra["run_key"])
    report.extra["run_keys"] = run_keys
    beat(report.images_attempted, len(mine), "completed")
    after = coll.find_one_and_update(
        {"_id": pid},
        {"$set": {f"shard_reports.{shard}": trim_record({"report": report.to_dict()})["report"]}},
        return_document=True,
    )
    _complete_if_done(coll, after)
    return report


def _complete_if_done(coll: Any, parent: Mapping[str, Any] | None) -> None:
    """Store the combined report once every shard reported (of two shards finishing together,
    the conditional update lets one write it; both would write the same)."""
    if parent is None or parent.get("status") != "running":
        return
    reports = parent.get("shard_reports") or {}
    if len(reports) < int(parent["shards"]):
        return
    combined = AnnotateReport()
    for index in sorted(reports, key=int):
        combined.merge(AnnotateReport.from_dict({k: v for k, v in reports[index].items() if k != "extra"}))
    combined.extra.update(
        run_key=parent["run_key"],
        shards=int(parent["shards"]),
        shard_runs={k: list((reports[k].get("extra") or {}).get("run_keys") or []) for k in sorted(reports, key=int)},
        label_fields=parent.get("label_fields"),
    )
    coll.update_one(
        {"_id": parent["_id"], "status": "running"},
        {"$set": {"status": "completed", "finished_at": now(), "report": combined.to_dict()}},
    )
