"""A rotated rectangle through a real Label Studio server: ``label-studio annotate`` uploads it as
a rotated RectangleLabels region, the server gives it back with its rotation (read through the
API, and back to the same shape), and the labeling page draws it turned (headless Chromium;
screenshot saved under test-artifacts/label-studio-rotated-box.png)."""

from __future__ import annotations

import time

import pytest

import autoannotate as aa
from autoannotate.label_studio import annotate_project
from autoannotate.label_studio.regions import rectangle_from_value, rectangle_value
from tests.browser import playwright_browser
from tests.conftest import ARTIFACTS
from tests.fakes import FakeDetector
from tests.label_studio.test_real_server import make_project

playwright = pytest.importorskip("playwright.sync_api")

# coffee is 600 x 400 (not square: percent differs per axis); a cup-sized box turned 30 degrees
BOX = (200.0, 100.0, 440.0, 260.0)
ROTATION = 30.0


def test_a_rotated_box_reaches_label_studio_and_its_labeling_page(label_studio):
    made = aa.rectangle(2, BOX, rotation=ROTATION, score=0.87)
    labels = [aa.label_spec("cat", 2, type="rectangle")]
    client, project, tasks = make_project(label_studio, "rotated boxes")
    report = annotate_project(
        label_studio.url,
        label_studio.token,
        project.id,
        FakeDetector(lambda ctx, img: [made], labels=labels),
        progress=False,
    )
    assert report.success and report.images_processed == 3
    task = tasks["coffee"]
    (prediction,) = client.predictions.list(task=task.id)
    (region,) = prediction.result
    v = region["value"]
    assert region["type"] == "rectanglelabels" and v["rectanglelabels"] == ["cat"]
    assert (region["original_width"], region["original_height"]) == (600, 400)
    assert v["rotation"] == pytest.approx(ROTATION)  # the server kept the rotation
    assert {k: v[k] for k in ("x", "y", "width", "height", "rotation")} == pytest.approx(
        rectangle_value(made, (600, 400))
    )
    back = rectangle_from_value(v, (600, 400), label_id=2)  # and it is the same box
    assert back.points == pytest.approx(BOX) and back.rotation == pytest.approx(ROTATION)

    with playwright_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        label_studio.log_in(page)
        page.goto(f"{label_studio.url}/projects/{project.id}/data?task={task.id}")
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            text = page.inner_text("body")
            if "0.87" in text:
                break
            time.sleep(1)
        time.sleep(1)  # let the canvas finish drawing the region
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "label-studio-rotated-box.png"))
    # the Regions panel lists the predicted region with its label and score
    assert "cat\n0.87" in text, "the rotated region is not rendered in the Regions panel"
