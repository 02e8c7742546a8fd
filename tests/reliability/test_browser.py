"""End to end in a real browser (headless Chromium driven by Playwright): Label Studio's labeling
page shows the backend's pre-annotation regions; the FiftyOne App shows the needs-review labels of
an auto-labelled dataset. Screenshots are saved under test-artifacts/."""

from __future__ import annotations

import time

import pytest

from tests.browser import playwright_browser
from tests.conftest import ARTIFACTS
from tests.fiftyone.test_app import app  # noqa: F401 - the App server fixture

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser():
    with playwright_browser() as b:
        yield b


def test_label_studio_labeling_page_renders_pre_annotations(label_studio, browser, models_env):
    from autoannotate.functions import yolox
    from autoannotate.label_studio import annotate_project
    from tests.label_studio.test_real_server import make_project

    client, project, tasks = make_project(label_studio, "browser check")
    report = annotate_project(label_studio.url, label_studio.token, project.id, yolox.create(), progress=False)
    assert report.images_processed == 3
    task = tasks["astronaut"]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    label_studio.log_in(page)
    page.goto(f"{label_studio.url}/projects/{project.id}/data?task={task.id}")
    deadline = time.monotonic() + 60
    text = ""
    prediction = next(iter(client.predictions.list(task=task.id)))
    score = f"{prediction.result[0]['score']:.2f}"
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        if score in text:
            break
        time.sleep(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "label-studio-pre-annotation.png"))
    (ARTIFACTS / "label-studio-pre-annotation.txt").write_text(text)
    # the Regions panel lists the predicted region with its label and score, under the model's tab
    assert f"Human\n{score}" in text, "the pre-annotation region is not rendered in the Regions panel"
    assert prediction.model_version[:8] in text


def test_fiftyone_app_shows_the_needs_review_labels(app, browser):  # noqa: F811 - the fixture imported above
    """The App on the run's saved needs-review view shows that view and only those labels."""
    url, ds, report = app
    view_name = report.extra["needs_review_view"]
    view = ds.load_saved_view(view_name)
    pending = view.count("auto_labels.detections")
    assert pending == report.needs_review > 0
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    from fiftyone.core.utils import to_slug

    page.goto(f"{url}/datasets/{ds.name}?view={to_slug(view_name)}")
    deadline = time.monotonic() + 60
    text = ""
    shown = f"{len(view)} samples"  # the App's count for the view: samples with labels to review
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        if view_name in text and shown in text:
            break
        time.sleep(1)
    time.sleep(5)  # let the grid draw its thumbnails for the screenshot (the App never goes network-idle)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fiftyone-app-needs-review.png"))
    (ARTIFACTS / "fiftyone-app-needs-review.txt").write_text(text)
    assert view_name in text, "the needs-review saved view is not the one shown"
    assert shown in text, f"expected the App to show {shown!r} for the view"
    assert "auto_labels" in text
