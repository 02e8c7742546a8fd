"""torchvision object detectors (Faster R-CNN, RetinaNet, FCOS, SSD, ...): rectangles with scores.

Label names come from the weights' metadata. Usage:
``autoannotate annotate photos/ --function torchvision_detection -p model_name=str:fasterrcnn_resnet50_fpn_v2``.
"""

from __future__ import annotations

from ..interface import DetectionFunctionContext, label_spec
from ..registry import torchvision_record
from ..shapes import Shape, rectangle
from ._torchvision import TorchvisionFunctionBase, torchvision_create


class TorchvisionDetectionFunction(TorchvisionFunctionBase):
    """Any torchvision detection model by name (``torchvision.models.list_models(torchvision.models.detection)``).

    ``weights_name``: a member of the model's weights enum (``DEFAULT``, ``COCO_V1``, ...).
    ``pretrained=False``: same architecture, random weights (tests). ``device`` (auto, cpu, cuda,
    cuda:N) and ``dtype`` (float32, bfloat16, float16; run under autocast): see :mod:`autoannotate.devices`.
    Other parameters go to the model constructor (e.g. ``box_score_thresh=0.3``), typed as torchvision
    declares them; one it does not take, or a model of another kind, is a ``BadParameterError``.
    """

    def make_labels(self) -> list:
        return [label_spec(self.categories[i], i, type="rectangle") for i in self.label_ids()]

    def convert(self, context: DetectionFunctionContext, output: dict, size: tuple[int, int]) -> list[Shape]:
        boxes, scores, labels = output["boxes"], output["scores"], output["labels"]
        return [
            rectangle(int(labels[i]), boxes[i].tolist(), score=float(scores[i]))
            for i in self.keep(context, scores, labels)
        ]


create = torchvision_create(TorchvisionDetectionFunction)


#: This function in the registry (:mod:`autoannotate.registry`); torchvision fetches its weights.
FUNCTION = torchvision_record("torchvision_detection")
