"""A function installed from another package (an ``autoannotate.functions`` entry point) served
by the ML backend through ``AUTOANNOTATE_FUNCTION``, as the Docker image and ``serve`` start it."""

from __future__ import annotations

import base64
import io

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate.label_studio.app import Settings, create_app

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Bright"/></RectangleLabels>
</View>"""


def test_the_backend_serves_an_installed_function_named_in_the_environment(installed, monkeypatch):
    monkeypatch.setenv("AUTOANNOTATE_FUNCTION", "bright_spots")
    monkeypatch.setenv("AUTOANNOTATE_PARAMS", "threshold=int:200")
    monkeypatch.setenv("AUTOANNOTATE_INTERACTIVE", "none")
    monkeypatch.setenv("AUTOANNOTATE_TRACKER", "none")
    client = TestClient(create_app(Settings.from_env()))
    assert client.get("/health").json()["detection"] == "bright-spots@200"
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:20, 30:45] = 255
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, "PNG")
    task = {"id": 1, "data": {"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}
    r = client.post("/predict", json={"tasks": [task], "label_config": CONFIG})
    assert r.status_code == 200, r.text
    (region,) = r.json()["results"][0]["result"]
    assert region["value"]["rectanglelabels"] == ["Bright"]  # the function's "bright", case-folded
    assert (region["value"]["x"], region["value"]["y"]) == (pytest.approx(50.0), pytest.approx(25.0))
    assert (region["value"]["width"], region["value"]["height"]) == (pytest.approx(25.0), pytest.approx(25.0))


def test_a_broken_installed_function_fails_the_start_naming_its_package(installed, monkeypatch):
    monkeypatch.setenv("AUTOANNOTATE_FUNCTION", "broken_fn")
    monkeypatch.setenv("AUTOANNOTATE_INTERACTIVE", "none")
    with pytest.raises(aa.BadFunctionError, match="from package 'broken-functions'"):
        create_app(Settings.from_env())
