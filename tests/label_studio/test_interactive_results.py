"""Issue 24: what an interactive function returns is validated like detections (count, mask size,
dtype and dimensions, score), and the backend answers a clear error naming what was returned
instead of crashing or sending a mask of the wrong size."""

from __future__ import annotations

import numpy as np
import pytest

from autoannotate import SegmentationResult
from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher
from autoannotate.label_studio.app import Settings, create_app
from tests.label_studio.test_protocol import CONFIG, click, rect, task

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

W, H = 60, 40  # the size of test_protocol's task images


class Returns:
    """An interactive function that returns ``make(prompt)`` whatever the image."""

    model_version = "returns"

    def __init__(self, make):
        self.make = make

    def encode(self, ctx, image):
        return image.size

    def segment(self, ctx, encoding, prompt):
        return self.make(prompt)


def disk(w=W, h=H, dtype=bool):
    yy, xx = np.mgrid[:h, :w]
    return ((xx - w // 2) ** 2 + (yy - h // 2) ** 2 <= 64).astype(dtype)


def ask(make, context):
    backend = Backend(interactive=Returns(make), fetcher=ImageFetcher(FetchPolicy()), encode_ahead=False)
    client = TestClient(create_app(Settings(), backend=backend), raise_server_exceptions=False)
    return client.post("/predict", json={"tasks": [task(3)], "label_config": CONFIG, "params": {"context": context}})


ONE_CLICK = {"result": [click(50, 50)]}
TWO_BOXES = {"result": [rect(10, 10, 30, 30), rect(50, 50, 30, 30)]}


@pytest.mark.parametrize(
    "make, context, message",
    [
        (lambda p: [], ONE_CLICK, "segment() on 'task 3' returned 0 results for 1 object(s)"),
        (lambda p: [SegmentationResult(disk())], TWO_BOXES, "returned 1 results for 2 object(s)"),
        (lambda p: SegmentationResult(disk()), ONE_CLICK, "must return a list of SegmentationResult"),
        (lambda p: [disk()], ONE_CLICK, "result #0: the function returned a ndarray, not a SegmentationResult"),
        (lambda p: [SegmentationResult(disk(W, H - 1))], ONE_CLICK, "mask of 60x39 pixels (WxH) for an image of 60x40"),
        (lambda p: [SegmentationResult(disk(H, W))], ONE_CLICK, "mask of 40x60 pixels (WxH) for an image of 60x40"),
        (lambda p: [SegmentationResult(disk(dtype=np.uint8))], ONE_CLICK, "2-D boolean array (height x width)"),
        (
            lambda p: [SegmentationResult(np.stack([disk()] * 3, -1))],
            ONE_CLICK,
            "a 3-D bool array of shape (40, 60, 3)",
        ),
        (lambda p: [SegmentationResult([[True]])], ONE_CLICK, "returned a list"),
        (lambda p: [SegmentationResult(disk(), score=1.5)], ONE_CLICK, "score must be None or a number in [0, 1]"),
        (lambda p: [SegmentationResult(disk(), score=float("nan"))], ONE_CLICK, "returned nan"),
    ],
)
def test_a_broken_interactive_result_is_a_clear_error(make, context, message):
    r = ask(make, context)
    assert r.status_code == 500, r.text
    error = r.json()["error"]
    assert error.startswith("function broke the protocol: segment() on 'task 3'") and message in error


@pytest.mark.parametrize("score", [None, 0.0, 1.0, np.float32(0.75)])
def test_good_results_pass_with_or_without_a_score(score):
    r = ask(lambda p: [SegmentationResult(disk(), score=score)] * (len(p.boxes) or 1), ONE_CLICK)
    assert r.status_code == 200, r.text
    regions = r.json()["results"][0]["result"]
    assert {reg["type"] for reg in regions} == {"brushlabels", "polygonlabels"}
    assert all(("score" in reg) == (score is not None) for reg in regions)
    two = ask(lambda p: [SegmentationResult(disk(), score=score)] * (len(p.boxes) or 1), TWO_BOXES)
    assert two.status_code == 200 and len(two.json()["results"][0]["result"]) == 4  # 2 masks x 2 controls
