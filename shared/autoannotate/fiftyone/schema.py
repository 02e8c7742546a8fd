"""Label fields and saved views of a dataset that survive concurrent runs, shards and workers.

FiftyOne keeps a dataset's field schema and its saved-view references as lists inside one
dataset document and writes such a list whole (``$set``) from the copy the process holds: two
processes adding a field or saving a view at the same moment overwrite each other's change (a
field vanishes from the schema while its samples hold labels; a saved view is listed twice, or
its reference points at a deleted view). autoannotate therefore declares what it needs
idempotently against the database's current state:

- every change autoannotate makes to a dataset's schema or saved views happens under one lock
  document per dataset in the database (:func:`schema_lock`), after re-reading the dataset, so
  autoannotate processes never race each other;
- each change is then verified against the database and what another writer overwrote (FiftyOne
  itself during an evaluation, the App, user code) is repaired with atomic, conditional updates
  (``$push`` of a field only while no field of that name is listed, ``$addToSet``/``$pull`` of
  view references), never a whole-list write;
- a field the schema lost while samples hold its labels (the run records name it) is declared
  again by the next declaration on the dataset (:func:`repair_lost_fields`);
- each saved view exists exactly once (:func:`declare_view` removes duplicates and references to
  views that no longer exist).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .db import dataset_key, runs_collection

log = logging.getLogger(__name__)

__all__ = ["schema_lock", "sync_fields", "declare_fields", "repair_lost_fields", "declare_view", "delete_view", "LOCKS"]

LOCKS = "autoannotate_locks"
#: A lock older than this is taken over (its holder died on another host or hangs).
LOCK_LEASE = _dt.timedelta(seconds=60)
#: How long a process waits for a dataset's lock before it gives up with an error.
LOCK_WAIT = 180.0
#: Verify-and-repair rounds after a change (each repair is verified again).
VERIFY_ROUNDS = 5

_local = threading.local()
_process_locks: dict[str, threading.RLock] = {}
_process_locks_guard = threading.Lock()


def _db() -> Any:
    from fiftyone.core.odm import get_db_conn

    return get_db_conn()


def _dataset_id(dataset: Any) -> Any:
    return dataset._doc.id


def _holder_gone(doc: Mapping[str, Any]) -> bool:
    expires = doc.get("expires_at")
    if isinstance(expires, _dt.datetime):
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=_dt.timezone.utc)
        if expires < _dt.datetime.now(_dt.timezone.utc):
            return True
    owner = doc.get("owner") or {}
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def schema_lock(dataset: Any) -> Iterator[None]:
    """Hold ``dataset``'s schema lock: one document in the ``autoannotate_locks`` collection,
    inserted by the holder (a duplicate key means someone else holds it). Re-entrant within a
    thread; threads of one process queue on a process lock first. A lock whose holder died (its
    process is gone on this host, or its lease of :data:`LOCK_LEASE` ran out) is taken over."""
    from pymongo.errors import DuplicateKeyError

    key = f"schema:{_dataset_id(dataset)}"
    depth: dict[str, int] = _local.__dict__.setdefault("depth", {})
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    with _process_locks_guard:
        plock = _process_locks.setdefault(key, threading.RLock())
    with plock:
        coll = _db()[LOCKS]
        token = secrets.token_hex(8)
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.01
        while True:
            now = _dt.datetime.now(_dt.timezone.utc)
            doc = {
                "_id": key,
                "token": token,
                "owner": {"host": socket.gethostname(), "pid": os.getpid()},
                "expires_at": now + LOCK_LEASE,
            }
            try:
                coll.insert_one(doc)
                break
            except DuplicateKeyError:
                held = coll.find_one({"_id": key})
                if held is not None and _holder_gone(held):
                    coll.delete_one({"_id": key, "token": held.get("token")})
                    continue
                if time.monotonic() > deadline:
                    owner = (held or {}).get("owner")
                    raise RuntimeError(
                        f"dataset {dataset.name!r}: its schema lock is held by {owner} for longer than "
                        f"{LOCK_WAIT:.0f} s; if that process is gone, delete the document {key!r} from the "
                        f"{LOCKS!r} collection"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.2)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
            coll.delete_one({"_id": key, "token": token})


# -- fields --


def _list_key(frames: bool) -> str:
    return "frame_fields" if frames else "sample_fields"


def _doc_cls(dataset: Any, frames: bool) -> Any:
    return dataset._frame_doc_cls if frames else dataset._sample_doc_cls


def _db_field_names(dataset: Any, frames: bool) -> set[str]:
    key = _list_key(frames)
    doc = _db().datasets.find_one({"_id": _dataset_id(dataset)}, {f"{key}.name": 1}) or {}
    return {f.get("name") for f in doc.get(key) or []}


def sync_fields(dataset: Any, frames: bool = False) -> None:
    """This process's schema as the database has it now: the dataset document's field list is
    read again and every field in it (re)declared on the in-memory document class. Fields only
    this process knows stay declared (samples in memory keep working); nothing is written."""
    key = _list_key(frames)
    dataset._doc.reload(key)
    cls = _doc_cls(dataset, frames)
    for field_doc in getattr(dataset._doc, key) or []:
        cls._declare_field(dataset, field_doc.name, field_doc)


def _memory_field(dataset: Any, name: str, frames: bool) -> Any:
    return _doc_cls(dataset, frames)._fields.get(name)


def _split(path: str) -> tuple[str, bool]:
    return (path[len("frames.") :], True) if path.startswith("frames.") else (path, False)


def _add_field(dataset: Any, name: str, doc_type: Any, frames: bool) -> None:
    """Declare a field this process does not know, with FiftyOne's own call (which reads the
    database's field list again just before writing it)."""
    import fiftyone as fo

    add = dataset.add_frame_field if frames else dataset.add_sample_field
    add(name, fo.EmbeddedDocumentField, embedded_doc_type=doc_type)


def _push_field(dataset: Any, name: str, frames: bool) -> None:
    """Put the field this process knows back in the database's list, atomically and only while
    no field of that name is listed (so two repairs never list it twice)."""
    import fiftyone.core.odm as foo

    key = _list_key(frames)
    field_doc = foo.SampleFieldDocument.from_field(_memory_field(dataset, name, frames))
    _db().datasets.update_one(
        {"_id": _dataset_id(dataset), f"{key}.name": {"$ne": name}},
        {"$push": {key: field_doc.to_mongo().to_dict()}},
    )


def _ensure(dataset: Any, wanted: Mapping[str, Any], frames: bool) -> list[str]:
    """Make the database list every field of ``wanted`` (``{name: document type}``) and verify
    it: a field this process knows is pushed back as it knows it, another is added anew. Returns
    the names that were missing although this process knew them (what a concurrent writer
    dropped)."""
    repaired: list[str] = []
    for _ in range(VERIFY_ROUNDS):
        sync_fields(dataset, frames)
        missing = [n for n in wanted if n not in _db_field_names(dataset, frames)]
        if not missing:
            return repaired
        for name in missing:
            if _memory_field(dataset, name, frames) is not None:
                _push_field(dataset, name, frames)
                repaired.append(name)
            else:
                _add_field(dataset, name, wanted[name], frames)
    missing = [n for n in wanted if n not in _db_field_names(dataset, frames)]
    if missing:
        raise RuntimeError(f"dataset {dataset.name!r}: fields {missing} could not be declared")
    sync_fields(dataset, frames)
    return repaired


def _declare_attributes(dataset: Any, names: list[str], frames: bool) -> None:
    add = dataset.add_dynamic_frame_fields if frames else dataset.add_dynamic_sample_fields
    try:
        add(fields=names)
    except Exception:  # noqa: BLE001 - attributes only help the App's filters
        log.debug("could not declare the attributes of %s", names, exc_info=True)


def declare_fields(
    dataset: Any, fields: Mapping[str, Any], *, frames: bool = False, attributes: bool = False
) -> list[str]:
    """Make every field of ``fields`` (``{name: label container type}``, e.g. ``fo.Detections``)
    exist in ``dataset``'s schema in the database (frame fields with ``frames=True``); with
    ``attributes=True`` also declare the attributes their labels hold (what the App filters on).
    Repairs on the way any field the schema lost while its samples hold labels. Returns the
    names of fields that were repaired (not those newly created)."""
    with schema_lock(dataset):
        repaired = _ensure(dataset, fields, frames)
        if attributes and fields:
            _declare_attributes(dataset, list(fields), frames)
            repaired += _ensure(dataset, fields, frames)
        repaired += repair_lost_fields(dataset)
    return repaired


def _stored_type(dataset: Any, name: str, frames: bool) -> Any:
    """The label container type the database holds in field ``name`` (``None``: no values)."""
    import fiftyone.core.labels as fol

    coll = dataset._frame_collection if frames else dataset._sample_collection
    doc = coll.find_one({name: {"$type": "object"}}, {f"{name}._cls": 1})
    cls_name = ((doc or {}).get(name) or {}).get("_cls")
    return getattr(fol, cls_name, None) if cls_name else None


def repair_lost_fields(dataset: Any) -> list[str]:
    """Declare again every label field an autoannotate run recorded on ``dataset`` that is
    missing from the schema while samples (or frames) hold its labels; returns their paths. A
    field deleted on purpose has no values left and stays deleted."""
    paths = [p for p in runs_collection().distinct("label_fields", {"dataset_id": dataset_key(dataset)}) if p]
    repaired = []
    with schema_lock(dataset):
        for frames in (False, True):
            names = [n for n, f in map(_split, paths) if f == frames]
            if frames and dataset.media_type != "video":
                continue
            present = _db_field_names(dataset, frames)
            lost = {}
            for name in names:
                if name in present:
                    continue
                doc_type = _stored_type(dataset, name, frames)
                if doc_type is not None:
                    lost[name] = doc_type
            if not lost:
                continue
            log.warning("dataset %r: declaring again label fields its schema lost: %s", dataset.name, sorted(lost))
            _ensure(dataset, lost, frames)
            _declare_attributes(dataset, list(lost), frames)
            _ensure(dataset, lost, frames)
            repaired += [f"frames.{n}" if frames else n for n in lost]
    return repaired


# -- saved views --


def _view_docs(dataset: Any, name: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """``(the dataset's saved-view references in the database, the view documents named name)``."""
    db = _db()
    ds = db.datasets.find_one({"_id": _dataset_id(dataset)}, {"saved_views": 1}) or {}
    refs = list(ds.get("saved_views") or [])
    docs = list(db.views.find({"_dataset_id": _dataset_id(dataset), "name": name}).sort("_id", 1))
    return refs, docs


def _repair_view(dataset: Any, name: str) -> Any:
    """Leave at most one view ``name`` referenced (the oldest referenced one), drop references
    to views that no longer exist and documents of ``name`` nobody references. Returns the
    remaining document's id, or ``None``."""
    db = _db()
    ds_id = _dataset_id(dataset)
    refs, docs = _view_docs(dataset, name)
    existing = {d["_id"] for d in db.views.find({"_id": {"$in": refs}}, {"_id": 1})} if refs else set()
    dangling = [r for r in refs if r not in existing]
    if dangling:
        db.datasets.update_one({"_id": ds_id}, {"$pull": {"saved_views": {"$in": dangling}}})
    live = [d["_id"] for d in docs if d["_id"] in existing]
    keep = live[0] if live else None
    extra = [d["_id"] for d in docs if d["_id"] != keep]
    if extra:
        db.datasets.update_one({"_id": ds_id}, {"$pull": {"saved_views": {"$in": extra}}})
        db.views.delete_many({"_id": {"$in": extra}})
    return keep


def declare_view(dataset: Any, name: str, view: Any, description: str) -> str:
    """Make ``name`` exist exactly once among ``dataset``'s saved views, showing ``view``:
    updated in place when it exists (its one document), created otherwise; duplicates and
    references to deleted views that concurrent writers left are removed. Returns ``name``."""
    import fiftyone.core.odm as foo
    import fiftyone.core.utils as fou
    from bson import json_util

    stages = [json_util.dumps(s) for s in view._serialize(include_uuids=False)]
    db = _db()
    ds_id = _dataset_id(dataset)
    with schema_lock(dataset):
        for _ in range(VERIFY_ROUNDS):
            keep = _repair_view(dataset, name)
            now = _dt.datetime.utcnow()
            if keep is None:
                doc = foo.SavedViewDocument(
                    dataset_id=ds_id,
                    name=name,
                    slug=fou.to_slug(name),
                    description=description,
                    view_stages=stages,
                    created_at=now,
                    last_modified_at=now,
                )
                doc.save(upsert=True)
                db.datasets.update_one({"_id": ds_id}, {"$addToSet": {"saved_views": doc.id}})
            else:
                update = {"description": description, "view_stages": stages, "last_modified_at": now}
                db.views.update_one({"_id": keep}, {"$set": update})
            refs, docs = _view_docs(dataset, name)
            if len([d for d in docs if d["_id"] in refs]) == 1 and len(docs) == 1:
                break
        else:
            raise RuntimeError(f"dataset {dataset.name!r}: saved view {name!r} could not be declared once")
        dataset._doc.reload("saved_views")
    return name


def delete_view(dataset: Any, name: str) -> bool:
    """Delete every saved view ``name`` of ``dataset`` (references and documents, with atomic
    updates); returns whether there was one."""
    db = _db()
    with schema_lock(dataset):
        _, docs = _view_docs(dataset, name)
        ids = [d["_id"] for d in docs]
        if ids:
            db.datasets.update_one({"_id": _dataset_id(dataset)}, {"$pull": {"saved_views": {"$in": ids}}})
            db.views.delete_many({"_id": {"$in": ids}})
        _repair_view(dataset, name)
        dataset._doc.reload("saved_views")
    return bool(ids)
