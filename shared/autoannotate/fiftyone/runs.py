"""Run records of FiftyOne datasets: one document per run in the ``autoannotate_runs`` collection
of FiftyOne's database, so a user can list past runs and see which run produced a label (every
label carries ``autoannotate_run``).

Each record is created with an insert that fails on a duplicate key and changed with updates of
that one document: two processes (or two machines sharing the database) that start runs in the
same second keep two records, and no record is ever rewritten from a stale copy. A record names
its owner (host and process id) and is refreshed at every write (``heartbeat_at``); a run whose
process is gone (killed on this host, or silent for longer than :data:`HEARTBEAT_TIMEOUT` on
another) can be resumed by the next run with the same configuration.

Datasets labelled by version 1 kept their records in ``dataset.info["autoannotate_runs"]``;
those are still listed.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import socket
from typing import Any

from ..run import UNFINISHED, now

COLLECTION = "autoannotate_runs"
LEGACY_INFO_KEY = "autoannotate_runs"
#: A running record from another host counts as abandoned after this long without a write.
HEARTBEAT_TIMEOUT = _dt.timedelta(minutes=15)
_MANAGED = ("_id", "owner", "heartbeat_at", "dataset_id", "claim")
#: At most this many failures are kept in a stored report (the rest are counted).
MAX_STORED_FAILURES = 1000
#: Runs this process is working on (threads of one process, e.g. an App server, run side by side).
_ACTIVE: set[str] = set()


def _collection() -> Any:
    from fiftyone.core.odm import get_db_conn

    coll = get_db_conn()[COLLECTION]
    coll.create_index([("dataset_id", 1), ("started_at", 1)])
    return coll


def _dataset_id(dataset: Any) -> str:
    return str(dataset._doc.id)


def _token() -> str:
    return secrets.token_hex(8)


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(doc: dict[str, Any]) -> bool:
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


def _trim(record: dict[str, Any]) -> dict[str, Any]:
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
        self.dataset_id = _dataset_id(dataset)
        self.coll = _collection()

    def _id(self, run_key: str) -> str:
        return f"{self.dataset_id}:{run_key}"

    def list(self) -> list[dict[str, Any]]:
        docs = [_public(d) for d in self.coll.find({"dataset_id": self.dataset_id})]
        keys = {d["run_key"] for d in docs}
        docs += [r for k, r in _legacy_runs(self.dataset).items() if k not in keys]
        return sorted(docs, key=lambda r: r.get("started_at", ""))

    def find_resumable(self, config_hash: str) -> dict[str, Any] | None:
        query = {"dataset_id": self.dataset_id, "config_hash": config_hash, "status": {"$in": list(UNFINISHED)}}
        for doc in self.coll.find(query).sort("started_at", -1):
            if doc.get("status") != "running" or not _alive(doc):
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
            _trim(record),
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
        fields = {k: v for k, v in _trim(record).items() if k not in _MANAGED}
        doc_id = self._id(record["run_key"])
        self.coll.update_one({"_id": doc_id}, {"$set": dict(fields, heartbeat_at=now())})
        if fields.get("status") != "running":
            _ACTIVE.discard(doc_id)

    def heartbeat(self, record: dict[str, Any]) -> None:
        self.coll.update_one({"_id": self._id(record["run_key"])}, {"$set": {"heartbeat_at": now()}})


def _legacy_runs(dataset: Any) -> dict[str, dict[str, Any]]:
    dataset.reload()
    runs = (dataset.info or {}).get(LEGACY_INFO_KEY, {})
    return dict(runs) if isinstance(runs, dict) else {}


def list_runs(dataset: Any) -> list[dict[str, Any]]:
    """Every run recorded on ``dataset``, oldest first."""
    return DatasetRuns(dataset).list()


def get_run(dataset: Any, run_key: str) -> dict[str, Any]:
    """The record of one run; ``KeyError`` naming the dataset's runs when there is none."""
    runs = {r["run_key"]: r for r in list_runs(dataset)}
    if run_key not in runs:
        raise KeyError(f"dataset {dataset.name!r} has no autoannotate run {run_key!r}; runs: {sorted(runs)}")
    return runs[run_key]
