"""Run records of FiftyOne datasets: one document per run in the ``autoannotate_runs`` collection
of FiftyOne's database, so a user can list past runs and see which run produced a label (every
label carries ``autoannotate_run``).

Each record is created with an insert that fails on a duplicate key and changed with updates of
that one document: two processes (or two machines sharing the database) that start runs in the
same second keep two records, and no record is ever rewritten from a stale copy. A record names
its owner (host and process id) and is refreshed at every write (``heartbeat_at``); a run whose
process is gone (killed on this host, or silent for longer than :data:`HEARTBEAT_TIMEOUT` on
another) can be resumed by the next run with the same configuration.

This module is the store (records, run outputs' saved views, shard states); deleting runs and
cleaning up after them is :mod:`autoannotate.fiftyone.admin`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import secrets
import socket
from collections.abc import Mapping
from typing import Any

from ..run import UNFINISHED, now
from .convert import RUN_ATTRIBUTE
from .db import dataset_key, runs_collection
from .schema import delete_view

log = logging.getLogger(__name__)

#: A running record from another host counts as abandoned after this long without a write.
HEARTBEAT_TIMEOUT = _dt.timedelta(minutes=15)
#: A shard's heartbeat older than its operation's claim by more than this (seconds) is a
#: previous worker's.
CLAIM_SLACK = 2.0
_MANAGED = ("_id", "owner", "heartbeat_at", "dataset_id", "claim")
#: At most this many failures are kept in a stored report (the rest are counted).
MAX_STORED_FAILURES = 1000
#: Runs this process is working on (threads of one process, e.g. an App server, run side by side).
_ACTIVE: set[str] = set()


def _token() -> str:
    return secrets.token_hex(8)


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def record_alive(doc: dict[str, Any]) -> bool:
    """Whether the process that owns a running record may still be working on it."""
    owner, heartbeat = doc.get("owner"), doc.get("heartbeat_at")
    if not owner:
        return False
    if owner.get("host") == socket.gethostname():
        pid = owner.get("pid")
        if pid == os.getpid():
            return doc.get("_id") in _ACTIVE
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, TypeError, ValueError):
            return True
        return True
    if not heartbeat:
        return False
    last = _dt.datetime.fromisoformat(heartbeat)
    return _dt.datetime.now(_dt.timezone.utc) - last < HEARTBEAT_TIMEOUT


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_id", "dataset_id")}


def trim_record(record: dict[str, Any]) -> dict[str, Any]:
    """A MongoDB document stays far below its 16 MB limit: long failure lists are cut."""
    report = record.get("report")
    if isinstance(report, dict) and len(report.get("failures") or []) > MAX_STORED_FAILURES:
        failures = report["failures"]
        record = dict(
            record,
            report=dict(
                report, failures=failures[:MAX_STORED_FAILURES], failures_not_stored=len(failures) - MAX_STORED_FAILURES
            ),
        )
    return record


class DatasetRuns:
    """The :class:`~autoannotate.run.RunStore` of one dataset."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.dataset_id = dataset_key(dataset)
        self.coll = runs_collection()

    def _id(self, run_key: str) -> str:
        return f"{self.dataset_id}:{run_key}"

    def list(self) -> list[dict[str, Any]]:
        docs = [_with_shards(_public(d)) for d in self.coll.find({"dataset_id": self.dataset_id})]
        return sorted(docs, key=lambda r: r.get("started_at", ""))

    def find_resumable(self, config_hash: str) -> dict[str, Any] | None:
        query = {"dataset_id": self.dataset_id, "config_hash": config_hash, "status": {"$in": list(UNFINISHED)}}
        for doc in self.coll.find(query).sort("started_at", -1):
            if doc.get("status") != "running" or not record_alive(doc):
                return _public(doc)
        return None

    def claim(self, record: dict[str, Any]) -> bool:
        """Take over ``record`` only if it is still as found (same status, owner and claim token;
        every claim writes a new token, so of two processes claiming at once one wins)."""
        query = {
            "_id": self._id(record["run_key"]),
            "status": record.get("status"),
            "owner": record.get("owner"),
            "claim": record.get("claim"),
        }
        result = self.coll.update_one(query, {"$set": {"owner": _owner(), "heartbeat_at": now(), "claim": _token()}})
        if result.matched_count != 1:
            return False
        _ACTIVE.add(self._id(record["run_key"]))
        return True

    def create(self, record: dict[str, Any]) -> bool:
        from pymongo.errors import DuplicateKeyError

        doc = dict(
            trim_record(record),
            _id=self._id(record["run_key"]),
            dataset_id=self.dataset_id,
            dataset=self.dataset.name,
            owner=_owner(),
            heartbeat_at=now(),
            claim=_token(),
        )
        try:
            self.coll.insert_one(doc)
        except DuplicateKeyError:
            return False
        _ACTIVE.add(doc["_id"])
        return True

    def update(self, record: dict[str, Any]) -> None:
        fields = {k: v for k, v in trim_record(record).items() if k not in _MANAGED}
        doc_id = self._id(record["run_key"])
        self.coll.update_one({"_id": doc_id}, {"$set": dict(fields, heartbeat_at=now())})
        if fields.get("status") != "running":
            _ACTIVE.discard(doc_id)

    def heartbeat(self, record: dict[str, Any]) -> None:
        self.coll.update_one({"_id": self._id(record["run_key"])}, {"$set": {"heartbeat_at": now()}})


def _with_shards(record: dict[str, Any]) -> dict[str, Any]:
    """A sharded run's record with its per-shard state and progress line (computed now)."""
    if record.get("kind") != "sharded":
        return record
    try:
        return dict(record, **shard_summary(record))
    except Exception:  # noqa: BLE001 - the list must show even if the operations cannot be read
        log.warning("could not read the shards of run %s", record.get("run_key"), exc_info=True)
        return record


# -- sharded runs (autoannotate.fiftyone.shards): the state of each shard --


def _age(stamp: Any) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, str):
        stamp = _dt.datetime.fromisoformat(stamp)
    if stamp.tzinfo is None:  # FiftyOne stores naive UTC times
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    return (_dt.datetime.now(_dt.timezone.utc) - stamp).total_seconds()


def _owner_gone(owner: Mapping[str, Any] | None) -> bool:
    """True only when the owner ran on this host and its process no longer exists."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, TypeError, ValueError, KeyError):
        return False
    return False


def delegated_operation(svc: Any, op_id: Any) -> Any:
    """The delegated operation ``op_id``, or ``None`` when it no longer exists."""
    from bson import ObjectId

    try:
        return svc.get(ObjectId(op_id))
    except ValueError:  # FiftyOne: "No operation found with ID ..."
        return None


def parent_shard_states(parent: Mapping[str, Any], timeout: _dt.timedelta) -> list[dict[str, Any]]:
    from fiftyone.operators.delegated import DelegatedOperationService

    svc = DelegatedOperationService()
    out = []
    progress = parent.get("shard_progress") or {}
    reports = parent.get("shard_reports") or {}
    for index, op_id in enumerate(parent.get("operations") or []):
        op = delegated_operation(svc, op_id)
        state = str(op.run_state) if op is not None else "missing"
        beat = progress.get(str(index)) or {}
        started = op.started_at if op is not None else None
        # a beat from before the operation's last claim is the previous worker's (a requeued
        # shard): it says nothing about the worker now running it (beats are stored to the
        # second, claims to the microsecond: CLAIM_SLACK seconds of tolerance)
        beat_age, claim_age = _age(beat.get("heartbeat_at")), _age(started)
        stale = beat_age is not None and claim_age is not None and beat_age > claim_age + CLAIM_SLACK
        live = {} if stale else beat
        age = _age(live.get("heartbeat_at") or started)
        dead = state == "running" and (
            _owner_gone(live.get("owner")) or (age is not None and age > timeout.total_seconds())
        )
        report = (reports.get(str(index)) or {}).get("extra") or {}
        error = getattr(getattr(op, "result", None), "error", None) if state == "failed" else None
        out.append(
            {
                "shard": index,
                "operation": op_id,
                "state": "dead" if dead else state,
                "done": beat.get("done", 0),
                "total": beat.get("total"),
                "heartbeat_at": beat.get("heartbeat_at"),
                "owner": beat.get("owner"),
                "run_keys": report.get("run_keys"),
                "error": str(error)[-2000:] if error else None,
            }
        )
    return out


def shard_summary(parent: Mapping[str, Any]) -> dict[str, Any]:
    """What ``list_runs`` adds to a sharded run's record: ``shard_states`` and a one-line
    ``progress`` (``"2/4 shards done, 510/1000 samples"``)."""
    states = parent_shard_states(parent, HEARTBEAT_TIMEOUT)
    done = sum(1 for s in states if s["state"] == "completed")
    samples = sum(int(s["done"] or 0) for s in states)
    total = sum(int(s["total"] or 0) for s in states) if all(s["total"] is not None for s in states) else None
    line = f"{done}/{len(states)} shards done, {samples}/{total if total is not None else '?'} samples"
    return {"shard_states": states, "progress": line}


def list_runs(dataset: Any) -> list[dict[str, Any]]:
    """Every run recorded on ``dataset``, oldest first."""
    return DatasetRuns(dataset).list()


def get_run(dataset: Any, run_key: str) -> dict[str, Any]:
    """The record of one run; ``KeyError`` naming the dataset's runs when there is none."""
    runs = {r["run_key"]: r for r in list_runs(dataset)}
    if run_key not in runs:
        raise KeyError(f"dataset {dataset.name!r} has no autoannotate run {run_key!r}; runs: {sorted(runs)}")
    return runs[run_key]


# -- what a run leaves on its dataset besides labels: its evaluation and the field's review view --

#: Saved views autoannotate keeps: one per label field, ``autoannotate-<field>-needs-review``.
VIEW_PREFIX = "autoannotate-"
VIEW_SUFFIX = "-needs-review"


def eval_key_for(run_key: str) -> str:
    """The FiftyOne evaluation key of a run: its run key made a valid identifier (what FiftyOne
    requires of evaluation keys; run keys already are, so normally the run key itself)."""
    key = re.sub(r"\W", "_", run_key)
    return key if key.isidentifier() else f"aa_{key}"


def review_view_name(label_path: str) -> str:
    """The saved view listing ``label_path``'s labels waiting for review (``frames.x`` for video
    frame fields): ``autoannotate-<field>-needs-review``, dots and underscores as dashes."""
    return VIEW_PREFIX + label_path.replace(".", "-").replace("_", "-") + VIEW_SUFFIX


def save_review_view(dataset: Any, label_path: str, run_key: str) -> str:
    """Create or update the field's needs-review view (every autoannotate label of ``label_path``
    with ``review == "needs_review"``, whichever run made it); returns its name."""
    from fiftyone import ViewField as F

    from .schema import declare_view

    name = review_view_name(label_path)
    view = dataset.filter_labels(label_path, (F("review") == "needs_review") & F(RUN_ATTRIBUTE).exists())
    # once, whatever the race: shards and runs finishing at the same moment declare the same view
    # (FiftyOne's own save_view replaces a view as delete + insert of a list written whole)
    description = f"autoannotate labels of {label_path} waiting for review (last run {run_key})"
    return declare_view(dataset, name, view, description)


def field_exists(dataset: Any, path: str) -> bool:
    if path.startswith("frames."):
        return path[len("frames.") :] in (dataset.get_frame_field_schema() or {})
    return dataset.get_field(path) is not None


def review_view_fields(dataset: Any) -> dict[str, str]:
    """``{saved view name: label path}`` for autoannotate's per-field views on ``dataset`` (the
    path is read from the view itself, not guessed back from the name)."""
    out = {}
    dataset._doc.reload("saved_views")  # what the database lists now, not this process's copy
    for info in dataset.list_saved_views(info=True):
        name = info["name"]
        if not (name.startswith(VIEW_PREFIX) and name.endswith(VIEW_SUFFIX)):
            continue
        desc = info.get("description") or ""
        match = re.match(r"autoannotate labels of (\S+) waiting for review", desc)
        if match:
            out[name] = match.group(1)
    return out


def drop_stale_views(dataset: Any) -> list[str]:
    """Delete autoannotate's needs-review views whose label field no longer exists (a view of a
    deleted field would fail to load in the App); returns their names."""
    gone = [name for name, path in review_view_fields(dataset).items() if not field_exists(dataset, path)]
    for name in gone:
        delete_view(dataset, name)
    return gone


def expand_run_key(dataset: Any, run_key: str) -> list[str]:
    """The run keys labels of run ``run_key`` carry in ``autoannotate_run``: for a sharded run
    (its parent record) the run keys of its shard runs (a shard runs one run per
    ``SHARD_BATCH`` samples), in shard order (none before a shard has started); for any other
    key, ``[run_key]``."""
    coll = runs_collection()
    dataset_id = dataset_key(dataset)
    parent = coll.find_one({"_id": f"{dataset_id}:{run_key}"}, {"kind": 1, "shard_reports": 1})
    if parent is None or parent.get("kind") != "sharded":
        return [run_key]
    keys: dict[str, tuple[int, str]] = {}  # run key: (shard, started_at)
    query = {"dataset_id": dataset_id, "parent_run": run_key}
    for doc in coll.find(query, {"run_key": 1, "shard": 1, "started_at": 1}):
        keys[doc["run_key"]] = (int(doc.get("shard", -1)), str(doc.get("started_at", "")))
    # a shard run whose own record was deleted is still named in the report its shard left
    for index, report in (parent.get("shard_reports") or {}).items():
        for key in ((report or {}).get("extra") or {}).get("run_keys") or []:
            keys.setdefault(key, (int(index), ""))
    return sorted(keys, key=lambda k: keys[k])
