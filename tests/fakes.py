"""Tiny detection functions for fast tests."""

from __future__ import annotations

from collections.abc import Callable

import PIL.Image

import autoannotate as aa


class FakeDetector:
    """Returns whatever ``make(context, image)`` returns; labels 'cat'(0) and 'dog'(1) by default."""

    def __init__(self, make: Callable | None = None, labels: list | None = None) -> None:
        self.spec = aa.DetectionFunctionSpec(
            labels=labels or [aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("dog", 1, type="rectangle")]
        )
        self.make = make or (lambda ctx, img: [aa.rectangle(0, [1, 1, 5, 5], score=0.9)])
        self.calls: list[str] = []

    def detect(self, context: aa.DetectionFunctionContext, image: PIL.Image.Image) -> list:
        self.calls.append(context.frame_name)
        return self.make(context, image)


class StillTracker:
    """A deterministic tracking function: the object stays where it was. (OpenCV's MIL samples at
    random from generators whose state depends on what the process did before, so two runs of it
    can differ; tests about plumbing rather than tracking quality use this.)"""

    spec = aa.TrackingFunctionSpec(supported_shape_types=("rectangle",))
    model_version = "still"

    def init_tracking_state(self, context, pp_image, shape):
        return shape

    def track(self, context, pp_image, state):
        return state
