"""The ML backend's HTTP protocol with tiny fake functions (fast, no Label Studio server)."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate.encodings import EncodingCache
from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher, parse_context
from autoannotate.label_studio.app import Settings, create_app
from tests.fakes import FakeDetector

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Cat" predicted_values="kitty"/>
    <Label value="dog"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="Cat"/></BrushLabels>
  <PolygonLabels name="poly" toName="image"><Label value="cat"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Cat"/></KeyPointLabels>
</View>"""


def data_uri(w=60, h=40, color=(200, 40, 40)) -> str:
    buf = io.BytesIO()
    arr = np.full((h, w, 3), (40, 160, 60), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    arr[(xx - w // 2) ** 2 + (yy - h // 2) ** 2 <= (min(w, h) // 4) ** 2] = color
    PIL.Image.fromarray(arr).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def boxes(ctx, img):
    w, h = img.size
    return [aa.rectangle(0, [0, 0, w / 2, h / 2], score=0.9), aa.rectangle(1, [w / 4, h / 4, w, h], score=0.5)]


class CountingGrabCut:
    """GrabCut that counts encodings (the expensive step) and can be slowed down."""

    model_version = "counting-grabcut"

    def __init__(self, delay=0.0):
        from autoannotate.functions import grabcut

        self.inner = grabcut.create()
        self.encodes = 0
        self.delay = delay
        self.lock = threading.Lock()

    def encode(self, ctx, image):
        with self.lock:
            self.encodes += 1
        time.sleep(self.delay)
        return self.inner.encode(ctx, image)

    def segment(self, ctx, enc, prompt):
        return self.inner.segment(ctx, enc, prompt)


@pytest.fixture
def backend():
    return Backend(function=FakeDetector(boxes), interactive=CountingGrabCut(), fetcher=ImageFetcher(FetchPolicy()))


@pytest.fixture
def client(backend):
    return TestClient(create_app(Settings(), backend=backend), raise_server_exceptions=False)


def task(i, uri=None):
    return {"id": i, "data": {"image": uri or data_uri()}}


def test_health_and_setup(client):
    h = client.get("/health").json()
    assert h["status"] == "UP" and h["model_version"] == "FakeDetector" and h["interactive"] == "counting-grabcut"
    r = client.post("/setup", json={"project": "1.123", "schema": CONFIG, "hostname": "http://localhost:8080"})
    assert r.status_code == 200
    assert r.json()["controls"] == {"detection": ["box"], "interactive": ["brush", "poly"], "video": []}
    assert client.get("/versions").json() == {"versions": ["FakeDetector"]}


def test_setup_with_nothing_mapping_names_both_sides(client):
    cfg = '<View><Image name="i" value="$image"/><RectangleLabels name="r" toName="i"><Label value="Horse"/></RectangleLabels></View>'
    backend = Backend(function=FakeDetector(boxes))
    c = TestClient(create_app(Settings(), backend=backend))
    r = c.post("/setup", json={"schema": cfg})
    assert r.status_code == 422
    body = r.json()
    assert "['cat', 'dog']" in body["error"] and "['Horse']" in body["error"] and body["error_id"]


def test_predict_batch_returns_regions_in_percent_with_scores_and_stable_ids(client):
    payload = {"tasks": [task(1), task(2, data_uri(80, 20))], "label_config": CONFIG, "project": "1.1"}
    r = client.post("/predict", json=payload)
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 2
    first = results[0]
    assert first["model_version"] == "FakeDetector"
    assert first["score"] == pytest.approx(0.7)
    cat, dog = first["result"]
    assert cat["from_name"] == "box" and cat["to_name"] == "image" and cat["type"] == "rectanglelabels"
    assert cat["value"]["rectanglelabels"] == ["Cat"] and dog["value"]["rectanglelabels"] == ["dog"]
    assert cat["value"]["x"] == 0 and cat["value"]["width"] == pytest.approx(50.0)
    assert (cat["original_width"], cat["original_height"]) == (60, 40) and cat["score"] == 0.9
    second = results[1]["result"][1]
    assert second["value"]["x"] == pytest.approx(25.0) and second["value"]["height"] == pytest.approx(75.0)
    ids = [reg["id"] for res in results for reg in res["result"]]
    assert len(ids) == len(set(ids))
    again = client.post("/predict", json=payload).json()["results"]
    assert [reg["id"] for res in again for reg in res["result"]] == ids


def test_one_pass_for_many_tasks(client, backend):
    tasks = [task(i) for i in range(5)]
    client.post("/predict", json={"tasks": tasks, "label_config": CONFIG})
    assert len(backend.function.calls) == 5


def test_a_bad_task_does_not_spoil_the_batch(client):
    tasks = [task(1), {"id": 2, "data": {"image": "data:image/png;base64,AAAA"}}, {"id": 3, "data": {}}, task(4)]
    results = client.post("/predict", json={"tasks": tasks, "label_config": CONFIG}).json()["results"]
    assert len(results) == 4
    assert "result" in results[0] and "result" in results[3]
    for bad in results[1:3]:
        assert "result" not in bad and bad["error"] and bad["error_id"]
    assert "no image under data.image" in results[2]["error"]


def test_predictions_honour_the_threshold(backend):
    backend.conf_threshold = 0.6
    c = TestClient(create_app(Settings(), backend=backend))
    res = c.post("/predict", json={"tasks": [task(1)], "label_config": CONFIG}).json()["results"][0]
    assert [r["value"]["rectanglelabels"] for r in res["result"]] == [["Cat"]]


def click(x, y, positive=True, label="Cat"):
    return {
        "type": "keypointlabels",
        "is_positive": positive,
        "original_width": 60,
        "original_height": 40,
        "value": {"x": x, "y": y, "keypointlabels": [label]},
        "from_name": "kp",
        "to_name": "image",
    }


def rect(x, y, w, h, label="Cat"):
    return {
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
        "from_name": "box",
        "to_name": "image",
    }


def test_interactive_click_gives_brush_and_polygon(client, backend):
    payload = {"tasks": [task(7)], "label_config": CONFIG, "params": {"context": {"result": [click(50, 50)]}}}
    r = client.post("/predict", json=payload)
    assert r.status_code == 200
    (res,) = r.json()["results"]
    kinds = {reg["type"] for reg in res["result"]}
    assert kinds == {"brushlabels", "polygonlabels"}
    brush = next(reg for reg in res["result"] if reg["type"] == "brushlabels")
    assert brush["value"]["format"] == "rle" and brush["value"]["brushlabels"] == ["Cat"]
    from label_studio_sdk.converter.brush import decode_rle

    decoded = decode_rle(brush["value"]["rle"]).reshape(40, 60, 4)[:, :, 3] > 0
    assert decoded[20, 30] and not decoded[2, 2]  # the disk in the middle, not the corner
    poly = next(reg for reg in res["result"] if reg["type"] == "polygonlabels")
    assert poly["value"]["polygonlabels"] == ["cat"]  # matched case-insensitively in that control


def test_all_prompts_are_used_clicks_and_boxes_together(backend):
    seen = []
    inner = backend.interactive.segment
    backend.interactive.segment = lambda ctx, enc, prompt: (seen.append(prompt), inner(ctx, enc, prompt))[1]
    c = TestClient(create_app(Settings(), backend=backend))
    ctx = {"result": [click(50, 50), click(10, 10, positive=False), rect(25, 25, 50, 50), rect(0, 0, 10, 10)]}
    c.post("/predict", json={"tasks": [task(1)], "label_config": CONFIG, "params": {"context": ctx}})
    (prompt,) = seen
    assert prompt.positive_points == ((30.0, 20.0),) and prompt.negative_points == ((6.0, 4.0),)
    assert prompt.boxes == ((15.0, 10.0, 45.0, 30.0), (0.0, 0.0, 6.0, 4.0))


def test_encodings_are_cached_and_computed_once_under_concurrency():
    slow = CountingGrabCut(delay=0.3)
    backend = Backend(interactive=slow)
    c = TestClient(create_app(Settings(), backend=backend))
    uri = data_uri()
    payload = {"tasks": [task(1, uri)], "label_config": CONFIG, "params": {"context": {"result": [click(50, 50)]}}}
    statuses = []
    threads = [
        threading.Thread(target=lambda: statuses.append(c.post("/predict", json=payload).status_code)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 6 and slow.encodes == 1
    c.post("/predict", json=payload)
    assert slow.encodes == 1 and backend.cache.stats.hits >= 1
    other = {**payload, "tasks": [task(2, data_uri(color=(10, 10, 200)))]}
    c.post("/predict", json=other)
    assert slow.encodes == 2


@pytest.mark.parametrize(
    "context, message",
    [
        ({"result": []}, "no 'result'"),
        ({"result": [{"type": "keypointlabels", "value": {"x": "a", "y": 1}}]}, "numeric x, y"),
        ({"result": [click(150, 10)]}, "within 0-100"),
        ({"result": [click(10, 10, positive=False)]}, "at least one positive click or one box"),
        ({"result": ["garbage"]}, "malformed context item"),
    ],
)
def test_malformed_contexts(client, context, message):
    r = client.post("/predict", json={"tasks": [task(1)], "label_config": CONFIG, "params": {"context": context}})
    assert r.status_code == 400 and message in r.json()["error"]


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/predict", b"{not json", 400, "not valid JSON"),
        ("/predict", b"[1, 2]", 400, "JSON object"),
        ("/predict", b'{"tasks": "x", "label_config": "<View/>"}', 400, "'tasks': a list"),
        ("/predict", b'{"tasks": []}', 400, "label_config"),
        ("/setup", b'{"schema": 5}', 400, "labeling config"),
        ("/setup", b'{"schema": "<View><unclosed"}', 422, "cannot parse"),
        ("/webhook", b"nope", 400, "not valid JSON"),
    ],
)
def test_malformed_requests_get_json_errors_without_tracebacks(client, path, body, status, message):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    data = r.json()
    assert message in data["error"] and data["error_id"] and "Traceback" not in r.text


def test_unexpected_errors_are_500_with_an_id_and_no_traceback(backend, caplog):
    backend.controls = lambda cfg: (_ for _ in ()).throw(ZeroDivisionError("secret internals"))
    c = TestClient(create_app(Settings(), backend=backend), raise_server_exceptions=False)
    r = c.post("/setup", json={"schema": CONFIG})
    assert r.status_code == 500 and "secret internals" not in r.text and "Traceback" not in r.text
    assert r.json()["error_id"] in caplog.text


def test_webhook_and_train_are_answered(client):
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).json() == {
        "status": "ok",
        "action": "ANNOTATION_CREATED",
    }
    assert client.post("/webhook", json={"action": "START_TRAINING"}).json()["status"] == "ignored"
    assert client.post("/train", json={}).json()["status"] == "ignored"


@pytest.mark.parametrize(
    "settings, header, ok",
    [
        (Settings(basic_auth_user="ls", basic_auth_pass="pw"), "Basic " + base64.b64encode(b"ls:pw").decode(), True),
        (Settings(basic_auth_user="ls", basic_auth_pass="pw"), "Basic " + base64.b64encode(b"ls:nope").decode(), False),
        (Settings(basic_auth_user="ls", basic_auth_pass="pw"), None, False),
        (Settings(bearer_token="t0ken"), "Bearer t0ken", True),
        (Settings(bearer_token="t0ken"), "Bearer other", False),
        (Settings(bearer_token="t0ken"), "Basic garbage!!", False),
    ],
)
def test_authentication_when_configured(backend, settings, header, ok):
    c = TestClient(create_app(settings, backend=backend))
    headers = {"Authorization": header} if header else {}
    for method, path in (("get", "/health"), ("post", "/setup")):
        r = getattr(c, method)(path, headers=headers, **({"json": {"schema": CONFIG}} if method == "post" else {}))
        assert (r.status_code != 401) == ok
        if not ok:
            assert r.json()["error"] == "authentication required"


def test_context_parsing_uses_every_item():
    p = parse_context({"result": [click(10, 20), click(30, 40, positive=False), rect(1, 2, 3, 4, label="dog")]})
    assert (
        p.pos == [(10.0, 20.0)] and p.neg == [(30.0, 40.0)] and p.boxes == [(1.0, 2.0, 4.0, 6.0)] and p.label == "dog"
    )


def test_a_rotated_box_prompts_with_the_upright_box_around_it():
    # a 40x20 px box (on a 200x100 image) drawn at (50, 30) and turned 90 degrees about that corner
    r = rect(25, 30, 20, 20)
    r["value"]["rotation"] = 90
    prompt = parse_context({"result": [r]}).to_prompt((200, 100))
    # its corners: (50, 30), (50, 70), (30, 70), (30, 30)
    assert prompt.boxes == (pytest.approx((30.0, 30.0, 50.0, 70.0)),)
    upright = parse_context({"result": [rect(25, 30, 20, 20)]}).to_prompt((200, 100))
    assert upright.boxes == ((50.0, 30.0, 90.0, 50.0),)


def test_cache_budget_ttl_and_eviction():
    class Blob:
        def __init__(self, n):
            self.nbytes = n

    now = [0.0]
    cache = EncodingCache(max_bytes=100, ttl=10, clock=lambda: now[0])
    for k in "abc":
        cache.get_or_compute(k, lambda: Blob(40))
    assert len(cache) == 2 and cache.nbytes == 80 and cache.stats.evicted == 1
    cache.get_or_compute("b", lambda: Blob(40))
    assert cache.stats.hits == 1
    now[0] = 11
    cache.get_or_compute("b", lambda: Blob(40))
    assert cache.stats.expired == 1 and cache.stats.computed == 4
    cache.get_or_compute("huge", lambda: Blob(1000))
    assert "huge" not in cache._items and cache.nbytes <= 100


def test_cache_failure_is_not_cached_and_reaches_waiters():
    cache = EncodingCache()
    calls = []

    def boom():
        calls.append(1)
        raise RuntimeError("fetch failed")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.get_or_compute("k", boom)
    assert len(calls) == 2 and len(cache) == 0


def test_webhook_never_echoes_non_string_actions(client):
    """Found by fuzzing: echoing {"action": Infinity} made the response unencodable (a 500)."""
    r = client.post("/webhook", content=b'{"action": Infinity}', headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json() == {"status": "ok", "action": None}
