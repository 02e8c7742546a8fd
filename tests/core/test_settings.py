"""One place reads the environment: Settings.from_env (defaults, parsing, errors naming the variable)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from dataclasses import fields

import pytest

import autoannotate.settings as settings_module
from autoannotate import BadParameterError
from autoannotate.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_NUM_WORKERS,
    DEFAULT_WRITE_EVERY,
    DEFAULT_WRITE_INTERVAL,
    ENV_VARIABLES,
    Settings,
    env_variable,
)


def test_defaults_without_any_variable():
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.function, s.interactive, s.tracker) == ("yolox", "auto", "opencv_tracker")
    assert (s.batch_size, s.num_workers) == (DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS)
    assert (s.host, s.port, s.track_frames, s.key_frame_interval) == ("0.0.0.0", 9090, 30, 5)
    assert s.conf_threshold is None and s.params == {} and s.allow_hosts == ()
    assert isinstance(DEFAULT_WRITE_EVERY, int) and isinstance(DEFAULT_WRITE_INTERVAL, float)


def test_every_variable_is_read():
    env = {
        "AUTOANNOTATE_FUNCTION": "torchvision_detection",
        "AUTOANNOTATE_INTERACTIVE": "none",
        "AUTOANNOTATE_TRACKER": "sam_tracker",
        "AUTOANNOTATE_TRACK_FRAMES": "12",
        "AUTOANNOTATE_PARAMS": "model=str:yolox_s, default_conf_threshold=float:0.4",
        "AUTOANNOTATE_INTERACTIVE_PARAMS": "device=str:cpu",
        "AUTOANNOTATE_CONF_THRESHOLD": "0.3",
        "AUTOANNOTATE_HOST": "127.0.0.1",
        "AUTOANNOTATE_PORT": "9191",
        "AUTOANNOTATE_BATCH_SIZE": "2",
        "AUTOANNOTATE_NUM_WORKERS": "0",
        "AUTOANNOTATE_KEY_FRAME_INTERVAL": "3",
        "AUTOANNOTATE_MAX_VIDEO_BYTES": "1000",
        "AUTOANNOTATE_ALLOW_HOSTS": "10.0.0.0/8, minio",
        "AUTOANNOTATE_LOCAL_FILES_ROOT": "/data",
        "AUTOANNOTATE_FETCH_TIMEOUT": "2.5",
        "AUTOANNOTATE_MAX_IMAGE_BYTES": "100",
        "AUTOANNOTATE_CACHE_BYTES": "5",
        "AUTOANNOTATE_VIDEO_CACHE_BYTES": "7",
        "AUTOANNOTATE_CACHE_TTL": "60",
        "AUTOANNOTATE_EMPTY_PREDICTIONS": "yes",
        "AUTOANNOTATE_ENCODE_AHEAD": "off",
        "AUTOANNOTATE_LOOK_AHEAD": "4",
        "AUTOANNOTATE_BASIC_AUTH_USER": "u",
        "AUTOANNOTATE_BASIC_AUTH_PASS": "p w",
        "AUTOANNOTATE_BEARER_TOKEN": "t",
        "AUTOANNOTATE_DEVICE": "cpu",
        "AUTOANNOTATE_DTYPE": "bf16",
        "LABEL_STUDIO_URL": "http://ls:8080",
        "LABEL_STUDIO_API_KEY": "k",
    }
    assert set(env) == set(ENV_VARIABLES)
    s = Settings.from_env(env)
    assert s == Settings(
        function="torchvision_detection",
        interactive=None,
        tracker="sam_tracker",
        track_frames=12,
        params={"model": "yolox_s", "default_conf_threshold": 0.4},
        interactive_params={"device": "cpu"},
        conf_threshold=0.3,
        host="127.0.0.1",
        port=9191,
        batch_size=2,
        num_workers=0,
        key_frame_interval=3,
        max_video_bytes=1000,
        video_cache_bytes=7,
        allow_hosts=("10.0.0.0/8", "minio"),
        local_files_root="/data",
        fetch_timeout=2.5,
        max_image_bytes=100,
        cache_bytes=5,
        cache_ttl=60.0,
        empty_predictions=True,
        encode_ahead=False,
        look_ahead=4,
        basic_auth_user="u",
        basic_auth_pass="p w",
        bearer_token="t",
        label_studio_url="http://ls:8080",
        label_studio_api_key="k",
    )
    assert {f.name for f in fields(Settings)} >= {"host", "port", "batch_size", "num_workers"}


#: A value of each kind of setting that is not its default, as its variable spells it.
OTHER_VALUES = {str: ("other", "other"), int: ("3", 3), float: ("0.5", 0.5), bool: ("yes", True)}


def test_each_field_is_read_from_its_own_variable_and_listed():
    """A field added to Settings is read from env_variable(its name) with no second place to edit."""
    kinds = {"str | None": str, "str": str, "int": int, "float": float, "float | None": float, "bool": bool}
    plain = [f for f in fields(Settings) if f.type in kinds]
    assert len(plain) >= 20
    for f in plain:
        text, value = OTHER_VALUES[kinds[f.type]]
        if f.name in ("function", "interactive", "tracker"):  # function names; "none" disables one
            text, value = "none", None
        variable = env_variable(f.name)
        assert variable in ENV_VARIABLES
        s = Settings.from_env({variable: text})
        assert getattr(s, f.name) == value and s == Settings(**{f.name: value}), f.name
    assert env_variable("label_studio_url") == "LABEL_STUDIO_URL"
    assert env_variable("batch_size") == "AUTOANNOTATE_BATCH_SIZE"
    assert len(set(ENV_VARIABLES)) == len(ENV_VARIABLES) == len(fields(Settings)) + 2  # + device and dtype


def test_empty_variables_keep_defaults_and_none_disables_functions():
    s = Settings.from_env({"AUTOANNOTATE_PORT": "", "AUTOANNOTATE_FUNCTION": "  ", "AUTOANNOTATE_TRACKER": "None"})
    assert s.port == 9090 and s.function == "yolox" and s.tracker is None


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AUTOANNOTATE_PORT", "abc", "AUTOANNOTATE_PORT='abc' is not a valid int"),
        ("AUTOANNOTATE_PORT", "70000", "AUTOANNOTATE_PORT='70000' must be between 0 and 65535"),
        ("AUTOANNOTATE_BATCH_SIZE", "0", "AUTOANNOTATE_BATCH_SIZE='0' must be >= 1"),
        ("AUTOANNOTATE_BATCH_SIZE", "2.5", "AUTOANNOTATE_BATCH_SIZE='2.5' is not a valid int"),
        ("AUTOANNOTATE_TRACK_FRAMES", "-1", "AUTOANNOTATE_TRACK_FRAMES='-1' must be >= 1"),
        ("AUTOANNOTATE_CONF_THRESHOLD", "high", "AUTOANNOTATE_CONF_THRESHOLD='high' is not a valid float"),
        ("AUTOANNOTATE_CONF_THRESHOLD", "1.5", "AUTOANNOTATE_CONF_THRESHOLD='1.5' must be between 0 and 1"),
        ("AUTOANNOTATE_CONF_THRESHOLD", "nan", "AUTOANNOTATE_CONF_THRESHOLD='nan' must be"),
        ("AUTOANNOTATE_FETCH_TIMEOUT", "soon", "AUTOANNOTATE_FETCH_TIMEOUT='soon' is not a valid float"),
        ("AUTOANNOTATE_PARAMS", "model=int:x", "AUTOANNOTATE_PARAMS: parameter 'model'"),
        ("AUTOANNOTATE_PARAMS", "no equals sign", "AUTOANNOTATE_PARAMS: parameter 'no equals sign' must look like"),
        ("AUTOANNOTATE_EMPTY_PREDICTIONS", "maybe", "AUTOANNOTATE_EMPTY_PREDICTIONS='maybe' must be true or false"),
    ],
)
def test_malformed_variables_name_themselves(name, value, message):
    with pytest.raises(BadParameterError) as e:
        Settings.from_env({name: value})
    assert message in str(e.value)


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("AUTOANNOTATE_BATCH_SIZE", "3")
    assert Settings.from_env().batch_size == 3


def test_secrets_stay_out_of_reprs():
    text = repr(Settings(label_studio_api_key="KEY123", basic_auth_pass="PW123", bearer_token="TOK123"))
    assert "KEY123" not in text and "PW123" not in text and "TOK123" not in text


def test_settings_is_light_and_reexported():
    """No FastAPI, Label Studio SDK or FiftyOne behind the settings; the old names still work."""
    tree = ast.parse(inspect.getsource(settings_module))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in ("fastapi", "label_studio_sdk", "fiftyone", "uvicorn")}
    code = (
        "import sys, autoannotate.settings; "
        "print(sorted(m for m in ('fastapi', 'label_studio_sdk', 'fiftyone', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    pytest.importorskip("fastapi")
    from autoannotate.label_studio import Settings as S1
    from autoannotate.label_studio.app import Settings as S2

    assert S1 is Settings and S2 is Settings


def test_only_settings_reads_autoannotate_variables():
    """No other module of the package reads AUTOANNOTATE_* / LABEL_STUDIO_* variables itself
    (weights.py's model-folder variables and the demo's data folder are not settings)."""
    from pathlib import Path

    root = Path(settings_module.__file__).parent
    allowed = {"settings.py", "weights.py", "demo.py"}
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in allowed:
            continue
        text = path.read_text()
        for var in ENV_VARIABLES:
            if f'"{var}"' in text or f"'{var}'" in text:
                offenders.append(f"{path.relative_to(root)}: {var}")
    assert offenders == []


def test_the_plugin_takes_every_default_from_settings():
    """The FiftyOne plugin writes no default of its own: no constant in its sources equals a
    ``DEFAULT_*`` of ``settings`` (a function name, a threshold, a field name, a frame count)."""
    from pathlib import Path

    defaults: set[object] = set()
    for name, value in vars(settings_module).items():
        if name.startswith("DEFAULT_"):
            defaults |= set(value) if isinstance(value, tuple) else {value}
    plugin = Path(__file__).resolve().parents[2] / "plugins" / "autoannotate"
    found = []
    for path in sorted(plugin.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and not isinstance(node.value, bool)
                and isinstance(node.value, (str, int, float))
                and node.value in defaults
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert {"yolox", "opencv_tracker", 0.3, 0.8, 0.95, "auto_labels"} <= defaults
    assert found == []
