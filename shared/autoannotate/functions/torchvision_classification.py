"""torchvision image classifiers (ResNet, EfficientNet, ViT, ...): tags with softmax scores.

Returns the ``topk`` most likely classes (default 1) whose probability reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import PIL.Image

from ..devices import to_cpu_float, to_model
from ..errors import BadParameterError
from ..interface import DetectionFunctionContext, label_spec
from ..registry import torchvision_record
from ..shapes import Shape, tag
from ._torchvision import TorchvisionFunctionBase, torchvision_create


class TorchvisionClassificationFunction(TorchvisionFunctionBase):
    """Any torchvision classification model by name; ``topk`` tags per image. ``device`` /
    ``dtype``: see :mod:`autoannotate.devices`."""

    cast_weights = True
    kinds = ("classification",)

    def __init__(self, model_name: str, *args: Any, topk: int = 1, **kwargs: Any) -> None:
        if int(topk) < 1:
            raise BadParameterError(
                f"topk must be >= 1 (the number of most likely classes to tag per image), got {topk}"
            )
        self.topk = int(topk)
        super().__init__(model_name, *args, **kwargs)

    def make_labels(self) -> list:
        return [label_spec(self.categories[i], i, type="tag") for i in self.label_ids()]

    def run_model(self, images: Sequence[PIL.Image.Image]) -> list[dict]:
        torch = self._torch
        with torch.inference_mode():
            batch = to_model(torch.stack([self.transforms(im) for im in images]), self.model)
            probs = to_cpu_float(self.model(batch)).softmax(dim=1)
        return [{"probs": p} for p in probs]

    def convert(self, context: DetectionFunctionContext, output: dict, size: tuple[int, int]) -> list[Shape]:
        probs = output["probs"]
        values, indexes = probs.topk(min(self.topk, probs.numel()))
        t = context.conf_threshold
        return [
            tag(int(i), score=float(v))
            for v, i in zip(values.tolist(), indexes.tolist())
            if (t is None or v >= t) and self.categories[int(i)] not in ("N/A", "__background__")
        ]


create = torchvision_create(TorchvisionClassificationFunction)


#: This function in the registry (:mod:`autoannotate.registry`); torchvision fetches its weights.
FUNCTION = torchvision_record("torchvision_classification")
