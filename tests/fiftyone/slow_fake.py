"""A weight-free detection function slowed down per image, for tests that run it in child
processes (two runs at once, killing a run part-way through). One 'cat' box per image."""

import time

import autoannotate as aa


class SlowBox:
    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("cat", 0, type="rectangle")])
    model_version = "slow-box"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def detect(self, context, image):
        time.sleep(self.delay)
        w, h = image.size
        return [aa.rectangle(0, [w * 0.25, h * 0.25, w * 0.75, h * 0.75], score=0.9)]


def create(delay: float = 0.0) -> SlowBox:
    return SlowBox(delay)
