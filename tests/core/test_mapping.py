"""Label mapping: exact, synonyms, case, unmatched allowed/denied, sublabels, attributes."""

from __future__ import annotations

import copy

import pytest

import autoannotate as aa
from autoannotate import AutoAnnotateError, BadFunctionError, LabelMappingError
from autoannotate.errors import NoLabelsMatchError
from autoannotate.mapping import LabelMapping, TargetAttribute, TargetLabel, match_name, resolve_names

SPEC = aa.DetectionFunctionSpec(
    labels=[
        aa.label_spec("cat", 0, type="rectangle"),
        aa.label_spec("car", 1, type="rectangle", attributes=[aa.select_attribute_spec("color", 0, ["red", "blue"])]),
        aa.label_spec("Person", 2, type="rectangle"),
    ]
)


def targets(*names, **kw):
    """Target labels; every 'car' (any case) declares the 'color' attribute the function uses."""
    return [
        TargetLabel(
            n, 100 + i, attributes=(TargetAttribute("color", 1),) if n.lower() in ("car", "vehicle") else (), **kw
        )
        for i, n in enumerate(names)
    ]


def test_exact_match_replaces_ids():
    m = LabelMapping.build(SPEC, targets("cat", "car", "Person"))
    out = m.map_shapes([aa.rectangle(0, [0, 0, 1, 1]), aa.rectangle(2, [0, 0, 1, 1])])
    assert [s.label_id for s in out] == [100, 102]


def test_synonyms_from_user_and_from_target():
    m = LabelMapping.build(
        SPEC, targets("kitty", "vehicle", "person"), label_map={"cat": "kitty", "car": ["auto", "vehicle"]}
    )
    assert {k: v.name for k, v in m.matched_targets.items()} == {"cat": "kitty", "car": "vehicle", "Person": "person"}
    # a target label may declare its own synonyms (Label Studio's predicted_values)
    own = [TargetLabel("Feline", 7, synonyms=("cat",))] + targets("car", "person")
    assert LabelMapping.build(SPEC, own).target_for(0).name == "Feline"


def test_exact_beats_synonym_beats_case():
    t = targets("person", "PERSON", "Person", "cat", "car")
    assert LabelMapping.build(SPEC, t).target_for(2).id == 102  # exact 'Person'
    t = targets("person", "human", "cat", "car")
    assert LabelMapping.build(SPEC, t, label_map={"Person": "human"}).target_for(2).name == "human"


def test_case_insensitive_match_and_ambiguity():
    assert LabelMapping.build(SPEC, targets("CAT", "Car", "person")).target_for(0).name == "CAT"
    with pytest.raises(LabelMappingError, match="several target labels"):
        LabelMapping.build(SPEC, targets("cat", "car", "person", "PERSON"))


def test_unmatched_denied_lists_every_name_and_both_sides():
    with pytest.raises(LabelMappingError) as e:
        LabelMapping.build(SPEC, targets("dog", "car"), target_name="the dataset")
    assert e.value.unmatched == ["cat", "Person"]
    assert "the dataset" in str(e.value) and "'dog'" in str(e.value)
    # a naming problem between the function and the dataset, not a broken function
    assert isinstance(e.value, AutoAnnotateError) and not isinstance(e.value, BadFunctionError)
    assert not isinstance(e.value, NoLabelsMatchError)  # 'car' matched


def test_unmatched_allowed_drops_their_shapes():
    m = LabelMapping.build(SPEC, [TargetLabel("car", 100)], allow_unmatched=True)
    shapes = [aa.rectangle(0, [0, 0, 1, 1]), aa.rectangle(1, [0, 0, 1, 1], attributes={0: "red"})]
    out = m.map_shapes(shapes)
    assert [s.label_id for s in out] == [100]
    assert out[0].attributes == ()  # the target's 'car' has no 'color' attribute: dropped
    assert m.unmatched == ["cat", "car.color (attribute)", "Person"]


def test_nothing_matches_is_an_error_even_when_allowed():
    with pytest.raises(LabelMappingError, match="none of the function's labels"):
        LabelMapping.build(SPEC, targets("dog"), allow_unmatched=True)


@pytest.mark.parametrize("allow", [True, False])
def test_nothing_matching_is_its_own_kind(allow):
    with pytest.raises(NoLabelsMatchError) as e:
        LabelMapping.build(SPEC, targets("dog", "horse"), allow_unmatched=allow)
    assert isinstance(e.value, LabelMappingError) and not isinstance(e.value, BadFunctionError)
    assert e.value.unmatched == ["cat", "car", "Person"]
    assert "['dog', 'horse']" in str(e.value)


def test_every_mapping_conflict_is_a_label_mapping_error_not_a_bad_function():
    """Ambiguity, label type, attribute input type and returned shape type conflicts."""
    ambiguous = targets("cat", "car", "person", "PERSON")
    typed = targets("cat", "car", "person", type="polygon")
    attr = [
        TargetLabel("car", 5, attributes=(TargetAttribute("color", 42, "text"),)),
        TargetLabel("cat", 6),
        TargetLabel("person", 7),
    ]
    for t in (ambiguous, typed, attr):
        with pytest.raises(LabelMappingError) as e:
            LabelMapping.build(SPEC, t)
        assert not isinstance(e.value, (BadFunctionError, NoLabelsMatchError)), e.value
    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("x", 0)])
    m = LabelMapping.build(spec, [TargetLabel("x", 1, type="polygon")])
    with pytest.raises(LabelMappingError) as e:
        m.map_shapes([aa.rectangle(0, [0, 0, 1, 1])])
    assert not isinstance(e.value, BadFunctionError) and e.value.unmatched == ["x"]


def test_one_matcher_for_mappings_names_and_controls():
    t = [TargetLabel("Feline", 0, synonyms=("kitty",)), TargetLabel("Dog", 1), TargetLabel("dog house", 2)]
    assert match_name("Feline", t).id == 0
    assert match_name("kitty", t).id == 0  # the target's own synonyms
    assert match_name("cat", t, {"cat": "feline"}).id == 0  # user synonyms, then case-insensitive
    assert match_name("DOG", t).id == 1
    assert match_name("horse", t) is None
    with pytest.raises(LabelMappingError, match="several target labels case-insensitively in control 'c'"):
        match_name("x", [TargetLabel("X", 0), TargetLabel("X", 1)], target_name="control 'c'")
    # resolve_names (dataset class names) goes through the same matcher
    assert resolve_names(SPEC, ["CAT", "vehicle"], {"car": "vehicle"}) == {"cat": "CAT", "car": "vehicle"}


def test_attributes_map_by_name():
    t = [
        TargetLabel("car", 5, attributes=(TargetAttribute("Color", 42, "select"),)),
        TargetLabel("cat", 6),
        TargetLabel("person", 7),
    ]
    out = LabelMapping.build(SPEC, t).map_shapes([aa.rectangle(1, [0, 0, 1, 1], attributes={0: "blue"})])
    assert out[0].attributes == (aa.AttributeValue(42, "blue"),)
    bad = [
        TargetLabel("car", 5, attributes=(TargetAttribute("color", 42, "text"),)),
        TargetLabel("cat", 6),
        TargetLabel("person", 7),
    ]
    with pytest.raises(LabelMappingError, match="'select' in the function, 'text' in the target"):
        LabelMapping.build(SPEC, bad)


def test_sublabels_map_by_name_and_unmatched_keypoints():
    spec = aa.DetectionFunctionSpec(
        labels=[aa.skeleton_label_spec("person", 0, [aa.keypoint_spec("nose", 0), aa.keypoint_spec("tail", 1)])]
    )
    full = [TargetLabel("person", 9, type="skeleton", sublabels=(TargetLabel("Nose", 90), TargetLabel("tail", 91)))]
    sk = aa.skeleton(0, [aa.keypoint(0, [1, 1]), aa.keypoint(1, [2, 2])])
    out = LabelMapping.build(spec, full).map_shapes([sk])[0]
    assert [e.label_id for e in out.elements] == [90, 91]
    partial = [TargetLabel("person", 9, type="skeleton", sublabels=(TargetLabel("nose", 90),))]
    with pytest.raises(LabelMappingError, match=r"person.tail \(keypoint\)"):
        LabelMapping.build(spec, partial)
    out = LabelMapping.build(spec, partial, allow_unmatched=True).map_shapes([sk])[0]
    assert [e.label_id for e in out.elements] == [90]


def test_type_conflicts_name_both_sides():
    with pytest.raises(LabelMappingError, match="'rectangle' in the function, 'polygon' in the target"):
        LabelMapping.build(SPEC, targets("cat", "car", "person", type="polygon"))
    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("x", 0)])
    m = LabelMapping.build(spec, [TargetLabel("x", 1, type="polygon")])
    with pytest.raises(LabelMappingError, match="returned a 'rectangle' for 'x'; the target takes 'polygon'"):
        m.map_shapes([aa.rectangle(0, [0, 0, 1, 1])])


def test_outputs_are_never_mutated():
    m = LabelMapping.build(SPEC, targets("cat", "car", "person"))
    shapes = [aa.rectangle(1, [0, 0, 1, 1], score=0.5, attributes={0: "red"})]
    before = copy.deepcopy(shapes)
    out = m.map_shapes(shapes)
    assert shapes == before and out[0] is not shapes[0] and out[0].label_id == 101


def test_a_synonym_declared_by_two_target_labels_is_ambiguous():
    from autoannotate.errors import LabelMappingError
    from autoannotate.mapping import TargetLabel

    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("person", 0)])
    targets = [TargetLabel("A", 0, synonyms=("person",)), TargetLabel("B", 1, synonyms=("person",))]
    with pytest.raises(LabelMappingError, match=r"declared as a synonym by several target labels.*\['A', 'B'\]"):
        aa.LabelMapping.build(spec, targets)
    # the user's own synonyms are an ordered preference, not an ambiguity
    m = aa.LabelMapping.build(spec, [TargetLabel("A", 0), TargetLabel("B", 1)], label_map={"person": ["B", "A"]})
    assert m.target_for(0).name == "B"
    with pytest.raises(TypeError, match="synonyms"):  # the pre-release spelling is gone
        aa.LabelMapping.build(spec, [TargetLabel("A", 0), TargetLabel("B", 1)], synonyms={"person": "B"})  # type: ignore[call-arg]
