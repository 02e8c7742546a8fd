"""What users see of the predefined functions' ``create``: the parameters ``-p name=value``,
the FiftyOne form and ``autoannotate functions`` read through ``inspect.signature`` (names,
order, annotations, defaults), the error for an unknown name, and the docstring naming every
parameter. Pinned because several of these signatures are shared rather than written per module."""

from __future__ import annotations

import importlib
import inspect
import pydoc
import typing
from pathlib import Path

import pytest

from autoannotate.errors import BadParameterError
from autoannotate.loading import describe_parameters, load_function
from autoannotate.registry import predefined_functions

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
    with pytest.raises(BadParameterError, match="topk must be >= 1"):
        torchvision_classification.create("resnet18", topk=0)
    with pytest.raises(TypeError, match=r"^create\(\) missing a required argument: 'model_name'$"):
        torchvision_classification.create()


def _shown(annotation) -> str:
    """An annotation as ``inspect.signature`` shows it, short names only."""
    return (
        inspect.formatannotation(annotation).rsplit(".", 1)[-1]
        if isinstance(annotation, type)
        else (inspect.formatannotation(annotation))
    )


@pytest.mark.parametrize("name", sorted(predefined_functions()))
def test_type_hints_are_the_real_types_of_the_signature(name):
    """``typing.get_type_hints`` on every predefined ``create`` (built or written) gives the types
    its signature shows, resolved: one per parameter and the return."""
    create = predefined_functions()[name].create
    hints = typing.get_type_hints(create)
    signature = inspect.signature(create)
    assert list(hints) == [*signature.parameters, "return"]
    for p in signature.parameters.values():
        assert not isinstance(hints[p.name], str)
        assert _shown(hints[p.name]) == p.annotation, p.name
    assert _shown(hints["return"]) == signature.return_annotation


def test_type_hints_of_built_creates():
    from autoannotate.functions import sam, torchvision_classification

    assert typing.get_type_hints(sam.create) == {
        "model_type": str,
        "checkpoint": str | None,
        "pretrained": bool,
        "device": str | None,
        "multimask": str,
        "dtype": str | None,
        "return": sam.SamFunction,
    }
    hints = typing.get_type_hints(torchvision_classification.create)
    assert hints["model_name"] is str and hints["topk"] is int and hints["kwargs"] is typing.Any
    assert hints["return"] is torchvision_classification.TorchvisionClassificationFunction


def test_ultralytics_create_is_a_function_returning_the_class():
    """The class is not the ``create``: ``help()`` shows a function of the documented parameters,
    and a wrong call counts the parameters users pass (no ``self``)."""
    from autoannotate.functions import ultralytics

    create = ultralytics.create
    assert inspect.isfunction(create) and create.__name__ == "create"
    assert typing.get_type_hints(create) == {
        "model": str | None,
        "task": str | None,
        "keypoints": typing.Any,
        "device": str | None,
        "dtype": str | None,
        "imgsz": int | None,
        "iou": float | None,
        "max_det": int,
        "topk": int,
        "keypoint_threshold": float,
        "return": ultralytics.UltralyticsFunction,
    }
    text = pydoc.render_doc(create, renderer=pydoc.plaintext)
    assert "create(model: 'str | None' = None," in text and "-> 'UltralyticsFunction'" in text
    assert "An Ultralytics model as a detection function.\n" in text and "Method resolution order" not in text
    with pytest.raises(TypeError, match=r"^create\(\) takes from 0 to 10 positional arguments but 17 were given$"):
        create(*range(17))
    with pytest.raises(BadParameterError, match="the ultralytics function needs model="):
        create()


def test_too_many_positional_arguments_are_counted_as_python_does():
    from autoannotate.functions import sam, torchvision_classification

    with pytest.raises(TypeError, match=r"^create\(\) takes from 1 to 6 positional arguments but 8 were given$"):
        torchvision_classification.create(*range(8))
    with pytest.raises(TypeError, match=r"^create\(\) takes from 0 to 6 positional arguments but 7 were given$"):
        sam.create(*range(7))


#: Calls a type checker sees through the built ``create`` functions: the lines marked ``# error``
#: are wrong types or names, the others what users may write.
MYPY_PROBE = """\
from autoannotate.functions import sam, torchvision_classification, torchvision_detection, ultralytics
from autoannotate.functions import torchvision_instance_segmentation, torchvision_keypoint_detection
from autoannotate.functions.torchvision_classification import TorchvisionClassificationFunction
from autoannotate.functions.ultralytics import UltralyticsFunction

a: TorchvisionClassificationFunction = torchvision_classification.create(model_name="resnet18", topk=2)
torchvision_classification.create(model_name="resnet18", topk="2")  # error
torchvision_classification.create(model_name=5)  # error
torchvision_detection.create("x", "DEFAULT", False, None, None, box_score_thresh=0.2)
torchvision_detection.create("x", pretrained="no")  # error
torchvision_instance_segmentation.create()
torchvision_instance_segmentation.create(mask_threshold="0.5")  # error
torchvision_keypoint_detection.create()
b: UltralyticsFunction = ultralytics.create("best.pt", "detect", topk=2)
ultralytics.create(topk="2")  # error
ultralytics.create(colour="red")  # error
sam.create(model_type="vit_b", multimask="auto")
sam.create("vit_b")  # error
"""


def test_type_checkers_check_calls_to_built_creates(tmp_path, monkeypatch):
    """mypy flags a wrong type or name passed to a built ``create`` (torchvision's, Ultralytics'
    and the SAM family's) and accepts what users may pass; a ``TypedDict``-declared ``create``
    takes its parameters by name only (docs/functions.md)."""
    api = pytest.importorskip("mypy.api")
    import autoannotate

    (tmp_path / "probe.py").write_text(MYPY_PROBE)
    monkeypatch.chdir(tmp_path)  # no project configuration
    monkeypatch.setenv("MYPYPATH", str(Path(autoannotate.__file__).parents[1]))
    args = ["--ignore-missing-imports", "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"), "probe.py"]
    out, _, _ = api.run(args)
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line}
    expected = {n for n, line in enumerate(MYPY_PROBE.splitlines(), 1) if line.endswith("# error")}
    assert flagged == expected, out
