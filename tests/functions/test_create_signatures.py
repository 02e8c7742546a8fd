"""What users see of the predefined functions' ``create``: the parameters ``-p name=value``,
the FiftyOne form and ``autoannotate functions`` read through ``inspect.signature`` (names,
order, annotations, defaults), the error for an unknown name, and the docstring naming every
parameter. Pinned because several of these signatures are shared rather than written per module."""

from __future__ import annotations

import importlib
import inspect

import pytest

from autoannotate.errors import BadParameterError
from autoannotate.loading import describe_parameters, load_function

OPEN_VOCAB = "classes: Any = None, prompts: Any = None, checkpoint: str | None = None, pretrained: bool = True, "
OPEN_VOCAB += "device: str | None = None, dtype: str | None = None, "
TORCHVISION = "weights_name: str = 'DEFAULT', pretrained: bool = True, device: str | None = None, "

SIGNATURES = {
    "owlv2": OPEN_VOCAB + "default_conf_threshold: float = 0.1, nms_threshold: float = 0.3, max_detections: int = 100",
    "grounding_dino": OPEN_VOCAB
    + "default_conf_threshold: float = 0.3, nms_threshold: float = 0.5, max_detections: int = 100",
    "sam3": OPEN_VOCAB
    + "default_conf_threshold: float = 0.3, mask_threshold: float = 0.5, nms_threshold: float = 0.5, "
    "max_detections: int = 100, pairs_per_pass: int = 8",
    "ultralytics": "model: str | None = None, task: str | None = None, keypoints: Any = None, device: str | None = None, "
    "dtype: str | None = None, imgsz: int | None = None, iou: float | None = None, max_det: int = 300, topk: int = 1, "
    "keypoint_threshold: float = 0.5",
    "torchvision_detection": "model_name: str, " + TORCHVISION + "dtype: str | None = None, **kwargs",
    "torchvision_classification": "model_name: str, "
    + TORCHVISION
    + "topk: int = 1, dtype: str | None = None, **kwargs",
    "torchvision_instance_segmentation": "model_name: str = 'maskrcnn_resnet50_fpn_v2', "
    + TORCHVISION
    + "mask_threshold: float = 0.5, dtype: str | None = None, **kwargs",
    "torchvision_keypoint_detection": "model_name: str = 'keypointrcnn_resnet50_fpn', "
    + TORCHVISION
    + "dtype: str | None = None, **kwargs",
    "grabcut": "iterations: int = 5, max_side: int = 512, click_radius: int = 0, margin: float = 0.15, "
    "fallback: bool = True, min_fill: float = 0.15",
}


def _create(name: str):
    return importlib.import_module(f"autoannotate.functions.{name}").create


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_parameters_as_users_see_them(name):
    assert describe_parameters(_create(name)) == "Parameters: " + SIGNATURES[name]


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_every_parameter_can_be_passed_by_name_or_position(name):
    params = inspect.signature(_create(name)).parameters.values()
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.VAR_KEYWORD) for p in params)


@pytest.mark.parametrize("name", ["owlv2", "grounding_dino", "sam3"])
def test_open_vocabulary_docstring_names_every_parameter(name):
    create = _create(name)
    doc = inspect.getdoc(create) or ""
    assert doc.splitlines()[0].endswith("on transformers.")
    for p in inspect.signature(create).parameters:
        assert f"``{p}" in doc, p


@pytest.mark.parametrize("name", ["owlv2", "grounding_dino", "sam3", "ultralytics", "grabcut"])
def test_unknown_parameter_is_refused_with_the_list(name):
    with pytest.raises(BadParameterError, match=r"unexpected keyword argument 'colour'.*Parameters: "):
        load_function(name, colour="red")


@pytest.mark.parametrize("name", ["owlv2", "grounding_dino", "sam3"])
def test_open_vocabulary_needs_classes_before_any_weights(name):
    with pytest.raises(BadParameterError, match="open-vocabulary: give the class names"):
        _create(name)(checkpoint="/nonexistent/weights")


@pytest.mark.parametrize("name", ["owlv2", "grounding_dino", "sam3"])
def test_open_vocabulary_create_called_directly(name):
    """Python callers: an unknown name is a ``TypeError`` naming ``create()`` as for any function,
    and the first positional argument is ``classes``."""
    with pytest.raises(TypeError, match=r"^create\(\) got an unexpected keyword argument 'colour'$"):
        _create(name)(colour="red")
    with pytest.raises(BadParameterError, match="classes is empty"):
        _create(name)([])


def test_torchvision_create_called_directly():
    """Positional ``model_name``, the class's own option by name, the rest to the model constructor."""
    pytest.importorskip("torchvision")
    from autoannotate.functions import torchvision_classification, torchvision_detection

    fn = torchvision_detection.create("fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, box_score_thresh=0.2)
    assert fn.model.roi_heads.score_thresh == 0.2
    assert fn.model_version == "fasterrcnn_mobilenet_v3_large_320_fpn.COCO_V1.random"
    with pytest.raises(ValueError, match="topk must be >= 1"):
        torchvision_classification.create("resnet18", topk=0)
    with pytest.raises(TypeError, match=r"^create\(\) missing a required argument: 'model_name'$"):
        torchvision_classification.create()
