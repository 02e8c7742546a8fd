"""No secrets in logs or responses: the Label Studio token, basic-auth password and bearer token
never appear in what the service logs or answers, even when requests fail."""

from __future__ import annotations

import base64
import logging

import pytest

from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher
from autoannotate.label_studio.app import Settings, create_app
from tests.fakes import FakeDetector
from tests.label_studio.test_protocol import CONFIG

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

TOKEN = "ls-secret-token-4242"
PASSWORD = "basic-secret-pw-4242"
BEARER = "bearer-secret-4242"


def test_secrets_stay_out_of_logs_and_responses(caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        label_studio_url="http://127.0.0.1:9",
        label_studio_api_key=TOKEN,
        basic_auth_user="ls",
        basic_auth_pass=PASSWORD,
        bearer_token=BEARER,
    )
    backend = Backend(
        function=FakeDetector(),
        fetcher=ImageFetcher(FetchPolicy(timeout=2), label_studio_url=settings.label_studio_url, api_key=TOKEN),
    )
    c = TestClient(create_app(settings, backend=backend), raise_server_exceptions=False)
    auth = {"Authorization": "Basic " + base64.b64encode(f"ls:{PASSWORD}".encode()).decode()}
    answers = [
        c.get("/health"),  # refused: no credentials
        c.get("/health", headers={"Authorization": "Bearer wrong"}),
        c.post(
            "/predict",
            headers=auth,
            json={"tasks": [{"id": 1, "data": {"image": "/data/upload/1/a.png"}}], "label_config": CONFIG},
        ),  # fetch from an unreachable Label Studio
        c.post("/setup", headers={"Authorization": f"Bearer {BEARER}"}, content=b"{bad json"),
        c.post("/setup", headers=auth, json={"schema": CONFIG}),  # the token check: Label Studio unreachable
    ]
    backend.controls = lambda cfg: 1 / 0
    answers.append(c.post("/setup", headers=auth, json={"schema": CONFIG}))  # an unexpected error
    # bodies and headers: the error message also travels in a header (and the reason phrase)
    texts = [r.text + repr(sorted(r.headers.items())) for r in answers]
    assert sum("x-autoannotate-error" in t for t in texts) >= 4
    everything = "\n".join(texts) + caplog.text + repr(settings) + repr(backend)
    for secret in (TOKEN, PASSWORD, BEARER):
        assert secret not in everything
    assert "unhandled error" in caplog.text  # the failure itself was logged
