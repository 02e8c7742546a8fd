"""The auto_label operator in the real FiftyOne App, driven by headless Chromium (Playwright):
the form's checks while typing, the "done / total samples" progress, and the result view."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from autoannotate.fiftyone import list_runs
from tests.browser import chromium, playwright_browser
from tests.conftest import ARTIFACTS
from tests.fiftyone.test_app import serve_app

fo = pytest.importorskip("fiftyone")
playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def app_dataset(request, coco128_dataset, models_env, tmp_path):
    """The App serving 24 COCO photos (with ground truth) and one broken file. Parametrize
    indirectly with ``{"legacy_orchestrators": True}`` for an App that schedules delegated runs
    for ``fiftyone delegated launch`` (FiftyOne 1.22 otherwise asks for an orchestrator)."""
    chromium()
    env = dict(os.environ)
    if getattr(request, "param", {}).get("legacy_orchestrators"):
        env["FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"] = "true"
    name = "aa-app-auto-label"
    ds = coco128_dataset.sort_by("filepath").limit(24).clone(name)
    ds.persistent = True
    broken = tmp_path / "broken-photo.jpg"
    broken.write_bytes(b"this is not a JPEG")
    ds.add_sample(fo.Sample(filepath=str(broken)))
    try:
        with serve_app(name, env=env) as url:
            yield url, ds
    finally:
        ds.delete()


@pytest.fixture
def page():
    with playwright_browser() as b:
        yield b.new_page(viewport={"width": 1400, "height": 1000})


def open_auto_label(page, url, ds):
    """The dataset page with the auto_label form open (via the operator browser)."""
    page.goto(f"{url}/datasets/{ds.name}")
    page.wait_for_selector("[data-cy=action-browse-operations]", timeout=90_000)
    page.wait_for_selector("[data-cy=looker]", timeout=90_000)
    dismiss = page.get_by_text("Dismiss", exact=True)
    if dismiss.count():
        dismiss.first.click()
    page.click("[data-cy=action-browse-operations]")
    page.keyboard.type("Auto-label")
    page.get_by_text("Auto-label with a model").first.click()
    modal = page.locator("[data-cy=operators-prompt-modal]")
    modal.get_by_text("Label field", exact=True).first.wait_for(timeout=60_000)
    return modal


def field(modal, label):
    """The input under the form field labelled ``label``."""
    return modal.locator(f"xpath=.//*[normalize-space(text())='{label}']/following::input[1]")


def wait_text(modal, wanted, timeout=60.0):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = modal.inner_text()
        if all(w in text for w in wanted):
            return text
        time.sleep(0.3)
    raise AssertionError(f"{[w for w in wanted if w not in text]} not shown; the form shows:\n{text}")


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def test_form_checks_classes_and_thresholds_while_typing(app_dataset, page):
    url, ds = app_dataset
    modal = open_auto_label(page, url, ds)
    field(modal, "Classes").fill("stop_sign:bbox, person:bbox")
    field(modal, "Discard below").fill("0.9")
    text = wait_text(modal, ["did you mean 'stop sign'?", "the upper threshold must be at or above the lower"])
    shot(page, "fiftyone-app-auto-label-form-errors.png")
    modal.get_by_text("the upper threshold must be at or above the lower").first.scroll_into_view_if_needed()
    shot(page, "fiftyone-app-auto-label-form-threshold-error.png")
    assert "unknown classes ['stop_sign']" in text
    # the App disables Execute when it has the form's errors, which may come a moment after their text
    playwright.expect(modal.get_by_role("button", name="Execute")).to_be_disabled(timeout=30_000)
    # fixed: the errors go and the form can be executed
    field(modal, "Classes").fill("stop sign:bbox, person:bbox")
    field(modal, "Discard below").fill("0.3")
    deadline = time.monotonic() + 30
    while any(w in modal.inner_text() for w in ("did you mean", "must be at or above")) and time.monotonic() < deadline:
        time.sleep(0.3)
    text = modal.inner_text()
    assert "did you mean" not in text and "must be at or above" not in text
    playwright.expect(modal.get_by_role("button", name="Execute")).to_be_enabled(timeout=30_000)
    assert ds.get_field("auto_labels") is None  # nothing ran


def test_run_shows_progress_then_the_report(app_dataset, page):
    url, ds = app_dataset
    total = len(ds)
    modal = open_auto_label(page, url, ds)
    field(modal, "Images per model call").fill("1")  # many small steps: progress to watch
    modal.locator(
        "xpath=.//*[normalize-space(text())='Evaluate against ground truth field']/following::*[@role='combobox'][1]"
    ).click()
    page.get_by_role("option", name="ground_truth").click()
    time.sleep(1)
    modal.get_by_role("button", name="Execute").click()
    counts = []
    deadline = time.monotonic() + 300
    text = ""
    while time.monotonic() < deadline:
        text = page.inner_text("body")  # the progress dialog replaces the form
        m = re.search(rf"(\d+) / {total} samples", text)
        if m:
            counts.append(int(m.group(1)))
            if len(counts) == 1 or (counts[-1] >= total // 3 and counts[-2] < total // 3):
                shot(page, "fiftyone-app-auto-label-progress.png")  # the last one taken: a third done
        if "Run key" in text:
            break
        time.sleep(0.1)
    time.sleep(1)  # let the table draw
    text = page.inner_text("body")
    shot(page, "fiftyone-app-auto-label-result.png")
    (ARTIFACTS / "fiftyone-app-auto-label-result.txt").write_text(text)
    # progress: "done / total samples" counted up while it ran
    assert counts, "no 'done / total samples' progress was shown"
    assert counts == sorted(counts) and counts[0] < total, counts
    # the report: counts, run key, needs-review view, evaluation, failures with file and reason
    run = list_runs(ds)[-1]
    report = run["report"]
    assert run["run_key"] in text
    assert f"Samples attempted:\n\n{total}" in text and f"Needs review:\n\n{report['needs_review']}" in text
    failure = report["failures"][0]
    assert failure["image"].endswith("broken-photo.jpg")
    assert re.search(rf"broken-photo\.jpg\s+{re.escape(failure['reason'])}", text), "failure row without file/reason"
    assert "No failures added yet" not in text and "Add failures" not in text
    evaluation = report["extra"]["evaluation"]
    assert "mAP" in text and f"{evaluation['mAP']}" in text and "ground_truth" in text
    view_name = report["extra"]["needs_review_view"]
    assert view_name in text
    # the button opens the needs-review view
    page.get_by_role("button", name=re.compile("Open the needs-review view")).click()
    selector = page.locator("[data-cy=saved-views-selection]")
    deadline = time.monotonic() + 60
    while view_name not in selector.inner_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    # the evaluation is a FiftyOne evaluation: the report's other button opens the Model Evaluation panel
    eval_key = evaluation["eval_key"]
    ds.reload()  # the App's server process ran the evaluation: this process's copy is older
    assert ds.has_evaluation(eval_key)
    page.get_by_role("button", name="Open the Model Evaluation panel").click()
    page.get_by_role("button", name="Done").click()
    deadline = time.monotonic() + 60
    while eval_key not in page.inner_text("body") and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    shot(page, "fiftyone-app-auto-label-needs-review-view.png")
    body = page.inner_text("body")
    assert view_name in selector.inner_text()
    assert f"{len(ds.load_saved_view(view_name))} samples" in body
    assert "Model Evaluation" in body and eval_key in body


@pytest.mark.parametrize("app_dataset", [{"legacy_orchestrators": True}], indirect=True)
def test_delegate_choice_queues_the_run_and_the_runs_list_shows_its_progress(app_dataset, page):
    from fiftyone.operators.delegated import DelegatedOperationService

    url, ds = app_dataset
    total = len(ds)
    modal = open_auto_label(page, url, ds)
    modal.get_by_text("Run in the background (delegated)", exact=True).click()
    time.sleep(2)  # the App resolves the execution options again: delegated only
    modal.get_by_role("button", name="Schedule").click()  # delegated only: the App offers Schedule
    deadline = time.monotonic() + 60
    svc = DelegatedOperationService()
    queued = []
    while not queued and time.monotonic() < deadline:
        queued = [op for op in svc.list_operations(dataset_name=ds.name) if op.run_state == "queued"]
        time.sleep(0.5)
    assert len(queued) == 1, "the form's delegate choice did not queue the run"
    assert ds.get_field("auto_labels") is None  # queued, not run
    # a worker process, as `fiftyone delegated launch` runs them (that command never returns)
    worker = (
        "import sys; from fiftyone.operators.delegated import DelegatedOperationService as S; "
        "S().execute_queued_operations(dataset_name=sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", worker, ds.name], check=True, timeout=600)
    done = svc.get(queued[0].id)
    assert done.run_state == "completed", done.result.error if done.result else done
    run_key = list_runs(ds)[-1]["run_key"]
    # the App's runs list: the run and the delegated operation with its "done / total samples"
    page.click("[data-cy=action-browse-operations]")
    page.keyboard.type("List auto-label runs")
    page.get_by_text("List auto-label runs").first.click()
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        if run_key in text and f"{total} / {total} samples" in text:
            break
        execute = page.get_by_role("button", name="Execute")
        if execute.count() and execute.first.is_enabled():
            execute.first.click()
        time.sleep(0.5)
    time.sleep(1)
    shot(page, "fiftyone-app-auto-label-delegated-runs.png")
    assert run_key in text and f"{total} / {total} samples" in text and "completed" in text
