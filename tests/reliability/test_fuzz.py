"""Property-based fuzzing of the backend's HTTP API (hypothesis): whatever the body, no 500, no
traceback in any response, every error is JSON with an error id, and the service stays up."""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoannotate as aa
from autoannotate.functions import grabcut
from autoannotate.label_studio import Backend
from autoannotate.label_studio.app import Settings, create_app
from tests.fakes import FakeDetector
from tests.label_studio.test_protocol import CONFIG, data_uri

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

PATHS = ["/setup", "/predict", "/webhook", "/validate", "/train"]
URI = data_uri()

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
)
json_values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12
)
refs = st.sampled_from(
    [
        URI,
        "",
        "data:image/png;base64,AAAA",
        "/data/upload/1/x.png",
        "http://10.0.0.1/x.png",
        "/etc/passwd",
        "s3://b/k",
        "file:///etc/shadow",
    ]
) | st.text(max_size=40)
tasks = st.lists(
    st.fixed_dictionaries({"id": json_values, "data": st.fixed_dictionaries({"image": refs}) | json_values}), max_size=3
)
click = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["keypointlabels", "rectanglelabels", "brushlabels", "x"]) | json_values,
        "is_positive": json_values,
        "value": st.fixed_dictionaries(
            {"x": scalars, "y": scalars, "width": scalars, "height": scalars, "keypointlabels": json_values}
        )
        | json_values,
    }
)
context = st.fixed_dictionaries({"result": st.lists(click, max_size=3) | json_values}) | json_values
configs = (
    st.sampled_from([CONFIG, "", "<View>", "<View/>", "not xml", "<View><Image name='i' value='$image'/></View>"])
    | json_values
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "tasks": tasks | json_values,
        "label_config": configs,
        "schema": configs,
        "config": configs,
        "params": st.fixed_dictionaries({"context": context}) | json_values,
        "project": json_values,
        "action": json_values,
    },
)


@pytest.fixture(scope="module")
def client():
    backend = Backend(
        function=FakeDetector(lambda c, i: [aa.rectangle(0, [0, 0, 5, 5], score=0.5)]),
        interactive=grabcut.create(iterations=1),
    )
    return TestClient(create_app(Settings(), backend=backend), raise_server_exceptions=False)


@pytest.fixture(autouse=True, scope="module")
def no_dns():
    """Fuzzed URLs must never reach a resolver: only loopback resolves."""
    real = socket.getaddrinfo

    def fake(host, *a, **k):
        if host in ("127.0.0.1", "localhost"):
            return real(host, *a, **k)
        raise socket.gaierror(-2, "resolution disabled in tests")

    socket.getaddrinfo = fake
    yield
    socket.getaddrinfo = real


def check(r):
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert "Traceback" not in r.text and 'File "' not in r.text
    data = r.json()
    if r.status_code >= 400:
        assert isinstance(data.get("error"), str) and data.get("error_id")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=bodies)
def test_structured_bodies(client, path, body):
    check(client.post(path, content=json.dumps(body, allow_nan=True), headers={"content-type": "application/json"}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes(client, path, raw):
    check(client.post(path, content=raw, headers={"content-type": "application/json"}))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["get", "put", "delete", "patch"]),
    path=st.sampled_from(PATHS + ["/health", "/versions", "/nope"]),
)
def test_other_methods_and_paths(client, method, path):
    r = getattr(client, method)(path)
    assert r.status_code < 500 and "Traceback" not in r.text


def test_service_still_up_after_fuzzing(client):
    assert client.get("/health").json()["status"] == "UP"
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": URI}}], "label_config": CONFIG})
    assert r.status_code == 200 and r.json()["results"][0]["result"]
