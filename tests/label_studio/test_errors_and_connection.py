"""What a person connecting the backend sees when something is wrong: the reason of every error
reaches Label Studio (which shows only the HTTP reason phrase) and the backend log; the Label
Studio URL and token are checked; nothing-found tasks get no stored prediction; API errors are
one line without headers."""

from __future__ import annotations

import io
import logging
import re

import httpx
import PIL.Image
import pytest
import requests

from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher
from autoannotate.label_studio.app import Settings, create_app
from autoannotate.label_studio.project import api_error_message
from tests.fakes import FakeDetector
from tests.label_studio.test_protocol import CONFIG, task
from tests.ls_server import free_port

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

UNMAPPED = (
    '<View><Image name="i" value="$image"/>'
    '<RectangleLabels name="r" toName="i"><Label value="Horse"/></RectangleLabels></View>'
)


def test_label_studio_shows_the_reason_phrase_of_an_error(serve_backend, caplog):
    """Label Studio 1.23 shows ``str(requests.HTTPError)`` (ml/api_connector.py): only the status
    line reaches the person. Our reason phrase carries the message and the error id."""
    caplog.set_level(logging.WARNING, logger="autoannotate.label_studio")
    running = serve_backend(Backend(function=FakeDetector()))
    r = requests.post(f"{running.url}/setup", json={"schema": UNMAPPED}, timeout=10)
    with pytest.raises(requests.HTTPError) as e:
        r.raise_for_status()  # exactly what Label Studio does with the answer
    shown = str(e.value)
    body = r.json()
    assert r.status_code == 422
    assert "['cat', 'dog']" in shown and "['Horse']" in shown and f"[error {body['error_id']}]" in shown
    assert "Unprocessable" not in shown  # the generic phrase is replaced, not appended to
    # the backend's own log has the reason and the id too
    assert "POST /setup answered 422: " in caplog.text and body["error_id"] in caplog.text
    assert "['Horse']" in caplog.text


def test_a_label_mismatch_names_only_the_labels_when_there_is_a_detection_function():
    """Click-to-mask is only offered (Label Studio's "Interactive preannotations" may be off): with a
    detection function, a config none of whose labels map fails for that reason alone."""
    with_detector = TestClient(
        create_app(Settings(), Backend(function=FakeDetector(), interactive=FakeInteractiveNone()))
    )
    r = with_detector.post("/setup", json={"schema": UNMAPPED})
    assert r.status_code == 422 and r.json()["error"].startswith("none of the function's labels maps")
    assert "interactive" not in r.json()["error"] and "interactive" not in r.reason_phrase
    # without a detection function, clicks are what the backend is for: then that is the reason
    interactive_only = TestClient(create_app(Settings(), Backend(function=None, interactive=FakeInteractiveNone())))
    r = interactive_only.post("/setup", json={"schema": UNMAPPED})
    assert r.status_code == 422 and r.json()["error"].startswith("interactive segmentation needs a BrushLabels")


def test_every_error_is_logged_with_its_reason(serve_backend, caplog):
    caplog.set_level(logging.WARNING, logger="autoannotate.label_studio")
    running = serve_backend(Backend(function=None, interactive=FakeInteractiveNone()))
    cases = [
        ("/predict", {"tasks": [task(1)], "label_config": UNMAPPED, "params": {"context": {"result": []}}}),
        ("/predict", {"tasks": "nope"}),
        ("/nothing-here", {}),
    ]
    for path, payload in cases:
        r = requests.post(f"{running.url}{path}", json=payload, timeout=10)
        assert r.status_code >= 400
        assert r.reason.endswith(f"[error {r.json()['error_id']}]")
        assert r.json()["error_id"] in caplog.text
    assert caplog.text.count("answered 4") == len(cases)


class FakeInteractiveNone:
    model_version = "none-interactive"

    def encode(self, ctx, image):
        return None

    def segment(self, ctx, encoding, prompt):
        return []


def test_reason_phrases_are_one_ascii_line_and_bounded():
    from autoannotate.label_studio.app import MAX_REASON, reason_phrase

    assert (
        reason_phrase('add predicted_values="x" to a <Label>', "i") == 'add predicted_values="x" to a Label [error i]'
    )
    text = reason_phrase("labels ‘Cat’\nand\r\n  ‘Dog’ " + "x" * 2000, "abc")
    assert text.isascii() and "\n" not in text and "\r" not in text
    assert text.startswith("labels ?Cat? and ?Dog? x") and text.endswith("... [error abc]")
    assert len(text) <= MAX_REASON + len(" [error abc]")


# -- nothing found ---------------------------------------------------------------------------


def test_nothing_found_stores_no_prediction_unless_asked():
    payload = {"tasks": [task(1), task(2)], "label_config": CONFIG}
    found_nothing = FakeDetector(lambda ctx, img: [])
    results = TestClient(create_app(Settings(), backend=Backend(function=found_nothing))).post("/predict", json=payload)
    for res in results.json()["results"]:
        assert "result" not in res  # Label Studio stores nothing, so it can be asked again
        assert res["model_version"] == "FakeDetector" and "nothing found" in res["status"]
    keep = Backend(function=found_nothing, empty_predictions=True)
    results = TestClient(create_app(Settings(), backend=keep)).post("/predict", json=payload).json()["results"]
    assert [r["result"] for r in results] == [[], []]


def test_model_version_is_the_pre_annotation_function_only():
    from tests.label_studio.test_protocol import CountingGrabCut

    detector = FakeDetector()
    a = Backend(function=detector, interactive=CountingGrabCut())
    b = Backend(function=detector, interactive=FakeInteractiveNone(), tracker=None)
    assert a.model_version == b.model_version == "FakeDetector"
    assert Backend(function=detector, conf_threshold=0.4).model_version == "FakeDetector@conf0.4"


# -- the Label Studio connection ---------------------------------------------------------------


def fetcher(url, key):
    return ImageFetcher(FetchPolicy(timeout=5), label_studio_url=url, api_key=key)


def test_connection_states_against_a_real_label_studio(label_studio):
    ok = fetcher(label_studio.url, label_studio.token).check_label_studio()
    assert ok.state == "ok" and ok.usable and "tests@autoannotate.local" in ok.message

    missing = fetcher(label_studio.url, None).check_label_studio()
    assert missing.state == "token_missing" and not missing.usable
    assert "LABEL_STUDIO_API_KEY is not set" in missing.message

    wrong_jwt = label_studio.token[:-6] + "AAAAAA"
    rejected = fetcher(label_studio.url, wrong_jwt).check_label_studio()
    assert rejected.state == "token_rejected" and not rejected.usable
    assert f"LABEL_STUDIO_API_KEY was rejected by {label_studio.url}" in rejected.message
    assert "Personal Access Token" in rejected.message and wrong_jwt not in rejected.message

    # a random key is not called a legacy token: the message says what Label Studio answered
    random_key = fetcher(label_studio.url, "0123456789abcdef0123456789abcdef01234567").check_label_studio()
    assert random_key.state == "token_rejected" and "legacy" not in random_key.message
    assert "(HTTP 401: Invalid token.)" in random_key.message and "not a personal access token" in random_key.message

    # a real legacy token (Label Studio 1.23 disables them) is named as one, from Label Studio's answer
    legacy_key = label_studio.http().get("/api/current-user/token").json()["token"]
    legacy = fetcher(label_studio.url, legacy_key).check_label_studio()
    assert legacy.state == "token_rejected" and "it is a legacy token" in legacy.message
    assert "legacy token authentication has been disabled" in legacy.message

    gone = f"http://127.0.0.1:{free_port()}"
    unreachable = fetcher(gone, label_studio.token).check_label_studio()
    assert unreachable.state == "unreachable" and f"LABEL_STUDIO_URL={gone} is unreachable" in unreachable.message

    # a wrong path with a good token: the URL is named, not the token, with where Label Studio answers
    wrong_path = f"{label_studio.url}/label-studio"
    for key in (label_studio.token, "0123456789abcdef0123456789abcdef01234567"):
        wrong = fetcher(wrong_path, key).check_label_studio()
        assert wrong.state == "not_label_studio" and not wrong.usable, wrong.message
        assert wrong.message.startswith(f"LABEL_STUDIO_URL={wrong_path} does not lead to Label Studio's API")
        assert "was rejected" not in wrong.message and "answered HTTP 404" in wrong.message
        assert re.search(
            rf"Label Studio 1\.\d+\.\d+ answers at {label_studio.url}: set LABEL_STUDIO_URL=", wrong.message
        )
        assert wrong.message.endswith(f"LABEL_STUDIO_URL={label_studio.url}")

    not_set = fetcher(None, None).check_label_studio()
    assert not_set.state == "not_configured" and not_set.usable


def test_setup_refuses_a_rejected_token_and_health_says_why(label_studio, serve_backend):
    backend = Backend(function=FakeDetector(), fetcher=fetcher(label_studio.url, label_studio.token[:-6] + "AAAAAA"))
    running = serve_backend(backend)
    # checked when the server started (no /setup yet)
    assert requests.get(f"{running.url}/health", timeout=5).json()["label_studio"]["state"] == "token_rejected"
    r = requests.post(f"{running.url}/setup", json={"schema": CONFIG}, timeout=10)
    assert r.status_code == 424 and "LABEL_STUDIO_API_KEY was rejected" in r.reason
    health = requests.get(f"{running.url}/health", timeout=5).json()["label_studio"]
    assert health["state"] == "token_rejected" and "Personal Access Token" in health["message"]

    good = serve_backend(Backend(function=FakeDetector(), fetcher=fetcher(label_studio.url, label_studio.token)))
    r = requests.post(f"{good.url}/setup", json={"schema": CONFIG}, timeout=10)
    assert r.status_code == 200 and r.json()["label_studio"]["state"] == "ok"


def test_a_401_fetching_an_image_names_the_variable(label_studio):
    client = label_studio.http()
    project = client.post("/api/projects", json={"title": "fetch-401", "label_config": CONFIG}).json()
    buf = io.BytesIO()
    PIL.Image.new("RGB", (32, 24), (10, 200, 30)).save(buf, "PNG")
    r = client.post(f"/api/projects/{project['id']}/import", files=[("file", ("a.png", buf.getvalue(), "image/png"))])
    assert r.status_code == 201, r.text
    (t,) = client.get("/api/tasks", params={"project": project["id"]}).json()["tasks"]
    ref = t["data"]["image"]
    from autoannotate.label_studio.fetch import FetchError

    assert fetcher(label_studio.url, label_studio.token).fetch(ref)  # the right token works
    with pytest.raises(FetchError, match="LABEL_STUDIO_API_KEY is not set"):
        fetcher(label_studio.url, None).fetch(ref)


# -- API errors in one line --------------------------------------------------------------------


def test_api_errors_are_one_line_without_headers():
    from label_studio_sdk.core.api_error import ApiError

    e = ApiError(
        status_code=401,
        headers={"set-cookie": "sessionid=abc123; HttpOnly", "content-type": "application/json"},
        body={"detail": "Invalid token."},
    )
    assert api_error_message(e) == "HTTP 401: Invalid token."
    assert api_error_message(httpx.ConnectError("connection refused")) == "ConnectError: connection refused"


def test_annotate_with_a_wrong_token_prints_one_line(label_studio, models_env, capsys):
    from autoannotate.cli import main

    wrong = label_studio.token[:-6] + "AAAAAA"
    code = main(["label-studio", "annotate", "--url", label_studio.url, "--api-key", wrong, "--project", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: LABEL_STUDIO_API_KEY was rejected by {label_studio.url}")
    for leak in ("sessionid", "set-cookie", "headers", wrong):
        assert leak not in err.lower() if leak != wrong else leak not in err


def test_connection_messages_never_show_a_password_in_the_url():
    port = free_port()
    check = fetcher(f"http://admin:s3cret-pw@127.0.0.1:{port}", "a.b.c").check_label_studio(timeout=2)
    assert check.state in ("unreachable", "token_rejected")
    assert "s3cret-pw" not in repr(check.as_dict()) and check.url == f"http://127.0.0.1:{port}"
