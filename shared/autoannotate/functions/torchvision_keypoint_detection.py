"""torchvision keypoint detection (Keypoint R-CNN): skeletons; keypoints the model marks
invisible (visibility 0) are marked occluded."""

from __future__ import annotations

from typing import Any

from ..interface import DetectionFunctionContext, keypoint_spec, skeleton_label_spec
from ..registry import torchvision_record
from ..shapes import Shape, keypoint, skeleton
from ._torchvision import TorchvisionFunctionBase, torchvision_create


class TorchvisionKeypointDetectionFunction(TorchvisionFunctionBase):
    """A torchvision keypoint model by name; parameters as in ``torchvision_detection``."""

    kinds = ("keypoint detection",)

    def __init__(self, model_name: str = "keypointrcnn_resnet50_fpn", *args: Any, **kwargs: Any) -> None:
        super().__init__(model_name, *args, **kwargs)

    def make_labels(self) -> list:
        names = self.weights.meta["keypoint_names"]
        return [
            skeleton_label_spec(self.categories[i], i, [keypoint_spec(n, k) for k, n in enumerate(names)])
            for i in self.label_ids()
        ]

    def convert(self, context: DetectionFunctionContext, output: dict, size: tuple[int, int]) -> list[Shape]:
        scores, labels, kps = output["scores"], output["labels"], output["keypoints"]
        return [
            skeleton(
                int(labels[i]),
                [
                    keypoint(k, [float(x), float(y)], occluded=float(v) == 0.0)
                    for k, (x, y, v) in enumerate(kps[i].tolist())
                ],
                score=float(scores[i]),
            )
            for i in self.keep(context, scores, labels)
        ]


create = torchvision_create(TorchvisionKeypointDetectionFunction)


#: This function in the registry (:mod:`autoannotate.registry`); torchvision fetches its weights.
FUNCTION = torchvision_record("torchvision_keypoint_detection")
