"""Issue 24: label mapping always happens in the driver, also for a target with several label
sets (a Label Studio labeling config: one mapping per control tag)."""

from __future__ import annotations

import PIL.Image

import autoannotate as aa
from autoannotate import iter_annotations
from autoannotate.mapping import LabelMapping, TargetLabel, TargetMappings
from autoannotate.routing import Router
from tests.fakes import FakeDetector


def cat_and_dog(ctx, img):
    return [aa.rectangle(0, [0, 0, 4, 4], score=0.9), aa.rectangle(1, [1, 1, 5, 5], score=0.4)]


def per_control(fn):
    return TargetMappings(
        {
            "box": LabelMapping.build(fn.spec, [TargetLabel("Cat", 0), TargetLabel("Dog", 1)]),
            "poly": LabelMapping.build(fn.spec, [TargetLabel("kitty", 5, synonyms=("cat",))], allow_unmatched=True),
        }
    )


def test_the_driver_maps_every_shape_onto_each_target():
    fn = FakeDetector(cat_and_dog)
    image = PIL.Image.new("RGB", (16, 12))
    (r,) = iter_annotations(fn, [("k", image)], mapping=per_control(fn), progress=False)
    assert r.ok and r.targets == ["box", "box", "poly"]
    parts = r.by_target()
    assert list(parts) == ["box", "poly"]
    assert [(s.label_id, s.score) for s in parts["box"]] == [(0, 0.9), (1, 0.4)]
    assert [(s.label_id, s.points) for s in parts["poly"]] == [(5, (0.0, 0.0, 4.0, 4.0))]  # dog has no match there


def test_the_threshold_applies_before_the_targets_and_routing_keeps_them_aligned():
    fn = FakeDetector(cat_and_dog)
    image = PIL.Image.new("RGB", (16, 12))
    (r,) = iter_annotations(fn, [("k", image)], mapping=per_control(fn), conf_threshold=0.5, progress=False)
    assert r.targets == ["box", "poly"]
    (r,) = iter_annotations(fn, [("k", image)], mapping=per_control(fn), progress=False)
    discarded = r.route(Router({i: aa.ReviewThresholds(lower=0.5, upper=0.8) for i in (0, 1, 5)}))
    assert discarded == 1 and r.targets == ["box", "poly"] and [s.score for s in r.shapes] == [0.9, 0.9]
    assert {t: [s.label_id for s in shapes] for t, shapes in r.by_target().items()} == {"box": [0], "poly": [5]}


def test_a_failed_image_has_no_targets_and_a_mapping_error_names_its_target():
    fn = FakeDetector(lambda ctx, img: [aa.rectangle(0, [0, 0, 4, 4])], labels=[aa.label_spec("cat", 0)])  # any type
    typed = LabelMapping.build(
        fn.spec, [TargetLabel("cat", 3, type="polygon")], allow_unmatched=True, target_name="control 'poly'"
    )
    (bad, broken) = iter_annotations(
        fn,
        [("gone", b"not an image"), ("k", PIL.Image.new("RGB", (8, 8)))],
        mapping=TargetMappings({"poly": typed}),
        progress=False,
    )
    assert not bad.ok and bad.by_target() == {}
    assert not broken.ok and "control 'poly' takes 'polygon' for 'cat'" in broken.error
