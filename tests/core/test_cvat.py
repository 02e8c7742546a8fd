"""CVAT SDK auto-annotation functions run unchanged (autoannotate.cvat.adapt), CVAT's rules fail
the way CVAT's driver says, and any autoannotate function is a CVAT function (checked offline
with cvat-sdk's own spec validation and the annotation checks of its driver)."""

from __future__ import annotations

import dataclasses
import json
import textwrap

import attrs
import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
import pytest
from cvat_sdk import models
from cvat_sdk.attributes import attribute_vals_from_dict
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
from cvat_sdk.masks import decode_mask, encode_mask

import autoannotate as aa
from autoannotate.cvat import CvatDetection, CvatInteraction, CvatTracking, adapt, as_cvat_function
from autoannotate.errors import BadFunctionError, BadParameterError
from autoannotate.loading import import_module_or_file, load_function
from autoannotate.mapping import target_labels_from_spec
from autoannotate.shapes import rotated_corners
from tests import cvat_functions as cf
from tests.tracking.synthetic import make_frames

THREE_LINES = textwrap.dedent(
    """
    import cvat_sdk.auto_annotation as cvataa
    spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("cat", 0)])
    def detect(context, image):
        return [cvataa.rectangle(0, [1, 2, 3, 4])]
    """
)


def test_the_three_line_cvat_function_of_the_report_annotates_images(tmp_path):
    path = tmp_path / "cat.py"
    path.write_text(THREE_LINES)
    img = PIL.Image.new("RGB", (8, 8))
    for fn in (load_function(str(path)), import_module_or_file(str(path))):  # loaded, or the module as it is
        results, report = aa.annotate_images(fn, [img], progress=False)
        assert len(report.failures) == 0 and [(s.type, s.label_id, s.points) for s in results[0].shapes] == [
            ("rectangle", 0, (1.0, 2.0, 3.0, 4.0))
        ]


def test_a_cvat_function_object_is_taken_as_it_is_by_annotate_images():
    results, report = aa.annotate_images(cf.Shapes(), [cf.scene()], progress=False)
    assert len(report.failures) == 0, results[0].error
    by_label = {}
    for s in results[0].shapes:
        by_label.setdefault(s.label_id, []).append(s)
    car, doubtful = by_label[0]
    assert car.type == "rectangle" and car.points == (10.0, 8.0, 40.0, 30.0) and car.rotation == 30.0
    assert car.score == 0.9 and doubtful.score == 0.3
    assert {a.spec_id: a.value for a in car.attributes} == {0: "red", 1: "true", 2: "4", 3: "AB-123"}
    assert car.bbox() == pytest.approx(_corners_box(car.points, 30.0))
    (road,) = by_label[1]
    assert road.type == "polygon" and len(road.points) == 8
    assert by_label[2][0].type == "polyline" and by_label[3][0].type == "points"
    (blob,) = by_label[4]
    (cx, cy), r = cf.GREEN_DISC
    yy, xx = np.mgrid[: cf.SIZE[1], : cf.SIZE[0]]
    assert blob.type == "mask" and np.array_equal(blob.bitmap, (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)
    (person,) = by_label[5]
    head, left, right = person.elements
    assert person.type == "skeleton" and person.score == 0.75
    assert (head.outside, left.occluded, right.outside) == (False, True, True)
    assert person.bbox() == (15.0, 10.0, 20.0, 20.0)  # the outside keypoint is not in the box
    (scene,) = by_label[6]
    assert scene.type == "tag" and scene.score is None
    wrapped = adapt(cf.Shapes())
    assert isinstance(wrapped, CvatDetection) and wrapped.spec.label(5).type == "skeleton"
    assert repr(wrapped) == "CvatDetection(Shapes)" and wrapped.model_version == "cvat:Shapes"
    assert [a.input_type for a in wrapped.spec.label(0).attributes] == ["select", "checkbox", "number", "text"]


def _corners_box(points, rotation):
    c = rotated_corners(points, rotation)
    return min(c[0::2]), min(c[1::2]), max(c[0::2]), max(c[1::2])


def test_conf_threshold_reaches_the_cvat_function_and_conv_mask_to_poly_asks_it_for_polygons():
    results, _ = aa.annotate_images(cf.Shapes(), [cf.scene()], progress=False, conf_threshold=0.5)
    assert sorted(s.score for s in results[0].shapes if s.label_id == 0) == [0.9]
    # a target whose mask label takes any shape (annotate_images's default target, the function's
    # own labels, takes only masks for a mask label, whatever conv_mask_to_poly says)
    targets = [
        dataclasses.replace(t, type="any") if t.type == "mask" else t
        for t in target_labels_from_spec(adapt(cf.Shapes()).spec)
    ]
    results, report = aa.annotate_images(
        cf.Shapes(), [cf.scene()], progress=False, conv_mask_to_poly=True, target_labels=targets
    )
    assert len(report.failures) == 0, results[0].error
    (blob,) = [s for s in results[0].shapes if s.label_id == 4]
    assert blob.type == "polygon" and blob.bbox() == pytest.approx((60.0, 10.0, 80.0, 30.0), abs=1.0)


class _Breaks:
    """A CVAT function that breaks one of CVAT's rules, on the image named ``bad`` only."""

    spec = cvataa.DetectionFunctionSpec(
        labels=[
            cvataa.label_spec("car", 0, attributes=[cvataa.select_attribute_spec("color", 0, ["red", "blue"])]),
            cvataa.label_spec("blob", 1, type="mask"),
            cvataa.skeleton_label_spec("person", 2, [cvataa.keypoint_spec("a", 0), cvataa.keypoint_spec("b", 1)]),
        ]
    )

    def __init__(self, how):
        self.how = how

    def detect(self, context, image):
        if context.frame_name != "bad":
            return [cvataa.rectangle(0, [1, 1, 4, 4])]
        m = np.zeros((image.height, image.width), bool)
        m[1:3, 1:3] = True
        return [self.how(m)]


VIOLATIONS = {
    "preset id": (lambda m: cvataa.rectangle(0, [1, 1, 4, 4], id=7), "function output shape with preset id"),
    "preset source": (
        lambda m: cvataa.rectangle(0, [1, 1, 4, 4], source="manual"),
        "function output shape with preset source",
    ),
    "frame": (
        lambda m: models.LabeledShapeRequest(type="rectangle", label_id=0, frame=3, points=[1, 1, 4, 4]),
        "function output shape with unexpected frame number (3)",
    ),
    "label id": (lambda m: cvataa.rectangle(9, [1, 1, 4, 4]), "function output shape with unknown label ID (9)"),
    "attribute id": (
        lambda m: cvataa.rectangle(0, [1, 1, 4, 4], attributes=attribute_vals_from_dict({5: "red"})),
        "function output attribute with unknown ID (5)",
    ),
    "attribute value": (
        lambda m: cvataa.rectangle(0, [1, 1, 4, 4], attributes=attribute_vals_from_dict({0: "green"})),
        "function output attribute value ('green') that is unsuitable for its attribute (0)",
    ),
    "type": (
        lambda m: cvataa.rectangle(1, [1, 1, 4, 4]),
        "function output shape of type 'rectangle' (expected 'mask')",
    ),
    "skeleton elements": (
        lambda m: cvataa.skeleton(2, [cvataa.keypoint(0, [1, 1])]),
        "function output skeleton with fewer elements than expected (1 vs 2)",
    ),
    "tag for a mask label": (lambda m: cvataa.tag(1), "function output tag (expected shape of type 'mask')"),
    "not a request": (lambda m: aa.rectangle(0, [1, 1, 4, 4]), "function output an object of type 'Shape'"),
    "mask encoding": (lambda m: cvataa.mask(1, [1, 2, 3]), "a mask that is not in CVAT's encoding"),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_cvat_rule_broken_on_one_image_fails_that_image_with_cvats_reason(case):
    how, reason = VIOLATIONS[case]
    img = PIL.Image.new("RGB", (8, 8))
    results, report = aa.annotate_images(_Breaks(how), [("good", img), ("bad", img)], progress=False)
    assert report.images_processed == 1 and len(report.failures) == 1
    assert results[0].ok and len(results[0].shapes) == 1
    assert "function broke the protocol" in results[1].error and reason in results[1].error


def test_a_mask_despite_conv_mask_to_poly_is_cvats_violation():
    results, report = aa.annotate_images(
        _Breaks(lambda m: cvataa.mask(1, encode_mask(m))),
        [("bad", PIL.Image.new("RGB", (8, 8)))],
        progress=False,
        conv_mask_to_poly=True,
    )
    assert (
        len(report.failures) == 1 and "CVAT's rules" in results[0].error and "(expected 'polygon')" in results[0].error
    )


def test_a_spec_that_breaks_cvats_rules_fails_as_cvat_says(tmp_path):
    path = tmp_path / "dup.py"
    path.write_text(
        "import cvat_sdk.auto_annotation as cvataa\n"
        "spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec('a', 0), cvataa.label_spec('b', 0)])\n"
        "def detect(context, image):\n    return []\n"
    )
    with pytest.raises(BadFunctionError, match=r"breaks CVAT's rules: label b has same ID as another label \(0\)"):
        load_function(str(path))

    class Ellipse:
        spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("e", 0, type="ellipse")])

    with pytest.raises(BadFunctionError, match="label 'e' has type 'ellipse', which autoannotate cannot represent"):
        adapt(Ellipse())


def test_the_cli_writes_a_coco_file_from_a_cvat_function_module_with_parameters(tmp_path, capsys):
    from autoannotate.cli import main

    folder = tmp_path / "imgs"
    folder.mkdir()
    cf.scene().save(folder / "scene.png")
    PIL.Image.new("RGB", cf.SIZE).save(folder / "black.png")
    out = tmp_path / "coco.json"
    args = ["annotate", str(folder), "--function-module", "tests.cvat_functions", "-p", "min_score=float:0.5"]
    assert main([*args, "-o", str(out), "--no-progress"]) == 0
    coco = json.loads(out.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert list(names.values()) == ["car", "road", "lane", "spot", "blob", "person", "scene"]
    by_image = {i["file_name"]: i["id"] for i in coco["images"]}
    scene = [a for a in coco["annotations"] if a["image_id"] == by_image["scene.png"]]
    assert sorted(names[a["category_id"]] for a in scene) == ["blob", "car", "lane", "person", "road", "spot"]
    (car,) = [a for a in scene if names[a["category_id"]] == "car"]  # the 0.3 one is below min_score
    x1, y1, x2, y2 = _corners_box(cf.RED_BOX, 30.0)
    assert car["score"] == 0.9 and car["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])
    (person,) = [a for a in scene if names[a["category_id"]] == "person"]
    assert person["keypoints"] == [20.0, 10.0, 2, 15.0, 20.0, 1, 0.0, 0.0, 0] and person["num_keypoints"] == 2
    # a spec that breaks CVAT's rules is a clear error, exit code 2
    bad = tmp_path / "dup.py"
    bad.write_text(
        THREE_LINES.replace('[cvataa.label_spec("cat", 0)]', '[cvataa.label_spec("a", 0), cvataa.label_spec("b", 0)]')
    )
    assert main(["annotate", str(folder), "--function-file", str(bad), "-o", str(out), "--no-progress"]) == 2
    assert "breaks CVAT's rules: label b has same ID as another label (0)" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Tracking and interaction


def test_a_cvat_tracking_function_follows_an_object_over_a_clip():
    frames, boxes = make_frames(20)
    tracks = aa.track_shapes(cf.Template(), frames, [aa.TrackableShape("rectangle", boxes[0][0])])
    (track,) = tracks
    assert sorted(track.shapes) == list(range(20)) and track.end_reason is None
    for i in range(20):
        assert track.shapes[i].points == pytest.approx(boxes[0][i], abs=1.0)
    tracker = adapt(cf.Template())
    assert isinstance(tracker, CvatTracking) and repr(tracker) == "CvatTracking(Template)"
    assert tracker.model_version == "cvat:Template"


def test_a_cvat_tracker_that_returns_another_type_ends_that_track_with_the_reason():
    class Wrong(cf.Template):
        def track(self, context, pp_image, state):
            return cvataa.TrackableShape(type="polygon", points=[0, 0, 5, 0, 5, 5])

    frames, boxes = make_frames(3)
    (track,) = aa.track_shapes(Wrong(), frames, [aa.TrackableShape("rectangle", boxes[0][0])])
    assert track.failed and sorted(track.shapes) == [0]
    assert "returned a 'polygon' for a tracked 'rectangle'" in track.end_reason


def test_a_cvat_tracker_of_masks_gets_and_gives_masks_in_cvats_encoding():
    seen = []

    class Masks:
        spec = cvataa.TrackingFunctionSpec(supported_shape_types=["mask"])

        def init_tracking_state(self, context, pp_image, shape):
            seen.append(decode_mask(shape.points, image_width=pp_image.width, image_height=pp_image.height))
            return shape.points

        def track(self, context, pp_image, state):
            return cvataa.TrackableShape(type="mask", points=state)

    m = np.zeros((12, 16), bool)
    m[2:5, 3:9] = True
    frames = [PIL.Image.new("RGB", (16, 12))] * 3
    (track,) = aa.track_shapes(Masks(), frames, [aa.TrackableShape("mask", bitmap=m)])
    assert np.array_equal(seen[0], m) and sorted(track.shapes) == [0, 1, 2]
    assert all(np.array_equal(track.shapes[i].bitmap, m) for i in (1, 2))


def test_a_cvat_interaction_function_answers_clicks_and_boxes_with_masks():
    fn = adapt(cf.Bright())
    assert (
        isinstance(fn, CvatInteraction) and repr(fn) == "CvatInteraction(Bright)" and fn.model_version == "cvat:Bright"
    )
    enc = fn.encode(aa.InteractiveFunctionContext(), cf.scene())
    assert enc.nbytes == cf.SIZE[0] * cf.SIZE[1] * 4
    (r,) = fn.segment(aa.InteractiveFunctionContext(), enc, aa.InteractivePrompt(positive_points=[(70, 20)]))
    (cx, cy), rad = cf.GREEN_DISC
    yy, xx = np.mgrid[: cf.SIZE[1], : cf.SIZE[0]]
    assert np.array_equal(r.mask, (xx - cx) ** 2 + (yy - cy) ** 2 <= rad * rad) and r.score == 0.75
    # a negative click on the disc removes it; a box cuts the mask to the box
    prompt = aa.InteractivePrompt(positive_points=[(20, 10), (70, 20)], negative_points=[(72, 22)])
    (r,) = fn.segment(aa.InteractiveFunctionContext(), enc, prompt)
    assert r.mask[10, 20] and not r.mask[20, 70]
    (r,) = fn.segment(
        aa.InteractiveFunctionContext(), enc, aa.InteractivePrompt(positive_points=[(20, 10)], boxes=[(10, 8, 25, 30)])
    )
    assert r.mask.sum() == 15 * 22
    with pytest.raises(BadParameterError, match="at least 1 positive point"):
        fn.segment(aa.InteractiveFunctionContext(), enc, aa.InteractivePrompt(boxes=[(10, 8, 25, 30)]))


# --------------------------------------------------------------------------------------------
# The reverse: autoannotate functions as CVAT functions


class _Native:
    """An autoannotate function giving every kind of shape."""

    spec = aa.DetectionFunctionSpec(
        labels=[
            aa.label_spec(
                "car", 0, type="rectangle", attributes=[aa.select_attribute_spec("color", 0, ["red", "blue"])]
            ),
            aa.label_spec("blob", 1, type="mask"),
            aa.label_spec("road", 2, type="polygon"),
            aa.label_spec("lane", 3, type="polyline"),
            aa.label_spec("spot", 4, type="points"),
            aa.skeleton_label_spec("person", 5, [aa.keypoint_spec("head", 0), aa.keypoint_spec("foot", 1)]),
            aa.label_spec("scene", 6, type="tag", attributes=[aa.checkbox_attribute_spec("night", 0)]),
        ]
    )

    def detect(self, context, image):
        m = np.zeros((image.height, image.width), bool)
        m[3:9, 5:12] = True
        return [
            aa.rectangle(0, [1, 2, 11, 7], rotation=45, score=0.9, attributes={0: "blue"}),
            aa.rectangle(0, [0, 0, 2, 2], score=0.2),
            aa.mask(1, m, score=0.8),
            aa.polygon(2, [0, 0, 10, 0, 10, 10], score=0.7),
            aa.polyline(3, [0, 0, 10, 10], score=0.6),
            aa.points(4, [3, 3], score=0.5),
            aa.skeleton(5, [aa.keypoint(0, [4, 4]), aa.keypoint(1, [0, 0], outside=True)], score=0.7),
            aa.tag(6, attributes={0: True}),
        ]


def _dataset_labels(spec: cvataa.DetectionFunctionSpec, offset: int, any_type: bool) -> list:
    """A CVAT task's labels (ids shifted by ``offset``) with the same names and attributes, and
    the same types (or ``any``)."""

    @attrs.frozen
    class Label:
        name: str
        id: int
        type: str
        attributes: list
        sublabels: list

    def attr(a):
        return models.AttributeRequest(
            name=a.name, id=a.id + offset, input_type=a.input_type, values=a.values, mutable=False
        )

    return [
        Label(
            label.name,
            label.id + offset,
            "any" if any_type else str(label.get("type") or "any"),
            [attr(a) for a in label.get("attributes") or []],
            [Label(s.name, s.id + offset, "points", [], []) for s in label.get("sublabels") or []],
        )
        for label in spec.labels
    ]


def _cvat_run(function, image, *, conf_threshold=None, conv_mask_to_poly=False, offset=100):
    """What CVAT's driver does with ``function`` on one frame (``annotate_task``'s checks and id
    mapping onto a task whose label ids are shifted by ``offset``), without a server."""
    assert isinstance(function.spec, cvataa.DetectionFunctionSpec)
    mapper = _AnnotationMapper(
        __import__("logging").getLogger("test"),
        function.spec.labels,
        _dataset_labels(function.spec, offset, conv_mask_to_poly),
        allow_unmatched_labels=False,
        conv_mask_to_poly=conv_mask_to_poly,
    )
    context = _DetectionFunctionContextImpl(
        frame_name="f.png", conf_threshold=conf_threshold, conv_mask_to_poly=conv_mask_to_poly
    )
    return mapper.validate_and_remap(function.detect(context, image), 5)


def test_an_autoannotate_function_passes_cvats_spec_and_driver_checks():
    cvat_fn = as_cvat_function(_Native())
    assert [label.name for label in cvat_fn.spec.labels] == ["car", "blob", "road", "lane", "spot", "person", "scene"]
    img = PIL.Image.new("RGB", (16, 12))
    tags, shapes = _cvat_run(cvat_fn, img)
    assert [(t.label_id, t.frame, t.source, [(a.spec_id, a.value) for a in t.attributes]) for t in tags] == [
        (106, 5, "auto", [(100, "true")])
    ]
    assert [s.type.value for s in shapes] == [
        "rectangle",
        "rectangle",
        "mask",
        "polygon",
        "polyline",
        "points",
        "skeleton",
    ]
    car = shapes[0]
    assert (car.label_id, car.rotation, car.score, car.points) == (100, 45.0, 0.9, [1, 2, 11, 7])
    assert [(a.spec_id, a.value) for a in car.attributes] == [(100, "blue")]
    m = decode_mask(shapes[2].points, image_width=16, image_height=12)
    assert m.sum() == 42 and m[3:9, 5:12].all()
    head, foot = shapes[6].elements
    assert (head.label_id, foot.label_id, foot.outside, head.outside) == (100, 101, True, False)
    # the threshold and conv_mask_to_poly apply as in autoannotate's driver
    _, shapes = _cvat_run(cvat_fn, img, conf_threshold=0.5, conv_mask_to_poly=True)
    assert [s.type.value for s in shapes] == ["rectangle", "polygon", "polygon", "polyline", "points", "skeleton"]


def test_a_round_trip_through_cvat_gives_the_same_shapes():
    img = PIL.Image.new("RGB", (16, 12))
    ours, _ = aa.annotate_images(_Native(), [img], progress=False)
    back, report = aa.annotate_images(adapt(as_cvat_function(_Native())), [img], progress=False)
    assert len(report.failures) == 0 and back[0].shapes == ours[0].shapes


def test_autoannotate_cvat_is_a_cvat_function_module_for_any_function_by_name(tmp_path):
    import autoannotate.cvat as module

    fn = module.create(function="tests.cvat_functions", min_score=0.5)  # a CVAT function, round trip
    assert isinstance(fn.spec, cvataa.DetectionFunctionSpec)
    tags, shapes = _cvat_run(fn, cf.scene())
    assert sorted(s.score for s in shapes if s.label_id == 100) == [0.9]
    tracker = module.create(function="opencv_tracker")
    assert isinstance(tracker.spec, cvataa.TrackingFunctionSpec)
    frames, boxes = make_frames(4)
    pp = [tracker.preprocess_image(None, f) for f in frames]
    ctx = type("Ctx", (), {"original_shape_type": "rectangle"})()
    state = tracker.init_tracking_state(ctx, pp[0], cvataa.TrackableShape(type="rectangle", points=list(boxes[0][0])))
    for i in range(1, 4):
        out = tracker.track(ctx, pp[i], state)
        assert out.type == "rectangle" and out.points == pytest.approx(boxes[0][i], abs=2.0)
    grabcut = module.create(function="grabcut")
    assert isinstance(grabcut.spec, cvataa.InteractionFunctionSpec)
    pp = grabcut.preprocess_image(None, cf.scene())

    @attrs.frozen
    class Prompts:
        pos_points: list
        neg_points: list
        bounding_box: tuple | None

    (r,) = grabcut.detect(None, pp, Prompts([], [], ((8, 6), (42, 32))))
    mask = decode_mask(r.points, image_width=cf.SIZE[0], image_height=cf.SIZE[1])
    x1, y1, x2, y2 = cf.RED_BOX
    assert r.type == "mask" and mask[y1 + 3 : y2 - 3, x1 + 3 : x2 - 3].all() and not mask[:, 50:].any()
    assert grabcut.detect(None, pp, Prompts([], [], None)) == []


def test_the_label_studio_backend_runs_cvat_function_objects_handed_to_it():
    from autoannotate.label_studio import Backend

    backend = Backend(function=cf.create(), interactive=cf.Bright(), tracker=cf.Template())
    assert isinstance(backend.function, CvatDetection)
    assert isinstance(backend.interactive, CvatInteraction)
    assert isinstance(backend.tracker, CvatTracking)


def test_a_cvat_module_installed_through_an_entry_point_runs_by_name(tmp_path, monkeypatch):
    """An entry point may name the CVAT function module itself (``name = module``), as
    ``--function-module`` takes it; its kind is read from what it defines."""
    from autoannotate.loading import registered
    from tests.installed import write_package

    detector = textwrap.dedent(
        '''
        """Whole image: one box over the whole image."""
        import cvat_sdk.auto_annotation as cvataa

        spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("photo", 0, type="rectangle")])

        def detect(context, image):
            return [cvataa.rectangle(0, [0, 0, image.width, image.height])]
        '''
    )
    tracker = "from tests.cvat_functions import Template\n_t = Template()\nspec = _t.spec\n" + "".join(
        f"{m} = _t.{m}\n" for m in ("preprocess_image", "init_tracking_state", "track")
    )
    root = tmp_path / "site"
    write_package(
        root,
        "cvat-modules",
        {"whole_image": "whole_image_mod", "cvat_template": "template_mod"},
        {"whole_image_mod": detector, "template_mod": tracker},
    )
    monkeypatch.syspath_prepend(str(root))
    assert registered("whole_image").record.kind == "detection"
    assert registered("whole_image").record.summary == "Whole image: one box over the whole image."
    assert registered("cvat_template").record.kind == "tracking"
    fn = load_function("whole_image")
    (r,), _ = aa.annotate_images(fn, [PIL.Image.new("RGB", (40, 30))], progress=False)
    assert [s.points for s in r.shapes] == [(0.0, 0.0, 40.0, 30.0)]
    assert isinstance(load_function("cvat_template"), CvatTracking)
