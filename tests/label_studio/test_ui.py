"""What a person sees in Label Studio 1.23's own UI (headless Chromium driven by Playwright, real
server) when connecting the backend goes wrong: Settings > Model > Connect Model > "Validate and
Save" shows only ``str(requests.HTTPError)`` of our ``/setup`` answer, so the reason must be in
the HTTP reason phrase. Screenshots are saved under test-artifacts/."""

from __future__ import annotations

import contextlib
import time

import pytest

from autoannotate.label_studio import Backend, ImageFetcher
from autoannotate.label_studio.config import LabelConfigError
from tests.browser import playwright_browser
from tests.conftest import ARTIFACTS
from tests.fakes import FakeDetector

playwright = pytest.importorskip("playwright.sync_api")


UNMAPPED = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Horse"/></RectangleLabels>
</View>"""

MAPPED = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
</View>"""


@pytest.fixture(scope="module")
def browser():
    with playwright_browser() as b:
        yield b


@pytest.fixture
def page(label_studio, browser):
    """A logged-in page (a fresh browser context per test)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    label_studio.log_in(page)
    yield page
    context.close()


def warm(backend: Backend, config: str) -> None:
    """Parse a config once before Label Studio calls /setup: the first parse imports
    label_studio_sdk.label_interface (seconds on a loaded machine) and Label Studio gives /setup
    a 3 s read timeout, after which it shows "Read timed out" instead of our answer."""
    with contextlib.suppress(LabelConfigError):
        backend.controls(config)


def validate_and_save(page, ls_url: str, project_id: int, backend_url: str, shot: str) -> str:
    """Settings > Model > Connect Model, fill Name and Backend URL, Validate and Save; returns the
    page's text once Label Studio shows the outcome (a validation error or the connected card).
    Label Studio gives /setup 3 s: on a loaded machine it may show "Read timed out" instead of
    our answer, so that one outcome is tried once more, from a fresh page."""
    text = ""
    for _attempt in range(2):
        page.goto(f"{ls_url}/projects/{project_id}/settings/ml")
        page.locator("button:has-text('Connect Model')").first.click()  # its aria-label differs
        page.fill("input[name=title]", "autoannotate")
        page.fill("input[name=url]", backend_url)
        page.locator("button:has-text('Validate and Save')").click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = page.inner_text("body")
            if "Validation error" in text or "Connected" in text:
                break
            time.sleep(0.5)
        if "Read timed out" not in text:
            break
    time.sleep(1)  # let the error dialog finish drawing for the screenshot
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"))
    text = page.inner_text("body")
    (ARTIFACTS / f"{shot}.txt").write_text(text)
    return text


def test_validate_and_save_shows_which_labels_do_not_map(label_studio, page, serve_backend):
    from tests.label_studio.test_protocol import CountingGrabCut

    # labels 'cat', 'dog'; click-to-mask too, as by default, which a box-only config cannot use
    backend = Backend(function=FakeDetector(), interactive=CountingGrabCut())
    warm(backend, UNMAPPED)
    running = serve_backend(backend)
    project = label_studio.client().projects.create(title="ui: unmapped labels", label_config=UNMAPPED)
    text = validate_and_save(page, label_studio.url, project.id, running.url, "label-studio-ui-unmapped-labels")
    assert "Validation error" in text, f"Label Studio accepted a config none of whose labels map:\n{text[-1500:]}"
    # our reason, as Label Studio shows it: "422 Client Error: <reason phrase> for url: .../setup"
    assert "422 Client Error: none of the function's labels maps onto the labeling config" in text, text[-1500:]
    assert "['cat', 'dog']" in text and "['Horse']" in text, "both sides' labels should be on screen"
    assert "[error " in text, "the error id (to find the backend's log line) should be on screen"
    assert 'predicted_values="cat"' in text, "the fix must be readable (Label Studio renders the reason as HTML)"
    assert "Unprocessable Entity for url" not in text
    # the reason is the labels; click-to-mask is only offered (the toggle was left off here)
    assert "interactive segmentation" not in text, text[-1500:]


def test_validate_and_save_says_the_backend_token_was_rejected(label_studio, page, serve_backend):
    wrong = label_studio.token[:-6] + "XXXXXX"  # a personal access token Label Studio does not accept
    backend = Backend(function=FakeDetector(), fetcher=ImageFetcher(label_studio_url=label_studio.url, api_key=wrong))
    warm(backend, MAPPED)
    running = serve_backend(backend)
    project = label_studio.client().projects.create(title="ui: rejected token", label_config=MAPPED)
    text = validate_and_save(page, label_studio.url, project.id, running.url, "label-studio-ui-rejected-token")
    assert "Validation error" in text, f"Label Studio connected a backend whose token is rejected:\n{text[-1500:]}"
    assert "424 Client Error: LABEL_STUDIO_API_KEY was rejected by " + label_studio.url in text, text[-1500:]
    assert "Personal Access Token" in text, "the message should say how to get a working token"
    # the menu path reads as written (a ">" would vanish: Label Studio renders the reason as HTML)
    assert "(Account & Settings, then Personal Access Token)" in text, text[-1500:]
    assert "[error " in text
