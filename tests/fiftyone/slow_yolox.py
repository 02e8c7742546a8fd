"""YOLOX-Nano slowed down per image, so a test can kill a run part-way through."""

import time

from autoannotate.functions import yolox


class Slow:
    def __init__(self, delay):
        self.inner = yolox.create()
        self.spec = self.inner.spec
        self.model_version = self.inner.model_version
        self.delay = delay

    def detect(self, context, image):
        time.sleep(self.delay)
        return self.inner.detect(context, image)


def create(delay: float = 0.0):
    return Slow(delay)
