"""The deployable entry (backends/label_studio/app.py) and `autoannotate label-studio serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

import autoannotate as aa
from tests.conftest import REPO
from tests.ls_server import free_port
from tests.procs import kill_tree


def test_serve_command_answers_health_with_env_settings(models_env):
    port = free_port()
    env = {**os.environ, "AUTOANNOTATE_INTERACTIVE": "grabcut", "AUTOANNOTATE_BEARER_TOKEN": "s3cret"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoannotate.cli",
            "label-studio",
            "serve",
            "--function",
            "yolox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(120):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": "Bearer s3cret"}, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert r.status_code == 200 and r.json()["detection"].startswith("yolox_nano@")
        assert r.json()["interactive"] == "grabcut-opencv"
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 401
    finally:
        kill_tree(proc)


def test_deployable_app_entry(monkeypatch, models_env):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AUTOANNOTATE_FUNCTION", "none")
    monkeypatch.setenv("AUTOANNOTATE_INTERACTIVE", "grabcut")
    monkeypatch.syspath_prepend(str(REPO / "backends" / "label_studio"))
    sys.modules.pop("app", None)
    import app  # noqa: PLC0415

    health = TestClient(app.app).get("/health").json()
    assert health["status"] == "UP" and health["detection"] is None and health["interactive"] == "grabcut-opencv"
    sys.modules.pop("app", None)


def test_bad_settings_fail_at_start(monkeypatch):
    from autoannotate.label_studio.app import Settings

    monkeypatch.setenv("AUTOANNOTATE_PARAMS", "model=int:notanumber")
    with pytest.raises(ValueError, match="not a valid int"):
        Settings.from_env()
    monkeypatch.delenv("AUTOANNOTATE_PARAMS")
    monkeypatch.setenv("AUTOANNOTATE_CONF_THRESHOLD", "high")
    with pytest.raises(aa.BadParameterError, match="AUTOANNOTATE_CONF_THRESHOLD='high' is not a valid float"):
        Settings.from_env()


def test_the_backend_takes_its_defaults_and_limits_from_the_settings(tmp_path):
    from autoannotate.label_studio import Backend
    from autoannotate.label_studio.service import build_backend, fetch_policy
    from autoannotate.settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, Settings

    plain = Backend(interactive=object())
    assert (plain.batch_size, plain.num_workers) == (DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS)
    defaults = Settings()
    assert (plain.track_frames, plain.key_frame_interval, plain.max_video_bytes) == (
        defaults.track_frames,
        defaults.key_frame_interval,
        defaults.max_video_bytes,
    )
    s = Settings(
        function=None,
        interactive="grabcut",
        tracker=None,
        batch_size=3,
        num_workers=1,
        track_frames=7,
        key_frame_interval=2,
        max_video_bytes=99,
        conf_threshold=0.2,
        cache_bytes=1000,
        fetch_timeout=3.0,
        max_image_bytes=55,
        allow_hosts=("10.0.0.1",),
        local_files_root=str(tmp_path),
    )
    b = build_backend(s)
    assert (b.batch_size, b.num_workers, b.track_frames, b.key_frame_interval, b.max_video_bytes) == (3, 1, 7, 2, 99)
    assert b.conf_threshold == 0.2 and b.cache.max_bytes == 1000 and b.function is None and b.tracker is None
    policy = fetch_policy(s)
    assert (policy.timeout, policy.max_bytes, policy.allow_hosts, str(policy.local_root)) == (
        3.0,
        55,
        ("10.0.0.1",),
        str(tmp_path),
    )


def test_default_interactive_is_auto_and_falls_back_to_grabcut_with_one_line(models_env, caplog):
    """No SAM weights here (only YOLOX / FastestDet in ../shared/models): `auto` gives GrabCut and
    says once how to get a SAM model."""
    import logging

    from autoannotate.label_studio.app import Settings
    from autoannotate.label_studio.service import build_backend

    caplog.set_level(logging.INFO)
    settings = Settings(function=None)
    assert settings.interactive == "auto"
    backend = build_backend(settings)
    assert backend.health()["interactive"] == "grabcut-opencv"
    lines = [r.getMessage() for r in caplog.records if "interactive model" in r.getMessage()]
    assert len(lines) == 1 and "autoannotate weights download" in lines[0]


def test_help_states_the_defaults_the_settings_have(capsys):
    """Every "else X" of ``serve --help`` is the value the setting takes when nothing is given."""
    import re

    from autoannotate.cli import build_parser
    from autoannotate.settings import Settings

    with pytest.raises(SystemExit):
        build_parser().parse_args(["label-studio", "serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    stated = dict(re.findall(r"default: (AUTOANNOTATE_[A-Z_]+), else ([^\s),:]+)", text))
    defaults = Settings()
    expected = {
        "AUTOANNOTATE_FUNCTION": defaults.function,
        "AUTOANNOTATE_INTERACTIVE": defaults.interactive,
        "AUTOANNOTATE_TRACKER": defaults.tracker,
        "AUTOANNOTATE_TRACK_FRAMES": defaults.track_frames,
        "AUTOANNOTATE_BATCH_SIZE": defaults.batch_size,
        "AUTOANNOTATE_NUM_WORKERS": defaults.num_workers,
        "AUTOANNOTATE_LOOK_AHEAD": defaults.look_ahead,
        "AUTOANNOTATE_HOST": defaults.host,
        "AUTOANNOTATE_PORT": defaults.port,
        "AUTOANNOTATE_EMPTY_PREDICTIONS": defaults.empty_predictions,
        "AUTOANNOTATE_ENCODE_AHEAD": defaults.encode_ahead,
    }
    words = {True: "yes", False: "no"}
    assert stated == {k: words[v] if isinstance(v, bool) else str(v) for k, v in expected.items()}
    assert Settings.from_env({}).look_ahead == defaults.look_ahead == 2


# -- each role gets a function of its kind; errors name the variable or flag they come from --


@pytest.fixture
def no_server(monkeypatch):
    """``uvicorn.run`` records the app instead of serving it: a check that fails to fire shows as
    a started server, not a hung test."""
    import uvicorn

    started: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    for name in ("AUTOANNOTATE_FUNCTION", "AUTOANNOTATE_INTERACTIVE", "AUTOANNOTATE_TRACKER", "AUTOANNOTATE_PARAMS"):
        monkeypatch.delenv(name, raising=False)
    return started


@pytest.mark.parametrize(
    "env, args, message",
    [
        (
            {"AUTOANNOTATE_FUNCTION": "grabcut"},
            [],
            "AUTOANNOTATE_FUNCTION='grabcut': 'grabcut' is an interactive function, but a detection function is "
            "needed here (one with spec and detect()); `autoannotate functions --kind detection` lists them: ",
        ),
        (
            {"AUTOANNOTATE_FUNCTION": "none", "AUTOANNOTATE_INTERACTIVE": "yolox"},
            [],
            "AUTOANNOTATE_INTERACTIVE='yolox': 'yolox' is a detection function, but an interactive function is "
            "needed here (one with encode() and segment()); `autoannotate functions --kind interactive` lists them: ",
        ),
        (
            {"AUTOANNOTATE_FUNCTION": "none", "AUTOANNOTATE_INTERACTIVE": "none", "AUTOANNOTATE_TRACKER": "yolox"},
            [],
            "AUTOANNOTATE_TRACKER='yolox': 'yolox' is a detection function, but a tracking function is needed here",
        ),
        (
            {"AUTOANNOTATE_TRACKER": "grabcut"},
            ["--function", "none", "--interactive", "none"],
            "AUTOANNOTATE_TRACKER='grabcut': 'grabcut' is an interactive function",
        ),
        ({}, ["--tracker", "opencv_tracker", "--function", "sam"], "--function='sam': 'sam' is an interactive"),
        (
            {"AUTOANNOTATE_FUNCTION": "none", "AUTOANNOTATE_INTERACTIVE": "none", "AUTOANNOTATE_TRACKER": "nosuch"},
            [],
            "AUTOANNOTATE_TRACKER='nosuch': no function named 'nosuch'",
        ),
        ({"AUTOANNOTATE_FUNCTION": "nosuchfn"}, [], "AUTOANNOTATE_FUNCTION='nosuchfn': no function named 'nosuchfn'"),
        (
            {"AUTOANNOTATE_PARAMS": "bogus=int:1"},
            ["--interactive", "none", "--tracker", "none"],
            "AUTOANNOTATE_PARAMS: yolox (autoannotate.functions.yolox): got an unexpected keyword argument 'bogus'",
        ),
        (
            {"AUTOANNOTATE_PARAMS": "max_detections=abc"},
            ["--interactive", "none", "--tracker", "none"],
            "AUTOANNOTATE_PARAMS: parameter 'max_detections': 'abc' is not a valid int",
        ),
        (
            {"AUTOANNOTATE_PARAMS": "max_detections=abc"},
            ["--interactive", "none", "--tracker", "none", "-p", "max_detections=x"],
            "--param: parameter 'max_detections': 'x' is not a valid int",
        ),
        ({}, ["--port", "70000"], "--port=70000 must be between 0 and 65535"),
        ({}, ["--look-ahead", "65"], "--look-ahead=65 must be between 0 and 64"),
        ({}, ["--batch-size", "0"], "--batch-size=0 must be >= 1"),
    ],
)
def test_serve_refuses_a_wrong_function_or_value_before_starting(no_server, monkeypatch, capsys, env, args, message):
    from autoannotate.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["label-studio", "serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}"), err
    assert not no_server


def test_the_deployable_app_refuses_a_function_of_the_wrong_kind(monkeypatch):
    from autoannotate.label_studio.app import create_app
    from autoannotate.settings import Settings

    with pytest.raises(aa.BadFunctionError, match=r"^AUTOANNOTATE_FUNCTION='grabcut': 'grabcut' is an interactive"):
        create_app(Settings.from_env({"AUTOANNOTATE_FUNCTION": "grabcut"}))
    with pytest.raises(
        aa.BadFunctionError, match=r"^AUTOANNOTATE_INTERACTIVE='opencv_tracker': 'opencv_tracker' is a "
    ):
        create_app(Settings(function=None, interactive="opencv_tracker", tracker=None))
