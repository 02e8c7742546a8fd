"""The FiftyOne App, rendered by headless Chromium, shows an auto-labelled dataset."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from autoannotate.fiftyone import annotate_dataset
from tests.browser import chromium, dump_dom, screenshot
from tests.conftest import ARTIFACTS
from tests.procs import kill_tree, wait_for_line

fo = pytest.importorskip("fiftyone")

SERVER = """
import sys, time
import fiftyone as fo
session = fo.launch_app(fo.load_dataset(sys.argv[1]), remote=True, address="127.0.0.1", port=int(sys.argv[2]))
print("ready", flush=True)
sys.stdin.read()  # serve until the test closes our stdin
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(coco128, models_env):
    chromium()
    name = "aa-app-test"
    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted((coco128 / "images").glob("*.jpg"))[:12]])
    report = annotate_dataset(ds, "yolox", label_field="auto_labels", review=(0.3, 0.7), progress=False)
    try:
        with serve_app(name) as url:
            yield url, ds, report
    finally:
        ds.delete()


@contextlib.contextmanager
def serve_app(name, env=None):
    """The FiftyOne App on dataset ``name`` in its own process, on a free port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, name, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        wait_for_line(proc, "ready")
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        kill_tree(proc)


def test_app_shows_the_dataset_and_the_auto_label_field(app):
    url, ds, report = app
    page = f"{url}/datasets/{ds.name}"
    dom = dump_dom(page)
    assert ds.name in dom, "the dataset name is not rendered"
    assert "auto_labels" in dom, "the label field is not in the sidebar"
    shot = screenshot(page, ARTIFACTS / "fiftyone-app-auto-labels.png")
    assert report.annotations_added > 0 and shot.stat().st_size > 50_000
