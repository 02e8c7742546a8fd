"""What the torchvision functions take, checked before any image: the model constructor's options
typed as torchvision declares them, the model's kind (classification, detection, ...) against the
function's, ``topk`` and ``weights_backbone``."""

from __future__ import annotations

import pytest

pytest.importorskip("torchvision")

from autoannotate.errors import BadParameterError  # noqa: E402
from autoannotate.loading import load_function, parse_params  # noqa: E402

MOBILE = "model_name=fasterrcnn_mobilenet_v3_large_320_fpn"


def load(name, *params):
    return load_function(name, "detection", **parse_params(["pretrained=false", *params]))


def test_untyped_model_options_take_the_type_torchvision_declares():
    """``box_score_thresh=0.3`` (FasterRCNN's ``box_score_thresh=0.05``) is the float 0.3, ``min_size``
    an int, as if written ``float:0.3`` / ``int:320``."""
    fn = load("torchvision_detection", MOBILE, "box_score_thresh=0.3", "min_size=320", "box_detections_per_img=7")
    heads = fn.model.roi_heads
    assert heads.score_thresh == 0.3 and type(heads.score_thresh) is float
    assert fn.model.transform.min_size == (320,) and heads.detections_per_img == 7
    # what a detector passes on to its GeneralizedRCNNTransform (size_divisible=32)
    fn = load("torchvision_detection", MOBILE, "size_divisible=64")
    assert fn.model.transform.size_divisible == 64
    # a classifier's options (ResNet's zero_init_residual: bool = False) too, also through a subclass
    # whose __init__ passes **kwargs on (QuantizableResNet)
    for model in ("resnet18", "quantized_resnet18"):
        fn = load("torchvision_classification", f"model_name={model}", "zero_init_residual=yes", "topk=2")
        assert fn.topk == 2 and float(fn.model.layer1[0].bn2.weight.detach().abs().sum()) == 0.0


def test_an_option_the_model_does_not_take_is_refused_naming_those_it_takes():
    with pytest.raises(BadParameterError) as e:
        load("torchvision_detection", MOBILE, "box_scor_thresh=0.3")
    assert "takes no option 'box_scor_thresh'" in str(e.value) and "box_score_thresh" in str(e.value)
    with pytest.raises(BadParameterError, match="autoannotate loads the weights itself"):
        load("torchvision_detection", MOBILE, "weights=COCO_V1")
    with pytest.raises(BadParameterError, match="resnet18 cannot be built with .*'layers'"):
        load("torchvision_classification", "model_name=resnet18", "layers=3")


@pytest.mark.parametrize(
    "function, model, message",
    [
        (
            "torchvision_detection",
            "resnet18",
            "classification model, which torchvision_detection does not take (use torchvision_classification for it)",
        ),
        (
            "torchvision_classification",
            "fasterrcnn_resnet50_fpn",
            "detection model, which torchvision_classification does not take (use torchvision_detection for it)",
        ),
        (
            "torchvision_instance_segmentation",
            "fasterrcnn_resnet50_fpn",
            "takes instance segmentation models: maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2",
        ),
        (
            "torchvision_keypoint_detection",
            "maskrcnn_resnet50_fpn",
            "instance segmentation model, which "
            "torchvision_keypoint_detection does not take (use torchvision_instance_segmentation for it)",
        ),
        (
            "torchvision_detection",
            "deeplabv3_resnet50",
            "semantic segmentation model, which torchvision_detection "
            "does not take (no autoannotate function takes it)",
        ),
    ],
)
def test_a_model_of_another_kind_is_refused_naming_the_function_for_it(function, model, message):
    with pytest.raises(BadParameterError, match=r"^" + model) as e:
        load(function, f"model_name={model}")
    assert message in str(e.value)


def test_detection_takes_every_torchvision_detection_model():
    """Mask and Keypoint R-CNN give boxes too: torchvision_detection takes them."""
    fn = load("torchvision_detection", "model_name=keypointrcnn_resnet50_fpn", "min_size=64", "max_size=64")
    assert fn.model_version == "keypointrcnn_resnet50_fpn.COCO_V1.random"


def test_topk_below_one_is_a_bad_parameter():
    with pytest.raises(BadParameterError, match=r"topk must be >= 1 .* got 0"):
        load("torchvision_classification", "model_name=resnet18", "topk=0")


def test_weights_backbone_none_works_and_other_weights_are_refused():
    fn = load("torchvision_detection", MOBILE, "weights_backbone=none")
    assert fn.model_version == "fasterrcnn_mobilenet_v3_large_320_fpn.COCO_V1.random"
    with pytest.raises(BadParameterError, match="only weights_backbone=none is accepted"):
        load("torchvision_detection", MOBILE, "weights_backbone=IMAGENET1K_V1")
