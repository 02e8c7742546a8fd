"""Specs and the protocol: one test per BadFunctionError rule."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import autoannotate as aa
from autoannotate import BadFunctionError
from autoannotate.validation import validate_shapes

SIZE = (64, 48)  # width, height


# ---- the public names ------------------------------------------------------------------------

PACKAGE_NAMES = """
AnnotateReport AttributeSpec AttributeValue AutoAnnotateError BadFunctionError BadParameterError
BoxRefiner DetectionFunction DetectionFunctionContext DetectionFunctionSpec ImageFailure
ImageLoadError ImageResult InteractiveFunction InteractiveFunctionContext InteractivePrompt
LabelMapping LabelMappingError LabelSpec NoLabelsMatchError ReviewThresholds Router RunStore
SegmentationResult Shape Sink TargetAttribute TargetLabel Track TrackLost TrackableShape
TrackingFunction TrackingFunctionContext TrackingFunctionShapeContext TrackingFunctionSpec
WeightsNotFoundError __version__ annotate_images attribute_spec attribute_vals_from_dict
checkbox_attribute_spec detect_and_track iter_annotations keypoint keypoint_spec label_spec
load_function load_image mask number_attribute_spec number_attribute_values parse_param parse_params
points polygon polyline radio_attribute_spec rectangle select_attribute_spec shape skeleton
skeleton_label_spec tag target_labels_from_names text_attribute_spec track_shapes validate_shapes
""".split()

INTERFACE_NAMES = """
ATTRIBUTE_INPUT_TYPES AttributeSpec BatchDetection BoxSegmenting DetectionFunction
DetectionFunctionContext DetectionFunctionSpec InteractiveFunction InteractiveFunctionContext
InteractivePrompt LABEL_TYPES LabelSpec OpenVocabulary Preprocessing SHAPE_TYPES SegmentationResult
TRACKABLE_SHAPE_TYPES TrackLost TrackableShape TrackingFunction TrackingFunctionContext
TrackingFunctionShapeContext TrackingFunctionSpec Versioned VideoSessions attribute_spec
checkbox_attribute_spec function_name keypoint_spec label_spec model_version number_attribute_spec
number_attribute_values radio_attribute_spec select_attribute_spec skeleton_label_spec
text_attribute_spec
""".split()


def test_the_package_and_the_interface_export_their_public_names_once_each():
    import autoannotate.interface as interface

    for module, names in [(aa, PACKAGE_NAMES), (interface, INTERFACE_NAMES)]:
        assert sorted(module.__all__) == sorted(names)  # each once, none more, none less
        namespace: dict = {}
        exec(f"from {module.__name__} import *", namespace)
        assert set(namespace) - {"__builtins__"} == set(names)
    public = {n for n in dir(aa) if not n.startswith("_") and not inspect.ismodule(getattr(aa, n))}
    assert public == set(PACKAGE_NAMES) - {"__version__"}  # the package holds nothing else but its modules
    assert aa.label_spec is interface.label_spec and aa.LabelSpec is interface.LabelSpec


# ---- specs ---------------------------------------------------------------------------------


def test_valid_spec_with_every_kind_of_label():
    spec = aa.DetectionFunctionSpec(
        labels=[
            aa.label_spec(
                "car",
                0,
                type="rectangle",
                attributes=[
                    aa.checkbox_attribute_spec("parked", 0),
                    aa.number_attribute_spec("doors", 1, aa.number_attribute_values(2, 5)),
                    aa.radio_attribute_spec("color", 2, ["red", "blue"]),
                    aa.select_attribute_spec("kind", 3, ["sedan", "van"], default_value="van"),
                    aa.text_attribute_spec("plate", 4),
                    aa.attribute_spec("brand", 5, "select", ["a", "b"]),
                ],
            ),
            aa.skeleton_label_spec("person", 1, [aa.keypoint_spec("head", 0), aa.keypoint_spec("foot", 1)]),
            aa.label_spec("scene", 2, type="tag"),
        ]
    )
    assert spec.label(1).sublabels[1].name == "foot"
    assert spec.label_names == ["car", "person", "scene"]


@pytest.mark.parametrize(
    "labels",
    [
        [aa.label_spec("a", 0), aa.label_spec("b", 0)],  # duplicate id
        [aa.label_spec("a", 0), aa.label_spec("a", 1)],  # duplicate name
    ],
)
def test_spec_duplicate_ids_or_names(labels):
    with pytest.raises(BadFunctionError, match="duplicate"):
        aa.DetectionFunctionSpec(labels=labels)


@pytest.mark.parametrize(
    "make",
    [
        lambda: aa.number_attribute_spec("n", 0, ["5", "1", "1"]),  # min > max
        lambda: aa.number_attribute_spec("n", 0, ["0", "10", "0"]),  # step 0
        lambda: aa.number_attribute_spec("n", 0, ["0", "10"]),  # not 3 values
        lambda: aa.number_attribute_spec("n", 0, ["a", "10", "1"]),  # not numbers
        lambda: aa.radio_attribute_spec("r", 0, []),  # no values
        lambda: aa.select_attribute_spec("s", 0, ["x", "x"]),  # repeated value
        lambda: aa.select_attribute_spec("s", 0, ["x"], default_value="y"),  # default not a value
        lambda: aa.attribute_spec("c", 0, "checkbox", ["maybe"]),
        lambda: aa.attribute_spec("t", 0, "slider", []),  # unknown input type
        lambda: aa.text_attribute_spec("", 0),  # empty name
    ],
)
def test_invalid_attribute_values(make):
    with pytest.raises(BadFunctionError):
        make()


def test_duplicate_attributes_and_keypoints():
    with pytest.raises(BadFunctionError, match="duplicate"):
        aa.label_spec("a", 0, attributes=[aa.text_attribute_spec("x", 0), aa.text_attribute_spec("y", 0)])
    with pytest.raises(BadFunctionError, match="duplicate"):
        aa.skeleton_label_spec("p", 0, [aa.keypoint_spec("k", 0), aa.keypoint_spec("k", 1)])


def test_bad_label_type_and_sublabel_rules():
    with pytest.raises(BadFunctionError, match="type"):
        aa.label_spec("a", 0, type="cuboid")
    with pytest.raises(BadFunctionError, match="skeleton"):
        aa.skeleton_label_spec("p", 0, [])
    with pytest.raises(BadFunctionError, match="id must be an integer"):
        aa.label_spec("a", "zero")


# ---- shapes against the spec ----------------------------------------------------------------

SPEC = aa.DetectionFunctionSpec(
    labels=[
        aa.label_spec("box", 0, type="rectangle", attributes=[aa.select_attribute_spec("c", 0, ["red", "blue"])]),
        aa.label_spec("anything", 1),
        aa.skeleton_label_spec("person", 2, [aa.keypoint_spec("head", 0), aa.keypoint_spec("foot", 1)]),
        aa.label_spec("blob", 3, type="mask"),
        aa.label_spec("scene", 4, type="tag"),
    ]
)


def check(*shapes):
    return validate_shapes(SPEC, list(shapes), SIZE, frame_name="img.jpg")


def test_valid_shapes_pass_unchanged():
    shapes = [
        aa.rectangle(0, [1, 2, 3, 4], score=0.5, attributes={0: "red"}),
        aa.polygon(1, [0, 0, 10, 0, 10, 10]),
        aa.polyline(1, [0, 0, 5, 5]),
        aa.points(1, [3, 3]),
        aa.mask(3, np.zeros((48, 64), bool), score=1.0),
        aa.skeleton(2, [aa.keypoint(0, [1, 1]), aa.keypoint(1, [2, 2], occluded=True)], score=0.0),
        aa.tag(4, score=0.3),
    ]
    assert check(*shapes) == shapes


def test_unknown_label_id():
    with pytest.raises(BadFunctionError, match=r"label id 9.*spec ids: \[0, 1, 2, 3, 4\]"):
        check(aa.rectangle(9, [1, 2, 3, 4]))


def test_shape_type_not_allowed_by_label():
    with pytest.raises(
        BadFunctionError, match=r"returned a 'polygon' for label 'box', whose type in the spec is 'rectangle'"
    ):
        check(aa.polygon(0, [0, 0, 1, 0, 1, 1]))
    with pytest.raises(BadFunctionError, match="'skeleton'"):
        check(aa.skeleton(1, []))  # 'any' does not admit skeletons


@pytest.mark.parametrize(
    "s",
    [
        aa.rectangle(0, [1, 2, 3]),  # wrong count
        aa.rectangle(0, [1, 2, 3, 4, 5, 6]),
        aa.polygon(1, [0, 0, 1, 1]),  # < 3 vertices
        aa.polyline(1, [0, 0]),  # < 2 vertices
        aa.points(1, [1, 2, 3]),  # odd
        aa.rectangle(0, [1, 2, math.nan, 4]),  # NaN
        aa.polygon(1, [0, 0, math.inf, 0, 1, 1]),  # inf
        aa.rectangle(0, [5, 5, 1, 1]),  # inverted corners
    ],
)
def test_malformed_points(s):
    with pytest.raises(BadFunctionError):
        check(s)


def test_mask_of_wrong_size_names_both_sides():
    with pytest.raises(BadFunctionError, match=r"mask of 10x10 pixels \(WxH\) for an image of 64x48"):
        check(aa.mask(3, np.zeros((10, 10), bool)))
    with pytest.raises(BadFunctionError, match="2-D"):
        check(aa.mask(3, np.zeros((48, 64, 3), bool)))


def test_incomplete_skeleton():
    with pytest.raises(BadFunctionError, match=r"incomplete.*\['foot'\]"):
        check(aa.skeleton(2, [aa.keypoint(0, [1, 1])]))


def test_unknown_skeleton_element():
    with pytest.raises(BadFunctionError) as e:
        check(aa.skeleton(2, [aa.keypoint(0, [1, 1]), aa.keypoint(1, [1, 1]), aa.keypoint(7, [1, 1])]))
    assert str(e.value) == (
        "shape #0 on 'img.jpg': the function returned keypoint id 7, which skeleton 'person' does not have "
        "(its keypoints: [(0, 'head'), (1, 'foot')])"
    )


def test_repeated_or_malformed_skeleton_element():
    with pytest.raises(BadFunctionError) as e:
        check(aa.skeleton(2, [aa.keypoint(0, [1, 1]), aa.keypoint(0, [1, 1]), aa.keypoint(1, [1, 1])]))
    assert str(e.value) == "shape #0 on 'img.jpg': keypoint 'head' appears twice in one shape"
    with pytest.raises(BadFunctionError, match="2 finite coordinates"):
        check(aa.skeleton(2, [aa.keypoint(0, [1, 1, 2, 2]), aa.keypoint(1, [1, 1])]))


@pytest.mark.parametrize("score", [-0.01, 1.01, math.nan, math.inf])
def test_score_outside_unit_interval(score):
    with pytest.raises(BadFunctionError, match="score must be a number in \\[0, 1\\]"):
        check(aa.rectangle(0, [1, 2, 3, 4], score=score))


def test_bad_attributes():
    with pytest.raises(BadFunctionError) as e:
        check(aa.rectangle(0, [1, 2, 3, 4], attributes={5: "red"}))
    assert str(e.value) == (
        "shape #0 on 'img.jpg': the function returned attribute id 5, which label 'box' does not have "
        "(its attributes: [(0, 'c')])"
    )
    twice = [aa.AttributeValue(0, "red"), aa.AttributeValue(0, "blue")]
    with pytest.raises(BadFunctionError) as e:
        check(aa.rectangle(0, [1, 2, 3, 4], attributes=twice))
    assert str(e.value) == "shape #0 on 'img.jpg': attribute 'c' appears twice in one shape"
    with pytest.raises(BadFunctionError, match="value 'green'"):
        check(aa.rectangle(0, [1, 2, 3, 4], attributes={0: "green"}))


def test_garbage_instead_of_shapes():
    with pytest.raises(BadFunctionError, match="returned a dict"):
        check({"label": 0})
    with pytest.raises(BadFunctionError, match="list of shapes"):
        validate_shapes(SPEC, None, SIZE)
    with pytest.raises(BadFunctionError, match="list of shapes"):
        validate_shapes(SPEC, "rectangle", SIZE)


def test_tag_with_points():
    with pytest.raises(BadFunctionError, match="tag has no points"):
        check(aa.Shape(type="tag", label_id=4, points=(1.0, 2.0)))


def test_prompt_validation():
    with pytest.raises(ValueError, match="at least one positive point or one box"):
        aa.InteractivePrompt(negative_points=[(1, 1)])
    with pytest.raises(ValueError, match="finite"):
        aa.InteractivePrompt(positive_points=[(math.nan, 1)])
    with pytest.raises(ValueError, match="x2 >= x1"):
        aa.InteractivePrompt(boxes=[(5, 5, 1, 1)])


def test_rotated_rectangle_is_kept_in_range_and_boxed_by_its_corners():
    s = aa.rectangle(0, [10, 20, 30, 24], rotation=-90)
    assert s.rotation == 270.0
    assert check(s) == [s]
    # turned a quarter: the 20x4 box becomes 4x20 about its centre (20, 22)
    assert s.bbox() == pytest.approx((18, 12, 22, 32))
    assert aa.rectangle(0, [10, 20, 30, 24], rotation=360).rotation == 0.0
    assert aa.rectangle(0, [1, 2, 3, 4], rotation=30) != aa.rectangle(0, [1, 2, 3, 4])


@pytest.mark.parametrize("rotation", [math.nan, math.inf])
def test_rotation_must_be_finite(rotation):
    with pytest.raises(BadFunctionError, match=r"rotation must be a number of degrees in \[0, 360\)"):
        check(aa.rectangle(0, [1, 2, 3, 4], rotation=rotation))


def test_only_rectangles_rotate():
    import dataclasses

    with pytest.raises(BadFunctionError, match="only a rectangle can be rotated"):
        check(dataclasses.replace(aa.polygon(1, [0, 0, 10, 0, 10, 10]), rotation=10.0))
    with pytest.raises(BadFunctionError, match=r"in \[0, 360\)"):
        check(dataclasses.replace(aa.rectangle(0, [1, 2, 3, 4]), rotation=400.0))


def test_a_module_function_is_named_by_its_module():
    import types

    from autoannotate.fiftyone.models import resolve_function
    from autoannotate.interface import function_name, model_version

    module = types.ModuleType("my_detector")
    module.spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("thing", 0)])
    module.detect = lambda context, image: []
    assert function_name(module) == model_version(module) == "my_detector"
    assert resolve_function(module, None)[1] == "my_detector"  # the name FiftyOne's run records show
