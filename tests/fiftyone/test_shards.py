"""Sharded runs on FiftyOne's delegated-operation engine, for real: the session's own mongod
(tests/mongo.py, a separate process), three ``fiftyone delegated launch`` workers sharing it, the
plugin from plugins/, YOLOX-Nano on COCO128 photos.

- a 4-shard run equals a single in-process run label for label, no sample labelled twice, the
  ground truth untouched, the parent record shows every shard and the combined report;
- a worker SIGKILLed mid-shard leaves its shard "dead"; ``autoannotate fiftyone requeue`` puts
  it back, another worker resumes it under the same run key, and the end state still equals the
  single run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from autoannotate.errors import BadParameterError
from autoannotate.fiftyone import annotate_dataset, get_run, list_runs
from autoannotate.fiftyone.shard_worker import run_shard
from autoannotate.fiftyone.shards import SHARD_OPERATOR, shard_states, wait_for_run
from autoannotate.sharding import select_shard, shard_of
from tests.fiftyone.conftest import gt_snapshot
from tests.procs import kill_tree

fo = pytest.importorskip("fiftyone")

REPO = Path(__file__).resolve().parents[2]
SLOW_YOLOX = str(Path(__file__).with_name("slow_yolox.py"))
N_IMAGES = 24
REVIEW = (0.3, 0.6)


def _state(ds, field="auto"):
    """Every stored label, per image: (label, box, confidence, review), run keys left out."""
    out = {}
    for s in ds.sort_by("filepath"):
        dets = s[field].detections if s[field] is not None else None
        out[Path(s.filepath).name] = (
            None
            if dets is None
            else sorted(
                (d.label, tuple(round(v, 4) for v in d.bounding_box), round(d.confidence, 4), d.review) for d in dets
            )
        )
    return out


@pytest.fixture(scope="module")
def photos(coco128_dataset, models_dir):
    return coco128_dataset.sort_by("filepath").limit(N_IMAGES)


@pytest.fixture(scope="module")
def reference(photos, models_dir):
    """The single-process run every sharded run must equal."""
    os.environ.setdefault("AUTOANNOTATE_MODELS", str(models_dir))
    ds = photos.clone("aa-shards-reference")
    report = annotate_dataset(ds, "yolox", label_field="auto", review=REVIEW, progress=False)
    assert report.images_processed == N_IMAGES and report.annotations_added > N_IMAGES
    yield _state(ds)
    ds.delete()


@pytest.fixture(scope="module")
def workers(models_dir):
    """Three ``fiftyone delegated launch`` workers on the session's database."""
    env = dict(
        os.environ,
        AUTOANNOTATE_MODELS=str(models_dir),
        AUTOANNOTATE_OFFLINE="1",
        FIFTYONE_PLUGINS_DIR=str(REPO / "plugins"),
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "shared")]),
    )
    assert env.get("FIFTYONE_DATABASE_URI"), "the session mongod (tests/mongo.py) must be running"
    exe = Path(sys.executable).with_name("fiftyone")
    procs = [
        subprocess.Popen(
            [str(exe), "delegated", "launch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(3)
    ]
    yield procs
    for p in procs:
        kill_tree(p)


def test_shards_are_deterministic_disjoint_and_cover_everything():
    keys = [f"{i:024x}" for i in range(1000)]
    parts = [select_shard([(k,) for k in keys], i, 4) for i in range(4)]
    assert sorted(k for part in parts for (k,) in part) == sorted(keys)
    assert all(150 < len(p) < 350 for p in parts)  # a hash, roughly balanced
    assert [shard_of(k, 4) for k in keys] == [shard_of(k, 4) for k in keys]
    assert shard_of("65f0c0ffee", 7) == shard_of("65f0c0ffee", 7)


def test_sharded_run_needs_a_named_function_and_no_eval(small_dataset):
    from tests.fakes import FakeDetector

    with pytest.raises(BadParameterError, match="by name or file path"):
        annotate_dataset(small_dataset, FakeDetector(), label_field="auto", shards=2)
    with pytest.raises(BadParameterError, match="eval_gt_field is not supported with shards"):
        annotate_dataset(small_dataset, "yolox", label_field="auto", shards=2, eval_gt_field="ground_truth")
    with pytest.raises(BadParameterError, match="shards must be an integer >= 1"):
        annotate_dataset(small_dataset, "yolox", label_field="auto", shards=0)


def test_requeue_command_names_an_unknown_run(capsys):
    from autoannotate.cli import main

    assert main(["fiftyone", "requeue", "sharded_nothing_here"]) == 2
    assert "no autoannotate run 'sharded_nothing_here'" in capsys.readouterr().err


def test_auto_label_operator_queues_shards_and_requeue_operator_revives_a_dead_one(small_dataset, models_env):
    """The App's path, run by FiftyOne's engine in this process (no worker yet): the form's
    "Split into N parallel tasks" queues N shard operations; a shard whose owner is gone is dead
    and the requeue operator puts it back."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    result = fo.operators.execute_operator(
        "@autoannotate/autoannotate/auto_label",
        ctx={
            "dataset": small_dataset.name,
            "params": {"view_target": "DATASET", "function": "yolox", "label_field": "auto", "shards": 2},
        },
    )
    assert result.error is None, result.error_message
    key = result.result["extra"]["run_key"]
    svc = DelegatedOperationService()
    ops = [svc.get(ObjectId(i)) for i in result.result["extra"]["operations"]]
    assert [op.run_state for op in ops] == ["queued", "queued"]
    assert small_dataset.get_field("auto") is None
    # shard 0 claimed by a worker that then vanished: its operation stays "running"
    svc.set_running(ops[0].id)
    _claimed_at(ops[0].id, "2025-12-31T23:00:00")  # its last beat came after the claim
    coll = fo.core.odm.get_db_conn()["autoannotate_runs"]
    gone = {"state": "running", "done": 1, "total": 3, "heartbeat_at": "2026-01-01T00:00:00+00:00"}
    gone["owner"] = {"host": "another-machine", "pid": 1}
    coll.update_one({"_id": f"{small_dataset._doc.id}:{key}"}, {"$set": {"shard_progress.0": gone}})
    assert [s["state"] for s in shard_states(small_dataset, key)] == ["dead", "queued"]
    assert [s["state"] for s in shard_states(small_dataset, key, heartbeat_timeout=1e12)] == ["running", "queued"]
    out = fo.operators.execute_operator(
        "@autoannotate/autoannotate/requeue_autoannotate_run",
        ctx={"dataset": small_dataset.name, "params": {"run_key": key}},
    ).result
    assert out["requeued"] == [0]
    for op in ops:  # what a worker does with a queued operation
        svc.execute_operation(svc.get(op.id))
    record = wait_for_run(small_dataset, key, timeout=60)
    assert record["report"]["images_processed"] == 6
    small_dataset.reload()
    assert small_dataset.exists("auto").count() == 6


def _claimed_at(op_id, when):
    """Move a delegated operation's claim time (``started_at``, naive UTC as FiftyOne keeps it)."""
    import datetime as dt

    stamp = dt.datetime.fromisoformat(when)
    fo.core.odm.get_db_conn()["delegated_ops"].update_one({"_id": op_id}, {"$set": {"started_at": stamp}})


def test_requeued_shard_claimed_again_is_not_dead_before_its_first_beat(small_dataset, models_env):
    """A requeued shard that a new worker claimed is judged by the new claim, not by the dead
    worker's last beat: a second requeue leaves it alone (no two workers on one shard)."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    from autoannotate.fiftyone.admin import delete_run
    from autoannotate.fiftyone.shards import requeue

    queued = annotate_dataset(small_dataset, "yolox", label_field="auto", shards=2)
    key = queued.extra["run_key"]
    svc = DelegatedOperationService()
    op = ObjectId(queued.extra["operations"][0])
    coll = fo.core.odm.get_db_conn()["autoannotate_runs"]
    parent_id = f"{small_dataset._doc.id}:{key}"
    old = {"state": "running", "done": 1, "total": 3, "heartbeat_at": "2026-01-01T00:00:00+00:00"}
    old["owner"] = {"host": "another-machine", "pid": 1}
    # claimed by a worker that beat once and vanished
    svc.set_running(op)
    _claimed_at(op, "2025-12-31T23:00:00")
    coll.update_one({"_id": parent_id}, {"$set": {"shard_progress.0": old}})
    assert requeue(small_dataset, key)["requeued"] == [0]
    assert "0" not in coll.find_one({"_id": parent_id})["shard_progress"]  # the dead beat is gone
    # a new worker claims it (now) and has not beaten yet; the old beat shows up again (a late write)
    svc.set_running(op)
    coll.update_one({"_id": parent_id}, {"$set": {"shard_progress.0": old}})
    assert [s["state"] for s in shard_states(small_dataset, key)] == ["running", "queued"]
    assert requeue(small_dataset, key)["requeued"] == []
    assert svc.get(op).run_state == "running"
    # a claim older than the timeout with no beat since is dead again
    _claimed_at(op, "2025-12-31T23:00:00")
    assert [s["state"] for s in shard_states(small_dataset, key)] == ["dead", "queued"]
    delete_run(small_dataset, key)


def test_shard_worker_beats_before_listing_its_samples(small_dataset, models_env, monkeypatch):
    """The worker's first beat comes before it lists ids or loads the model."""
    from autoannotate.fiftyone import shard_worker
    from autoannotate.fiftyone.admin import delete_run

    queued = annotate_dataset(small_dataset, "yolox", label_field="auto", shards=2)
    key = queued.extra["run_key"]

    def stuck(*args, **kwargs):
        raise RuntimeError("still listing")

    monkeypatch.setattr(shard_worker, "shard_target", stuck)
    with pytest.raises(RuntimeError, match="still listing"):
        run_shard(small_dataset, key, 1)
    progress = fo.core.odm.get_db_conn()["autoannotate_runs"].find_one({"_id": f"{small_dataset._doc.id}:{key}"})
    beat = progress["shard_progress"]["1"]
    assert beat["state"] == "starting" and beat["owner"]["pid"] == os.getpid() and beat["heartbeat_at"]
    delete_run(small_dataset, key)


class _CalibrationLike(Mapping):
    """What autoannotate.calibrate.Calibration is to a run: a mapping with ``review(classes)``."""

    def __init__(self, thresholds):
        self.thresholds = dict(thresholds)

    def __getitem__(self, key):
        return self.thresholds[key]

    def __iter__(self):
        return iter(self.thresholds)

    def __len__(self):
        return len(self.thresholds)

    def review(self, classes=None):
        keep = set(classes or self.thresholds) | {"*"}
        return {k: v for k, v in self.thresholds.items() if k in keep}


@pytest.mark.parametrize("kind", ["calibration", "thresholds"])
def test_sharded_run_stores_a_calibration_or_thresholds_review_as_plain_values(small_dataset, models_env, kind):
    from autoannotate.fiftyone.admin import delete_run
    from autoannotate.routing import ReviewThresholds

    if kind == "calibration":  # classes the run lacks are ignored, as in a plain run
        review = _CalibrationLike({"person": (0.1, 0.5), "not_a_coco_class": (0.0, 1.0), "*": (0.2, 0.7)})
    else:
        review = ReviewThresholds(0.2, 0.7)
    queued = annotate_dataset(small_dataset, "yolox", label_field="auto", review=review, shards=2)
    key = queued.extra["run_key"]
    parent = fo.core.odm.get_db_conn()["autoannotate_runs"].find_one({"_id": f"{small_dataset._doc.id}:{key}"})
    stored = parent["shard_args"]["review"]
    assert stored == parent["review"] and len(stored) == 80  # every COCO class, [lower, upper]
    assert stored["person"] == ([0.1, 0.5] if kind == "calibration" else [0.2, 0.7])
    assert stored["dog"] == [0.2, 0.7]
    assert "not_a_coco_class" not in stored
    # a worker runs with it: the shard's own run has the same routing (a shard that has samples:
    # sample ids, and so the split, differ from one test session to the next)
    ids = [(i,) for i in small_dataset.values("id")]
    shard = next(i for i in range(2) if select_shard(ids, i, 2))
    run_shard(small_dataset, key, shard)
    (child,) = [r for r in list_runs(small_dataset) if r.get("parent_run") == key]
    assert child["status"] == "completed"
    delete_run(small_dataset, key)


def test_expand_run_key_and_delete_run_of_a_sharded_run(photos, models_env):
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    from autoannotate.fiftyone.admin import delete_run
    from autoannotate.fiftyone.runs import expand_run_key

    ds = photos.limit(6).clone("aa-shards-delete")
    svc = DelegatedOperationService()
    queued = annotate_dataset(ds, "yolox", label_field="auto", shards=2)
    key = queued.extra["run_key"]
    assert expand_run_key(ds, key) == []  # no shard has started
    for op_id in queued.extra["operations"]:  # what a worker does with a queued operation
        svc.execute_operation(svc.get(ObjectId(op_id)))
    record = wait_for_run(ds, key, timeout=60)
    ds.reload()
    children = expand_run_key(ds, key)
    assert children == [k for i in range(2) for k in record["report"]["extra"]["shard_runs"][str(i)]]
    assert set(ds.distinct("auto.detections.autoannotate_run")) == set(children)
    assert expand_run_key(ds, children[0]) == [children[0]] and expand_run_key(ds, "no_such") == ["no_such"]
    n_labels = ds.count("auto.detections")
    assert n_labels > 0
    # a second run, still queued: deleting it takes its operations out of the queue
    pending = annotate_dataset(ds, "yolox", label_field="auto", shards=2, overwrite=True)
    out = delete_run(ds, pending.extra["run_key"])
    assert sorted(out["operations_deleted"]) == sorted(pending.extra["operations"])
    assert out["operations_running"] == [] and out["shard_runs_deleted"] == []
    assert not [op for op in svc.list_operations(operator=SHARD_OPERATOR) if str(op.id) in pending.extra["operations"]]
    out = delete_run(ds, key, delete_labels=True)
    assert sorted(out["shard_runs_deleted"]) == sorted(children) and out["labels_deleted"] == n_labels
    assert ds.count("auto.detections") == 0
    assert [r["run_key"] for r in list_runs(ds)] == []
    assert not [op for op in svc.list_operations(operator=SHARD_OPERATOR) if str(op.id) in queued.extra["operations"]]
    ds.delete()


def test_delete_keeps_a_live_shards_record_and_cleanup_survives_shards_deleted_with_their_parent(photos, models_env):
    import socket

    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    from autoannotate.fiftyone.admin import cleanup_runs, delete_run
    from autoannotate.fiftyone.runs import DatasetRuns, expand_run_key

    ds = photos.limit(4).clone("aa-shards-cleanup")
    svc = DelegatedOperationService()

    def finished_run(field):
        queued = annotate_dataset(ds, "yolox", label_field=field, shards=2)
        for op_id in queued.extra["operations"]:
            svc.execute_operation(svc.get(ObjectId(op_id)))
        wait_for_run(ds, queued.extra["run_key"], timeout=60)
        return queued.extra["run_key"]

    key = finished_run("auto")
    children = expand_run_key(ds, key)
    runs = DatasetRuns(ds)
    live = {"status": "running", "owner": {"host": socket.gethostname(), "pid": os.getppid()}}
    runs.coll.update_one({"_id": runs._id(children[0])}, {"$set": live})  # its worker still writes
    out = delete_run(ds, key)
    assert out["shard_runs_running"] == [children[0]] and out["shard_runs_deleted"] == children[1:]
    assert [r["run_key"] for r in list_runs(ds)] == [children[0]]
    runs.coll.update_one({"_id": runs._id(children[0])}, {"$set": {"status": "completed"}})
    # a finished sharded run whose field is gone: cleanup deletes the parent, which deletes its
    # shard runs, then meets those shard runs in its list
    finished_run("auto2")
    ds.delete_sample_fields(["auto", "auto2"])
    out = cleanup_runs(ds)
    assert children[0] in out["runs_deleted"] and list_runs(ds) == []
    ds.delete()


def test_shard_runs_its_samples_in_batches_with_the_same_labels(photos, reference, models_env, monkeypatch):
    """A shard never selects more than SHARD_BATCH ids at once: one run per batch, each
    resumable; the labels equal a single run's."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    from autoannotate.fiftyone import shard_worker
    from autoannotate.fiftyone.runs import expand_run_key

    ds = photos.limit(5).clone("aa-shards-batches")
    monkeypatch.setattr(shard_worker, "SHARD_BATCH", 2)
    selected = []
    select = fo.core.view.DatasetView.select

    def spy(self, ids, *args, **kwargs):
        selected.append(len(ids))
        return select(self, ids, *args, **kwargs)

    monkeypatch.setattr(fo.core.view.DatasetView, "select", spy)
    queued = annotate_dataset(ds, "yolox", label_field="auto", review=REVIEW, shards=1)
    key = queued.extra["run_key"]
    svc = DelegatedOperationService()
    svc.execute_operation(svc.get(ObjectId(queued.extra["operations"][0])))
    record = wait_for_run(ds, key, timeout=60)
    assert selected == [2, 2, 1]
    ds.reload()
    state = _state(ds)
    assert state == {name: reference[name] for name in state}
    keys = record["report"]["extra"]["shard_runs"]["0"]
    assert len(keys) == 3 and expand_run_key(ds, key) == keys
    assert set(ds.values("auto.autoannotate_run")) == set(keys)
    assert record["report"]["images_processed"] == 5
    again = run_shard(ds, key, 0)  # every batch again: nothing left to do
    assert again.images_processed == 0 and again.images_skipped == 5
    ds.delete()


def test_four_shards_on_three_workers_equal_a_single_run(photos, reference, workers):
    ds = photos.clone("aa-shards-four")
    before = gt_snapshot(ds)
    queued = annotate_dataset(ds, "yolox", label_field="auto", review=REVIEW, shards=4, write_every=4)
    key = queued.extra["run_key"]
    assert queued.extra["status"] == "queued" and len(queued.extra["operations"]) == 4
    assert queued.images_processed == 0  # nothing labelled by the caller
    record = wait_for_run(ds, key, timeout=300)
    ds.reload()
    assert _state(ds) == reference  # label for label
    assert gt_snapshot(ds) == before
    # every sample labelled exactly once, by the shard its id hashes to
    shard_runs = record["report"]["extra"]["shard_runs"]
    busy = sorted({shard_of(s.id, 4) for s in ds})  # sample ids differ per session: a shard may be empty
    assert all(len(shard_runs[str(i)]) == 1 for i in busy)  # 24 samples: one batch per shard
    assert len({k for keys in shard_runs.values() for k in keys}) == len(busy)
    for s in ds:
        assert [s.auto.autoannotate_run] == shard_runs[str(shard_of(s.id, 4))]
        assert {d.autoannotate_run for d in s.auto.detections} <= {s.auto.autoannotate_run}
    report = record["report"]
    assert report["images_processed"] == N_IMAGES and report["images_attempted"] == N_IMAGES
    assert report["annotations_added"] == sum(len(v) for v in reference.values())
    # the parent record lists its shards; each shard has its own record naming the parent
    (parent,) = [r for r in list_runs(ds) if r["run_key"] == key]
    assert parent["status"] == "completed" and parent["progress"].startswith("4/4 shards done")
    assert [s["state"] for s in parent["shard_states"]] == ["completed"] * 4
    children = [r for r in list_runs(ds) if r.get("parent_run") == key]
    assert sorted(r["shard"] for r in children) == busy
    assert all(r["status"] == "completed" for r in children)
    # the App's list shows the same
    out = fo.operators.execute_operator(
        "@autoannotate/autoannotate/list_autoannotate_runs", ctx={"dataset": ds.name, "params": {}}
    ).result
    (row,) = [r for r in out["rows"] if r["run_key"] == key]
    assert row["status"] == "completed"
    # a shard run again has nothing left to do
    again = run_shard(ds, key, 0)
    assert again.images_processed == 0
    ds.delete()


def test_killed_worker_requeued_shard_resumes_and_equals_a_single_run(photos, reference, workers, models_dir):
    ds = photos.clone("aa-shards-killed")
    before = gt_snapshot(ds)
    queued = annotate_dataset(
        ds,
        SLOW_YOLOX,
        function_params={"delay": 0.6},
        label_field="auto",
        review=REVIEW,
        shards=4,
        batch_size=1,  # one image per call: labels arrive one by one, the kill lands mid-shard
        write_every=1,
        write_interval=0.1,
    )
    key = queued.extra["run_key"]
    coll = fo.core.odm.get_db_conn()["autoannotate_runs"]
    parent_id = f"{ds._doc.id}:{key}"
    by_shard = {i: {sid for (sid,) in select_shard([(s,) for s in ds.values("id")], i, 4)} for i in range(4)}
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        progress = (coll.find_one({"_id": parent_id}) or {}).get("shard_progress") or {}
        ds.reload()
        labelled = set(ds.exists("auto").values("id")) if ds.has_field("auto") else set()
        for index, entry in progress.items():
            mine = by_shard[int(index)]
            if entry["state"] != "completed" and 1 <= len(labelled & mine) <= len(mine) - 2:
                victim = (int(index), entry["owner"]["pid"], len(labelled & mine))
                break
        time.sleep(0.05)
    assert victim is not None, "no shard was caught mid-way: make the function slower"
    shard, pid, done_before = victim
    assert pid in {p.pid for p in workers}  # the worker runs the operation in its own process
    os.kill(pid, signal.SIGKILL)
    killed = next(p for p in workers if p.pid == pid)
    killed.wait(timeout=30)
    states = {s["shard"]: s["state"] for s in shard_states(ds, key)}
    assert states[shard] == "dead"
    # the other shards finish; the dead one stays "running" in FiftyOne until re-queued
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = {s["shard"]: s["state"] for s in shard_states(ds, key)}
        if all(v == "completed" for i, v in states.items() if i != shard):
            break
        time.sleep(0.5)
    assert get_run(ds, key)["status"] == "running"
    cli = subprocess.run(
        [sys.executable, "-m", "autoannotate.cli", "fiftyone", "requeue", key],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "shared")])),
    )
    assert cli.returncode == 0, cli.stderr
    assert f"re-queued shards: [{shard}]" in cli.stdout
    record = wait_for_run(ds, key, timeout=300)
    ds.reload()
    assert _state(ds) == reference
    assert gt_snapshot(ds) == before
    # the requeued shard resumed its own run: one run key on all its samples, the rest skipped
    (shard_key,) = record["report"]["extra"]["shard_runs"][str(shard)]
    assert set(ds.select(list(by_shard[shard])).values("auto.autoannotate_run")) == {shard_key}
    (child,) = [r for r in list_runs(ds) if r["run_key"] == shard_key]
    assert child["resumed"] is True and child["status"] == "completed", child
    # its report counts its whole run (before and after the kill), and so does the parent's
    mine = ds.select(list(by_shard[shard]))
    assert child["report"]["extra"]["earlier_processes"]["images_processed"] >= done_before
    assert child["report"]["images_processed"] == len(by_shard[shard]) and child["report"]["images_skipped"] == 0
    assert child["report"]["annotations_added"] == mine.count("auto.detections")
    assert record["report"]["annotations_added"] == ds.count("auto.detections")
    assert record["report"]["images_processed"] == len(ds)
    ds.delete()


def test_fiftyone_commands_name_a_missing_dataset_in_one_line(capsys):
    from autoannotate.cli import main

    for args in (
        ["fiftyone", "requeue", "sharded_x", "--dataset", "no-such-dataset"],
        ["fiftyone", "review-summary", "no-such-dataset", "auto"],
        ["fiftyone", "calibrate-review", "no-such-dataset", "auto"],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: no FiftyOne dataset 'no-such-dataset'") and "Traceback" not in err
