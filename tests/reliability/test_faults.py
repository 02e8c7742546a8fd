"""Faults: runs killed (SIGKILL) at several points and restarted, the database failing a write,
the Label Studio server going away mid-run. Final labels must equal an uninterrupted run, with no
duplicates and no human label changed; failures must be clear and leave a resumable state."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

import autoannotate as aa
from autoannotate.fiftyone import annotate_dataset, list_runs
from autoannotate.label_studio import annotate_project
from tests.fiftyone.conftest import gt_snapshot
from tests.fiftyone.test_resume_and_accuracy import SLOW, _dataset, state, wait_for_labels

fo = pytest.importorskip("fiftyone")

REVIEW = (0.3, 0.7)
CHILD = """
import os, signal, sys
import fiftyone as fo
from autoannotate.fiftyone import annotate_dataset

name, function, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "write":
    # die half-way through the second batch write, after part of it reached the database
    original = fo.core.dataset.Dataset.set_values
    calls = [0]

    def dying_set_values(self, field, values, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2 and isinstance(values, dict):
            half = dict(list(values.items())[: len(values) // 2])
            original(self, field, half, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, field, values, *args, **kwargs)

    fo.core.dataset.Dataset.set_values = dying_set_values
annotate_dataset(fo.load_dataset(name), function, function_params={"delay": 0.1}, label_field="auto",
                 review=(0.3, 0.7), write_every=4, write_interval=60, progress=False)
"""


@pytest.mark.parametrize("mode", ["inference", "write"])
def test_fiftyone_run_killed_then_resumed_equals_uninterrupted(coco128, models_env, mode):
    n = 24
    killed = _dataset(f"aa-fault-{mode}", coco128, n)
    reference = _dataset(f"aa-fault-{mode}-ref", coco128, n)
    human = gt_snapshot(killed)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, killed.name, SLOW, mode], env=dict(os.environ))
    try:
        if mode == "inference":
            wait_for_labels(killed, 4, proc)
            assert proc.poll() is None, "finished before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed.reload()
    partial = killed.exists("auto").count()
    assert 0 < partial < n
    resumed = annotate_dataset(
        killed, SLOW, function_params={"delay": 0.1}, label_field="auto", review=REVIEW, progress=False
    )
    # the resumed run's report counts the whole run (both processes): what the field holds
    assert resumed.images_skipped == 0 and resumed.images_processed == n and resumed.success
    assert resumed.extra["earlier_processes"]["images_processed"] == partial
    killed.reload()
    assert resumed.annotations_added == killed.count("auto.detections")
    annotate_dataset(reference, SLOW, function_params={"delay": 0.1}, label_field="auto", review=REVIEW, progress=False)
    assert state(killed) == state(reference)
    assert gt_snapshot(killed) == human
    assert [r["status"] for r in list_runs(killed)] == ["completed"]
    killed.delete()
    reference.delete()


def test_database_write_failure_is_clear_and_resumable(coco128, models_env, monkeypatch):
    import pymongo.errors

    ds = _dataset("aa-fault-db", coco128, 12)
    reference = _dataset("aa-fault-db-ref", coco128, 12)
    original = fo.core.dataset.Dataset.set_values
    calls = [0]

    def failing(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise pymongo.errors.ServerSelectionTimeoutError("localhost:27017: connection refused")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fo.core.dataset.Dataset, "set_values", failing)
    with pytest.raises(
        aa.AutoAnnotateError,
        match=r"writing \d+ results to field 'auto' failed.*running the same call or command again continues",
    ):
        annotate_dataset(ds, "yolox", label_field="auto", review=REVIEW, write_every=4, progress=False)
    monkeypatch.setattr(fo.core.dataset.Dataset, "set_values", original)
    (run,) = list_runs(ds)
    assert run["status"] == "failed"
    again = annotate_dataset(ds, "yolox", label_field="auto", review=REVIEW, progress=False)
    # the first batch was written; the failed batch was retried once on the way out (and, the
    # database being back, saved): at least 4 and at most 8 samples were done
    done = again.extra["earlier_processes"]["images_processed"]
    assert 4 <= done <= 8 and again.extra["run_key"] == run["run_key"]
    assert again.images_processed == 12 and again.images_skipped == 0  # the whole run, both calls
    ds.reload()
    assert again.annotations_added == ds.count("auto.detections")
    annotate_dataset(reference, "yolox", label_field="auto", review=REVIEW, progress=False)
    assert state(ds) == state(reference)
    ds.delete()
    reference.delete()


# --- Label Studio ---------------------------------------------------------------------------

LS_CHILD = """
import sys
from autoannotate.loading import load_function
from autoannotate.label_studio import annotate_project
url, key, project, function = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
annotate_project(url, key, project, load_function(function, delay=2.0), write_every=1, batch_size=1,
                 num_workers=0, progress=False)
"""


def _ls_project(label_studio, title):
    from tests.label_studio.test_real_server import make_project

    return make_project(label_studio, title)


def _prediction_counts(client, tasks):
    return {name: len(list(client.predictions.list(task=t.id))) for name, t in tasks.items()}


def test_label_studio_annotate_killed_then_rerun(label_studio, models_env):
    client, project, tasks = _ls_project(label_studio, "fault: killed annotate")
    human = tasks["chelsea"]
    client.annotations.create(
        id=human.id,
        result=[
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["cat"]},
            }
        ],
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", LS_CHILD, label_studio.url, label_studio.token, str(project.id), SLOW],
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 120
        with label_studio.http() as http:
            while time.monotonic() < deadline:
                assert proc.poll() is None, "the run finished before it could be killed"
                if http.get("/api/predictions", params={"project": project.id}).json():
                    break
                time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = sum(_prediction_counts(client, tasks).values())
    assert 1 <= partial < 2
    fn = aa.load_function(SLOW, delay=0.0)
    report = annotate_project(label_studio.url, label_studio.token, project.id, fn, progress=False)
    assert report.images_skipped == 1 + partial and report.images_processed == 2 - partial
    assert _prediction_counts(client, tasks) == {"astronaut": 1, "coffee": 1, "chelsea": 0}
    (annotation,) = list(client.annotations.list(id=human.id))
    assert annotation.result[0]["value"]["rectanglelabels"] == ["cat"]


class _Proxy:
    """A forwarding HTTP proxy to Label Studio that can be switched off mid-run."""

    def __init__(self, target: str):
        outer = self
        self.up = True

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                if not outer.up:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")
                }
                r = httpx.request(self.command, target + self.path, headers=headers, content=body, timeout=60)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _forward  # noqa: N815

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_label_studio_going_away_mid_run_is_clear_and_resumable(label_studio, models_env):
    client, project, tasks = _ls_project(label_studio, "fault: server goes away")
    proxy = _Proxy(label_studio.url)
    fn = aa.load_function(SLOW, delay=0.0)
    seen = [0]
    detect = fn.detect

    def detect_then_drop(ctx, image):
        seen[0] += 1
        if seen[0] == 2:
            proxy.up = False  # the server "goes away" once the first task is uploaded
        return detect(ctx, image)

    fn.detect = detect_then_drop
    try:
        with pytest.raises(aa.AutoAnnotateError, match="same call or command again continues|cannot"):
            annotate_project(
                proxy.url,
                label_studio.token,
                project.id,
                fn,
                write_every=1,
                num_workers=0,
                batch_size=1,
                progress=False,
            )
    finally:
        proxy.close()
    done = sum(_prediction_counts(client, tasks).values())
    assert done <= 1
    fn.detect = detect
    report = annotate_project(label_studio.url, label_studio.token, project.id, fn, progress=False)
    assert report.success and report.images_skipped == done
    assert _prediction_counts(client, tasks) == {"astronaut": 1, "coffee": 1, "chelsea": 1}
