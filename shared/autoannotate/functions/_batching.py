"""The base of detection functions that run several images per model call."""

from __future__ import annotations

from collections.abc import Sequence

import PIL.Image

from ..interface import DetectionFunctionContext
from ..shapes import Shape


class BatchedDetection:
    """``detect`` is a batch of one; ``detect_batch`` (the ``BatchDetection`` capability) hands
    the images, in RGB, to :meth:`detect_rgb`, which subclasses write."""

    def detect(self, context: DetectionFunctionContext, image: PIL.Image.Image) -> list[Shape]:
        return self.detect_batch([context], [image])[0]

    def detect_batch(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        return self.detect_rgb(contexts, [im if im.mode == "RGB" else im.convert("RGB") for im in images])

    def detect_rgb(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list[Shape]]:
        """One list of shapes per RGB image, in order."""
        raise NotImplementedError
