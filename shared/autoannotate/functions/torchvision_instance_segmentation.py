"""torchvision instance segmentation (Mask R-CNN): masks, or polygons when ``conv_mask_to_poly``.

A pixel belongs to an instance when the model's mask probability is >= ``mask_threshold`` (0.5).
"""

from __future__ import annotations

from typing import Any

from ..interface import DetectionFunctionContext, label_spec
from ..masks import mask_to_polygon
from ..registry import torchvision_record
from ..shapes import Shape, mask, polygon
from ._torchvision import TorchvisionFunctionBase, torchvision_create


class TorchvisionInstanceSegmentationFunction(TorchvisionFunctionBase):
    """A torchvision instance segmentation model by name (``maskrcnn_resnet50_fpn[_v2]``).

    Parameters as in ``torchvision_detection``, plus ``mask_threshold`` (probability cut-off).
    """

    kinds = ("instance segmentation",)

    def __init__(
        self, model_name: str = "maskrcnn_resnet50_fpn_v2", *args: Any, mask_threshold: float = 0.5, **kwargs: Any
    ) -> None:
        self.mask_threshold = float(mask_threshold)
        super().__init__(model_name, *args, **kwargs)

    def make_labels(self) -> list:
        # "any": the same label carries masks or polygons depending on conv_mask_to_poly.
        return [label_spec(self.categories[i], i, type="any") for i in self.label_ids()]

    def convert(self, context: DetectionFunctionContext, output: dict, size: tuple[int, int]) -> list[Shape]:
        scores, labels = output["scores"], output["labels"]
        shapes: list[Shape] = []
        for i in self.keep(context, scores, labels):
            bitmap = (output["masks"][i, 0] >= self.mask_threshold).numpy()
            if context.conv_mask_to_poly:
                poly = mask_to_polygon(bitmap)
                if poly is not None:
                    shapes.append(polygon(int(labels[i]), poly, score=float(scores[i])))
            else:
                shapes.append(mask(int(labels[i]), bitmap, score=float(scores[i])))
        return shapes


create = torchvision_create(TorchvisionInstanceSegmentationFunction)


#: This function in the registry (:mod:`autoannotate.registry`); torchvision fetches its weights.
FUNCTION = torchvision_record("torchvision_instance_segmentation")
