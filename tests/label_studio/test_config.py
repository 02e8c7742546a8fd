"""Labeling configs: controls are mapped without being modified, names match with the package's
one matcher, and conflicts on a control are reported, never silently dropped."""

from __future__ import annotations

import copy

import pytest

import autoannotate as aa
from autoannotate.label_studio import Backend, ControlConflictError, LabelConfigError, map_controls, parse_config
from autoannotate.mapping import LabelMapping
from tests.fakes import FakeDetector

pytest.importorskip("label_studio_sdk")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Feline" predicted_values="cat"/>
    <Label value="Dog"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="CAT"/></BrushLabels>
  <Choices name="scene" toName="image"><Choice value="indoor"/></Choices>
</View>"""


def test_map_controls_returns_new_controls_and_never_mutates_its_input():
    controls = parse_config(CONFIG)
    before = copy.deepcopy(controls)
    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("cat", 0), aa.label_spec("dog", 1, type="rectangle")])
    mapped = map_controls(spec, controls)
    assert [c.name for c in mapped] == ["box", "brush"]  # Choices: no tags; 'dog' only in rectangle controls
    assert all(c.mapping is not None for c in mapped)
    assert all(m is not c for m in mapped for c in controls)
    assert [(c.name, c.mapping, c.unmatched) for c in controls] == [(c.name, c.mapping, c.unmatched) for c in before]
    assert all(c.mapping is None for c in controls)
    assert {k: v.name for k, v in mapped[0].mapping.matched_targets.items()} == {"cat": "Feline", "dog": "Dog"}
    assert mapped[1].unmatched == []  # 'dog' (rectangles) does not take part in a brush control
    assert list(mapped[1].mapping.matched_targets) == ["cat"]
    # mapping the same parsed controls again (the backend caches them) gives the same result
    again = map_controls(spec, controls)
    assert [c.unmatched for c in again] == [c.unmatched for c in mapped]
    assert map_controls(None, controls, interactive=True)[0] is not controls[1]


def test_the_backend_cache_keeps_parsed_controls_untouched():
    backend = Backend(function=FakeDetector(), tracker=None)
    first = backend.controls(CONFIG)
    detection_ids = [id(c) for c in first["detection"]]
    backend.controls(CONFIG.replace("Dog", "Wolf"))  # another config: other objects
    assert [id(c) for c in backend.controls(CONFIG)["detection"]] == detection_ids
    assert all(isinstance(c.mapping, LabelMapping) for c in first["detection"])


def test_an_ambiguous_name_on_a_control_is_an_error_naming_it():
    cfg = """<View><Image name="i" value="$image"/>
      <RectangleLabels name="box" toName="i"><Label value="Cat"/><Label value="CAT"/></RectangleLabels>
      <BrushLabels name="brush" toName="i"><Label value="cat"/></BrushLabels></View>"""
    with pytest.raises(ControlConflictError, match=r"RectangleLabels 'box'.*several target labels.*\['Cat', 'CAT'\]"):
        map_controls(FakeDetector().spec, parse_config(cfg))
    assert issubclass(ControlConflictError, LabelConfigError)
    # the backend does not hide it behind the controls it could still use (interactive masks)
    from autoannotate.functions import grabcut

    backend = Backend(function=FakeDetector(), interactive=grabcut.create())
    with pytest.raises(ControlConflictError, match="'box'"):
        backend.setup({"schema": cfg})


def test_controls_that_map_nothing_are_listed_with_why():
    spec = aa.DetectionFunctionSpec(
        labels=[
            aa.label_spec("cat", 0, type="rectangle"),
            aa.skeleton_label_spec("person", 1, [aa.keypoint_spec("nose", 0)]),
        ]
    )
    cfg = """<View><Image name="i" value="$image"/>
      <RectangleLabels name="box" toName="i"><Label value="Horse"/></RectangleLabels>
      <KeyPointLabels name="kp" toName="i"><Label value="person"/></KeyPointLabels></View>"""
    with pytest.raises(LabelConfigError) as e:
        map_controls(spec, parse_config(cfg))
    text = str(e.value)
    assert "['cat', 'person']" in text and "RectangleLabels 'box': ['Horse']" in text
    assert "KeyPointLabels 'kp': ['person'] (cannot show" in text


def test_only_the_labels_a_control_can_show_take_part():
    """A skeleton (or mask) label never makes a rectangle control fail or appear unmatched."""
    spec = aa.DetectionFunctionSpec(
        labels=[
            aa.label_spec("cat", 0, type="rectangle"),
            aa.skeleton_label_spec("person", 1, [aa.keypoint_spec("nose", 0)]),
            aa.label_spec("blob", 2, type="mask"),
        ]
    )
    cfg = """<View><Image name="i" value="$image"/>
      <RectangleLabels name="box" toName="i"><Label value="cat"/><Label value="person"/></RectangleLabels></View>"""
    (box,) = map_controls(spec, parse_config(cfg))
    assert list(box.mapping.matched_targets) == ["cat"] and box.unmatched == []
    shapes = [aa.rectangle(0, [0, 0, 2, 2]), aa.mask(2, [[True]])]
    assert [s.label_id for s in box.mapping.map_shapes(shapes)] == [0]


def test_label_named_uses_the_mapping_matcher():
    (box, brush, _) = parse_config(CONFIG)
    assert box.label_named("Feline").name == "Feline"
    assert box.label_named("cat").name == "Feline"  # predicted_values
    assert box.label_named("dog").name == "Dog"  # case-insensitive
    assert box.label_named("kitty", synonyms={"kitty": "feline"}).name == "Feline"  # user synonyms
    assert box.label_named("horse") is None and box.label_named(None) is None
    (twice,) = parse_config(
        '<View><Image name="i" value="$image"/><BrushLabels name="b" toName="i">'
        '<Label value="Cat"/><Label value="CAT"/></BrushLabels></View>'
    )
    with pytest.raises(aa.LabelMappingError, match="control 'b'"):
        twice.label_named("cat")
    assert twice.label_named("CAT").id == 1  # an exact name is never ambiguous
