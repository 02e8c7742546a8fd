"""Resume after the process is killed mid-run, and YOLOX-Nano's accuracy through FiftyOne."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoannotate.fiftyone import annotate_dataset, list_runs
from tests.fiftyone.conftest import gt_snapshot

fo = pytest.importorskip("fiftyone")

SLOW = str(Path(__file__).with_name("slow_yolox.py"))
REVIEW = (0.3, 0.7)

CHILD = """
import sys
from autoannotate.fiftyone import annotate_dataset
import fiftyone as fo
ds = fo.load_dataset(sys.argv[1])
annotate_dataset(ds, sys.argv[2], function_params={"delay": 0.15}, label_field="auto", review=(0.3, 0.7),
                 write_every=4, write_interval=0.5, progress=False)
"""


def state(ds):
    """Every auto label per sample, comparable across datasets."""
    out = {}
    for s in ds:
        dets = s.auto.detections if s.auto is not None else None
        out[Path(s.filepath).name] = (
            None
            if dets is None
            else sorted(
                (d.label, tuple(round(v, 5) for v in d.bounding_box), round(d.confidence, 5), d.review) for d in dets
            )
        )
    return out


def wait_for_labels(ds, count, proc, field="auto", limit=180):
    """Poll until ``count`` samples of ``ds`` have ``field`` (written by ``proc``) or it exits."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ds.reload()
        if (ds.get_field(field) is not None and ds.exists(field).count() >= count) or proc.poll() is not None:
            return
        time.sleep(0.2)


def _dataset(name, coco128, n):
    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True  # visible to the child process
    paths = sorted((coco128 / "images").glob("*.jpg"))[:n]
    ds.add_samples(
        [
            fo.Sample(
                filepath=str(p),
                ground_truth=fo.Detections(detections=[fo.Detection(label="human", bounding_box=[0.1, 0.1, 0.5, 0.5])]),
            )
            for p in paths
        ]
    )
    return ds


def test_resume_after_sigkill_equals_an_uninterrupted_run(coco128, models_env):
    n = 40
    killed = _dataset("aa-resume-killed", coco128, n)
    reference = _dataset("aa-resume-reference", coco128, n)
    human_before = gt_snapshot(killed)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, killed.name, SLOW], env=env)
    try:
        wait_for_labels(killed, 8, proc, limit=120)
        assert proc.poll() is None, "the child finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed.reload()
    partial = killed.exists("auto").count()
    assert 8 <= partial < n
    (interrupted_run,) = list_runs(killed)
    assert interrupted_run["status"] == "running"  # killed: never marked finished

    resumed = annotate_dataset(
        killed, SLOW, function_params={"delay": 0.15}, label_field="auto", review=REVIEW, progress=False
    )
    # the report counts the whole run (both processes): what the field holds
    assert resumed.images_skipped == 0 and resumed.images_processed == n
    assert resumed.extra["earlier_processes"]["images_processed"] == partial
    killed.reload()
    assert resumed.annotations_added == killed.count("auto.detections")
    runs = list_runs(killed)
    assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["resumed"]
    assert resumed.extra["run_key"] == interrupted_run["run_key"]

    annotate_dataset(reference, SLOW, label_field="auto", review=REVIEW, progress=False)
    assert state(killed) == state(reference)  # no duplicates, nothing lost
    assert gt_snapshot(killed) == human_before
    for ds in (killed, reference):
        ds.delete()


def test_yolox_nano_accuracy_through_fiftyone_evaluation(coco128_dataset, models_env):
    """A broken pre- or post-processing step shows up here: expect mAP@[.5:.95] about 0.33."""
    report = annotate_dataset(
        coco128_dataset,
        "yolox",
        label_field="yolox",
        conf_threshold=0.01,
        overwrite=True,
        eval_gt_field="ground_truth",
        progress=False,
    )
    ev = report.extra["evaluation"]
    print(f"FiftyOne evaluation of YOLOX-Nano on COCO128: {ev}")
    assert report.images_processed == 128 and report.success
    assert ev["mAP"] == pytest.approx(0.33, abs=0.04)
    assert 0.0 < ev["precision"] <= 1.0 and 0.0 < ev["recall"] <= 1.0
