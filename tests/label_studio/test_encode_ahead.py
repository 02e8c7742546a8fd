"""Encode-ahead: opening a task (Label Studio asks for its pre-annotation) encodes its image for
click-to-mask in the background, so the first click costs only the decoder."""

from __future__ import annotations

import io
import threading

import PIL.Image
import pytest

from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher
from autoannotate.label_studio.app import Settings, create_app
from tests.fakes import FakeDetector
from tests.label_studio.test_protocol import CONFIG, CountingGrabCut, boxes, task

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

CLICK = {"result": [{"type": "keypointlabels", "value": {"x": 50, "y": 50, "keypointlabels": ["Cat"]}}]}


def make(**kw):
    interactive = CountingGrabCut()
    backend = Backend(function=FakeDetector(boxes), interactive=interactive, fetcher=ImageFetcher(FetchPolicy()), **kw)
    return backend, interactive, TestClient(create_app(Settings(), backend=backend))


def test_opening_a_task_encodes_it_so_the_click_does_not():
    backend, interactive, client = make()
    t = task(7)
    r = client.post("/predict", json={"tasks": [t], "label_config": CONFIG})
    assert r.status_code == 200 and r.json()["results"][0]["result"]
    assert backend.wait_encode_ahead(30)
    assert interactive.encodes == 1 and len(backend.cache) == 1
    click = client.post("/predict", json={"tasks": [t], "label_config": CONFIG, "params": {"context": CLICK}})
    assert click.status_code == 200 and click.json()["results"][0]["result"]
    assert interactive.encodes == 1  # the click used the encoding made ahead
    assert backend.cache.stats.hits >= 1


def test_the_pre_annotation_does_not_wait_for_the_encoding():
    backend, interactive, client = make()
    interactive.delay = 3.0  # a slow encoder
    finished = threading.Event()
    original = interactive.encode

    def encode(ctx, image):
        out = original(ctx, image)
        finished.set()
        return out

    interactive.encode = encode
    r = client.post("/predict", json={"tasks": [task(1)], "label_config": CONFIG})
    assert r.status_code == 200 and r.json()["results"][0]["result"]
    assert not finished.is_set()  # answered while the encoding was still running
    assert backend.wait_encode_ahead(30) and finished.is_set() and interactive.encodes == 1


def test_bulk_predictions_and_the_switch_encode_nothing():
    backend, interactive, client = make()
    client.post("/predict", json={"tasks": [task(1), task(2)], "label_config": CONFIG})  # "Retrieve predictions"
    assert backend.wait_encode_ahead(30) and interactive.encodes == 0
    off, interactive_off, client_off = make(encode_ahead=False)
    client_off.post("/predict", json={"tasks": [task(3)], "label_config": CONFIG})
    assert off.wait_encode_ahead(30) and interactive_off.encodes == 0


def test_look_ahead_encodes_the_next_tasks_of_the_project(label_studio):
    client = label_studio.http()
    project = client.post("/api/projects", json={"title": "look-ahead", "label_config": CONFIG}).json()
    files = []
    for i in range(4):
        buf = io.BytesIO()
        PIL.Image.new("RGB", (48, 32), (40 * i, 90, 200)).save(buf, "PNG")
        files.append((f"file{i}", (f"img{i}.png", buf.getvalue(), "image/png")))
    assert client.post(f"/api/projects/{project['id']}/import", files=files).status_code == 201
    tasks = sorted(client.get("/api/tasks", params={"project": project["id"]}).json()["tasks"], key=lambda t: t["id"])
    interactive = CountingGrabCut()
    backend = Backend(
        function=FakeDetector(boxes),
        interactive=interactive,
        fetcher=ImageFetcher(FetchPolicy(), label_studio_url=label_studio.url, api_key=label_studio.token),
        look_ahead=2,
    )
    app = TestClient(create_app(Settings(), backend=backend))
    first = {"id": tasks[0]["id"], "data": tasks[0]["data"]}
    r = app.post("/predict", json={"tasks": [first], "label_config": CONFIG, "project": f"{project['id']}.123"})
    assert r.status_code == 200
    assert backend.wait_encode_ahead(60)
    assert interactive.encodes == 3  # the opened task and the next two, not the fourth
    refs = {key[0] for key in backend.cache._items}
    assert refs == {t["data"]["image"] for t in tasks[:3]}

    # A task that already has a prediction is opened without any request to the backend (Label
    # Studio asks only for tasks without one): the first click queues the next tasks instead.
    interactive = CountingGrabCut()
    backend = Backend(
        interactive=interactive,
        fetcher=ImageFetcher(FetchPolicy(), label_studio_url=label_studio.url, api_key=label_studio.token),
        look_ahead=1,
    )
    app = TestClient(create_app(Settings(), backend=backend))
    second = {"id": tasks[1]["id"], "data": tasks[1]["data"]}
    payload = {
        "tasks": [second],
        "label_config": CONFIG,
        "project": f"{project['id']}.123",
        "params": {"context": CLICK},
    }
    assert app.post("/predict", json=payload).status_code == 200
    assert app.post("/predict", json=payload).status_code == 200  # a second click queues nothing more
    assert backend.wait_encode_ahead(60)
    assert interactive.encodes == 2  # the clicked task, and the one after it
    assert {key[0] for key in backend.cache._items} == {t["data"]["image"] for t in tasks[1:3]}
    backend.close()
