"""Label fields, saved views and run records of one dataset survive concurrent runs: several OS
processes against the session's real mongod label views of one dataset at the same instants,
each into its own field and all into one shared field (whose needs-review view they all
declare). Afterwards every field is in the schema, each view exists exactly once, every run is
recorded. A schema that lost a field (what FiftyOne's whole-document writes did) is repaired by
the next declaration."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoannotate.fiftyone import annotate_dataset, list_runs
from autoannotate.fiftyone.runs import review_view_name
from tests.procs import kill_tree

fo = pytest.importorskip("fiftyone")

SLOW = str(Path(__file__).with_name("slow_fake.py"))
PROCS = 4
ROUNDS = 3
GAP = 2.5  # seconds between the rounds' common start instants

CHILD = """
import sys, time
import fiftyone as fo
from autoannotate.fiftyone import annotate_dataset
name, index, procs, start_at, rounds, gap, fn = sys.argv[1:8]
index, procs, rounds, start_at, gap = int(index), int(procs), int(rounds), float(start_at), float(gap)
ds = fo.load_dataset(name)
ids = sorted(ds.values("id"))
view = ds.select(ids[index::procs])
for r in range(rounds):
    time.sleep(max(0.0, start_at + r * gap - time.time()))
    # a field of its own (the schema races), then the field every process writes (its view races)
    for field in (f"own{r}_{index}", f"shared{r}"):
        annotate_dataset(view, fn, label_field=field, review=(0.3, 0.95), write_every=1, progress=False)
print("DONE", flush=True)
"""


def _dataset(name, tmp_path, n):
    import numpy as np
    import PIL.Image

    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True  # visible to the child processes
    rng = np.random.default_rng(2)
    paths = []
    for i in range(n):
        p = tmp_path / f"{name}-{i}.png"
        PIL.Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    return ds


def _saved_view_state(ds):
    """``{view name: how many references the dataset document holds to views of that name}`` and
    the references that point at no view (what FiftyOne calls corrupted)."""
    db = fo.core.odm.get_db_conn()
    refs = db.datasets.find_one({"_id": ds._doc.id})["saved_views"]
    docs = {d["_id"]: d["name"] for d in db.views.find({"_id": {"$in": refs}})}
    counts: dict[str, int] = {}
    for ref in refs:
        if ref in docs:
            counts[docs[ref]] = counts.get(docs[ref], 0) + 1
    return counts, [r for r in refs if r not in docs]


def test_concurrent_runs_keep_every_field_view_and_record(tmp_path):
    ds = _dataset("aa-concurrent-schema", tmp_path, 2 * PROCS)
    start_at = time.time() + 15  # every child imports FiftyOne first, then they start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, ds.name, str(i), str(PROCS), str(start_at), str(ROUNDS), str(GAP), SLOW],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCS)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            kill_tree(p)
    assert [p.returncode for p in procs] == [0] * PROCS, [err[-3000:] for _, err in outs]
    ds = fo.load_dataset(ds.name)
    ds.reload()
    schema = ds.get_field_schema()
    fields = [f"own{r}_{i}" for r in range(ROUNDS) for i in range(PROCS)] + [f"shared{r}" for r in range(ROUNDS)]
    assert [f for f in fields if f not in schema] == []
    for f in fields:  # and the labels are where the schema says
        assert ds.count(f"{f}.detections") == (2 if f.startswith("own") else 2 * PROCS)
    counts, dangling = _saved_view_state(ds)
    assert dangling == []
    assert {name: counts.get(name) for name in map(review_view_name, fields)} == {
        name: 1 for name in map(review_view_name, fields)
    }
    assert sorted(ds.list_saved_views()) == sorted(set(ds.list_saved_views()))
    assert ds.load_saved_view(review_view_name("shared0")).count() == 2 * PROCS
    runs = list_runs(ds)
    assert len(runs) == 2 * ROUNDS * PROCS and all(r["status"] == "completed" for r in runs)
    ds.delete()


def test_a_field_the_schema_lost_is_declared_again_by_the_next_run(small_dataset):
    from tests.fakes import FakeDetector

    ds = small_dataset
    annotate_dataset(ds, FakeDetector(), label_field="auto1", review=(0.3, 0.95), progress=False)
    assert ds.count("auto1.detections") == 6
    # what a concurrent whole-document write left: the samples hold the labels, the schema lost them
    db = fo.core.odm.get_db_conn()
    db.datasets.update_one({"_id": ds._doc.id}, {"$pull": {"sample_fields": {"name": "auto1"}}})
    ds._reload(hard=True)  # the schema as the database has it (the samples in memory cannot reload)
    assert ds.get_field("auto1") is None
    with pytest.raises(ValueError, match="no field 'auto1'"):
        ds.count("auto1.detections")
    # the next run on the dataset, into another field, declares it again with its attributes
    annotate_dataset(ds, FakeDetector(), label_field="auto2", progress=False)
    ds.reload()
    assert ds.count("auto1.detections") == 6
    assert ds.get_field("auto1.detections.confidence") is not None
    assert ds.get_field("auto1.detections.review") is not None
    # a field deleted on purpose has no labels left: it stays deleted
    ds.delete_sample_field("auto1")
    annotate_dataset(ds, FakeDetector(), label_field="auto3", progress=False)
    ds.reload()
    assert ds.get_field("auto1") is None and ds.get_field("auto3") is not None


def test_duplicate_and_dangling_saved_views_are_repaired_by_the_next_declaration(small_dataset):
    from bson import ObjectId

    from tests.fakes import FakeDetector

    ds = small_dataset
    annotate_dataset(ds, FakeDetector(), label_field="auto", review=(0.3, 0.95), progress=False)
    name = review_view_name("auto")
    db = fo.core.odm.get_db_conn()
    # what two workers saving the view at once left: a second document of the same name, and a
    # reference to a view another writer deleted
    (doc,) = db.views.find({"_dataset_id": ds._doc.id, "name": name})
    copy = dict(doc, _id=ObjectId())
    db.views.insert_one(copy)
    db.datasets.update_one({"_id": ds._doc.id}, {"$push": {"saved_views": {"$each": [copy["_id"], ObjectId()]}}})
    ds.reload()
    assert ds.list_saved_views().count(name) == 2
    annotate_dataset(ds, FakeDetector(), label_field="auto", review=(0.3, 0.95), overwrite=True, progress=False)
    ds.reload()
    counts, dangling = _saved_view_state(ds)
    assert counts == {name: 1} and dangling == []
    assert db.views.count_documents({"_dataset_id": ds._doc.id, "name": name}) == 1
    assert ds.list_saved_views() == [name]


def test_a_lock_left_by_a_dead_process_or_past_its_lease_is_taken_over(small_dataset):
    import datetime as dt
    import socket

    from autoannotate.fiftyone.schema import LOCKS, declare_fields

    ds = small_dataset
    locks = fo.core.odm.get_db_conn()[LOCKS]
    key = f"schema:{ds._doc.id}"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process of this host that no longer exists (killed while holding the lock)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    for owner, expires in [
        ({"host": socket.gethostname(), "pid": gone.pid}, future),
        ({"host": "elsewhere", "pid": 1}, past),
    ]:
        locks.insert_one({"_id": key, "token": "old", "owner": owner, "expires_at": expires})
        declare_fields(ds, {"auto": fo.Detections})
        assert ds.get_field("auto") is not None
        assert locks.find_one({"_id": key}) is None  # taken over, then released
        ds.delete_sample_field("auto")


def test_a_live_holder_on_another_host_is_waited_for(small_dataset, monkeypatch):
    import datetime as dt

    from autoannotate.fiftyone import schema

    ds = small_dataset
    locks = fo.core.odm.get_db_conn()[schema.LOCKS]
    key = f"schema:{ds._doc.id}"
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    locks.insert_one({"_id": key, "token": "t", "owner": {"host": "elsewhere", "pid": 1}, "expires_at": future})
    monkeypatch.setattr(schema, "LOCK_WAIT", 0.5)
    with pytest.raises(RuntimeError, match="schema lock is held by .*elsewhere"):
        schema.declare_fields(ds, {"auto": fo.Detections})
    assert ds.get_field("auto") is None
    locks.delete_one({"_id": key})
