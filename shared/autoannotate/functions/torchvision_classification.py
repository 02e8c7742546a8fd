"""torchvision image classifiers (ResNet, EfficientNet, ViT, ...): tags with softmax scores.

Returns the ``topk`` most likely classes (default 1) whose probability reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import PIL.Image

from ..interface import DetectionFunctionContext, label_spec
from ..registry import FunctionRecord
from ..shapes import Shape, tag
from ._torchvision import TorchvisionFunctionBase


class TorchvisionClassificationFunction(TorchvisionFunctionBase):
    def __init__(self, *args: Any, topk: int = 1, **kwargs: Any) -> None:
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.topk = int(topk)
        super().__init__(*args, **kwargs)

    def make_labels(self) -> list:
        return [label_spec(self.categories[i], i, type="tag") for i in self.label_ids()]

    def run_model(self, images: Sequence[PIL.Image.Image]) -> list[dict]:
        torch = self._torch
        with torch.inference_mode():
            batch = torch.stack([self.transforms(im) for im in images]).to(self.device)
            probs = self.model(batch).softmax(dim=1).cpu()
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


def create(
    model_name: str,
    weights_name: str = "DEFAULT",
    pretrained: bool = True,
    device: str = "cpu",
    topk: int = 1,
    **kwargs: Any,
) -> TorchvisionClassificationFunction:
    """Any torchvision classification model by name; ``topk`` tags per image."""
    return TorchvisionClassificationFunction(
        model_name, weights_name, pretrained=pretrained, device=device, topk=topk, **kwargs
    )


#: This function in the registry (:mod:`autoannotate.registry`); torchvision fetches its weights.
FUNCTION = FunctionRecord(
    name="torchvision_classification",
    kind="detection",
    extras=("torch",),
    requires=("torch", "torchvision"),
    license="BSD-3-Clause (torchvision; see each model's weights)",
)
