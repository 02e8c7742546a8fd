"""Run records in FiftyOne's real database: two processes started in the same second keep two
records and their own keys; a re-run with nothing to do records nothing; a killed video run
resumes and ends equal to an uninterrupted one; a dead run is resumed by one process only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoannotate.fiftyone import annotate_dataset, list_runs
from autoannotate.fiftyone.runs import DatasetRuns
from tests.procs import kill_tree
from tests.tracking.synthetic import make_frames, write_video

fo = pytest.importorskip("fiftyone")

SLOW = str(Path(__file__).with_name("slow_fake.py"))
STILL = str(Path(__file__).with_name("still_tracker.py"))

CONCURRENT_CHILD = """
import sys, time
import fiftyone as fo
from autoannotate.fiftyone import annotate_dataset
name, part, start_at, fn = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ds = fo.load_dataset(name)
ids = sorted(ds.values("id"))
view = ds.select(ids[:len(ids) // 2] if part == 0 else ids[len(ids) // 2:])
time.sleep(max(0.0, start_at - time.time()))
r = annotate_dataset(view, fn, function_params={"delay": 0.05}, label_field="auto", review=(0.3, 0.7),
                     write_every=2, progress=False)
print("RUN_KEY", r.extra["run_key"], flush=True)
"""


def _image_dataset(name, tmp_path, n):
    import numpy as np
    import PIL.Image

    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True  # visible to the child processes
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        p = tmp_path / f"{name}-{i}.png"
        PIL.Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    return ds


def test_two_processes_started_in_the_same_second_keep_two_records(tmp_path):
    ds = _image_dataset("aa-concurrent-runs", tmp_path, 12)
    start_at = time.time() + 12  # both import FiftyOne first, then start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_CHILD, ds.name, str(part), str(start_at), SLOW],
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in (0, 1)
    ]
    try:
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            kill_tree(p)
    assert [p.returncode for p in procs] == [0, 0], outs
    keys = [line.split()[1] for out in outs for line in out.splitlines() if line.startswith("RUN_KEY")]
    assert len(keys) == 2 and keys[0] != keys[1]
    runs = {r["run_key"]: r for r in list_runs(ds)}
    assert set(runs) == set(keys)
    assert all(r["status"] == "completed" and r["report"]["images_processed"] == 6 for r in runs.values())
    ids = sorted(ds.values("id"))
    halves = {keys[0]: set(ids[:6]), keys[1]: set(ids[6:])}
    ds.reload()
    for sample in ds:
        (det,) = sample.auto.detections
        owner = next(k for k, half in halves.items() if sample.id in half)
        assert det.autoannotate_run == owner and sample.auto.autoannotate_run == owner
    ds.delete()


def test_a_rerun_with_nothing_to_do_adds_no_record(small_dataset):
    from tests.fakes import FakeDetector

    first = annotate_dataset(small_dataset, FakeDetector(), label_field="auto", progress=False)
    again = annotate_dataset(small_dataset, FakeDetector(), label_field="auto", progress=False)
    assert again.images_skipped == 6 and again.images_processed == 0 and again.extra["run_key"] is None
    assert [r["run_key"] for r in list_runs(small_dataset)] == [first.extra["run_key"]]


def test_a_dead_run_is_claimed_by_one_process_only(small_dataset):
    store = DatasetRuns(small_dataset)
    record = {"run_key": "autolabel_dead", "config_hash": "h", "status": "running", "started_at": "2026-01-01"}
    assert store.create(record)
    assert not store.create(record)  # the key is taken
    dead = dict(store.find_resumable("h") or {})
    assert dead == {}  # this process owns it and is running it: not resumable
    store.coll.update_one(
        {"_id": store._id("autolabel_dead")},
        {"$set": {"owner": {"host": "elsewhere", "pid": 1}, "heartbeat_at": "2026-01-01T00:00:00+00:00"}},
    )
    found = store.find_resumable("h")
    assert found is not None and found["run_key"] == "autolabel_dead"
    assert store.claim(found) and not store.claim(found)  # the second claim sees a new claim token
    # a run that failed in this very process (same owner, same second) is claimed again
    mine = store.coll.find_one({"_id": store._id("autolabel_dead")})
    store.update(dict(found, status="failed"))
    again = store.find_resumable("h")
    assert again is not None and again["claim"] == mine["claim"] and store.claim(again)


VIDEO_CHILD = """
import sys
import fiftyone as fo
from autoannotate.fiftyone import annotate_dataset
ds = fo.load_dataset(sys.argv[1])
annotate_dataset(ds, sys.argv[2], function_params={"delay": 0.3}, tracker=sys.argv[3], label_field="auto",
                 review=(0.3, 0.95), key_frame_interval=4, write_every=1, write_interval=0.1, progress=False)
"""


def _video_dataset(name, videos):
    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=str(v)) for v in videos])
    return ds


def _frame_state(ds):
    out = {}
    for s in ds.sort_by("filepath"):
        frames = {}
        for n, f in s.frames.items():
            if f["auto"] is not None:
                frames[n] = sorted(
                    (d.label, d.index, tuple(round(v, 4) for v in d.bounding_box), d.review)
                    for d in f["auto"].detections
                )
        out[Path(s.filepath).name] = frames
    return out


def test_video_run_killed_then_resumed_equals_an_uninterrupted_run(tmp_path):
    videos = []
    for i in range(6):
        frames, _ = make_frames(12 + i)
        videos.append(write_video(frames, tmp_path / f"clip{i}.mp4"))
    killed = _video_dataset("aa-video-killed", videos)
    reference = _video_dataset("aa-video-reference", videos)
    proc = subprocess.Popen([sys.executable, "-c", VIDEO_CHILD, killed.name, SLOW, STILL])
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            killed.reload()
            labelled = fo.ViewField("auto") != None  # noqa: E711 - a database query, not a comparison
            if (
                killed.get_frame_field_schema().get("auto") is not None
                and len(killed.match_frames(labelled).values("id")) >= 2
            ):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed: make the function slower"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_tree(proc)
    killed.reload()
    done_before = len(killed.match_frames(fo.ViewField("auto") != None).values("id"))  # noqa: E711
    assert 2 <= done_before < 6
    (dead,) = list_runs(killed)
    assert dead["status"] == "running"
    resumed = annotate_dataset(
        killed,
        SLOW,
        tracker=STILL,
        label_field="auto",
        review=(0.3, 0.95),
        key_frame_interval=4,
        write_every=1,
        write_interval=0.1,
        progress=False,
        function_params={"delay": 0.3},
    )
    assert resumed.extra["run_key"] == dead["run_key"]
    # the report counts the whole run (both processes): what the frame field holds
    assert resumed.images_skipped == 0 and resumed.images_processed == 6
    assert resumed.extra["earlier_processes"]["images_processed"] == done_before
    killed.reload()
    assert resumed.annotations_added == killed.count("frames.auto.detections")
    (record,) = list_runs(killed)
    assert record["status"] == "completed" and record["resumed"] is True
    full = annotate_dataset(
        reference,
        SLOW,
        tracker=STILL,
        label_field="auto",
        review=(0.3, 0.95),
        key_frame_interval=4,
        progress=False,
        function_params={"delay": 0.0},
    )
    assert full.images_processed == 6
    killed.reload()
    reference.reload()
    assert _frame_state(killed) == _frame_state(reference)
    killed.delete()
    reference.delete()


def test_a_resumed_run_reports_what_its_field_holds_even_when_its_last_count_was_lost(small_dataset):
    import autoannotate as aa
    from tests.fakes import FakeDetector

    calls = []

    def three(ctx, img):  # routed (0.3, 0.8): one discarded, one for review, one approved per photo
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the process stops after 3 photos
        return [aa.rectangle(0, [2 * i, 2, 2 * i + 9, 9], score=s) for i, s in enumerate((0.1, 0.5, 0.9))]

    kw = dict(label_field="auto", review=(0.3, 0.8), batch_size=1, write_every=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        annotate_dataset(small_dataset, FakeDetector(three), **kw)
    (rec,) = list_runs(small_dataset)
    assert rec["status"] == "interrupted" and small_dataset.exists("auto").count() == 3
    # as after a kill right after a write: the record's counts never learnt of it
    coll = fo.core.odm.get_db_conn()["autoannotate_runs"]
    coll.update_one({"_id": f"{small_dataset._doc.id}:{rec['run_key']}"}, {"$unset": {"report": ""}})
    resumed = annotate_dataset(small_dataset, FakeDetector(three), **kw)
    small_dataset.reload()
    reviews = small_dataset.values("auto.detections.review", unwind=True)
    assert resumed.extra["run_key"] == rec["run_key"] and len(reviews) == 12
    assert (resumed.annotations_added, resumed.auto_approved, resumed.needs_review) == (12, 6, 6)
    assert (resumed.images_processed, resumed.images_skipped, resumed.images_attempted) == (6, 0, 6)
    assert resumed.extra["earlier_processes"] == {"images_processed": 3, "annotations_added": 6}
    assert list_runs(small_dataset)[0]["report"]["annotations_added"] == 12


def test_a_run_recorded_with_a_parameter_as_text_is_not_resumed_and_loses_no_labels(small_dataset):
    """Records made before parameters were typed hold ``-p delay=0`` as '0'; the same settings now
    record 0.0, so that interrupted run is not resumed: a new run labels only the photos it left."""
    from autoannotate.fiftyone.plan import plan_run
    from autoannotate.loading import Untyped
    from autoannotate.run import config_hash

    kw = dict(function_params={"delay": Untyped("0")}, label_field="auto", progress=False)
    first = annotate_dataset(small_dataset, SLOW, max_samples=3, **kw)
    (rec,) = list_runs(small_dataset)
    assert rec["function_params"] == {"delay": 0.0} and type(rec["function_params"]["delay"]) is float
    legacy = dict(plan_run(small_dataset, SLOW, **kw).config, function_params={"delay": "0"})
    assert config_hash(legacy) != rec["config_hash"]
    coll = fo.core.odm.get_db_conn()["autoannotate_runs"]
    coll.update_one(
        {"_id": f"{small_dataset._doc.id}:{first.extra['run_key']}"},
        {"$set": {"status": "interrupted", "function_params": {"delay": "0"}, "config_hash": config_hash(legacy)}},
    )
    again = annotate_dataset(small_dataset, SLOW, **kw)
    assert again.extra["run_key"] != first.extra["run_key"]
    assert (again.images_processed, again.images_skipped) == (3, 3)
    keys = small_dataset.values("auto.detections.autoannotate_run", unwind=True)
    assert sorted(keys) == sorted([first.extra["run_key"]] * 3 + [again.extra["run_key"]] * 3)
    assert [r["status"] for r in list_runs(small_dataset)] == ["interrupted", "completed"]
