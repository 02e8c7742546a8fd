"""Shapes -> FiftyOne labels on top of the core's output stage: rotated rectangles as FiftyOne's
own oriented boxes (``fo.Polyline.from_rotated_box``), corner positions at 0/30/90/270 degrees
and round trips, and the same mask -> polygon rule as the driver and Label Studio."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.fiftyone.classes import ClassSpec, make_plan
from autoannotate.fiftyone.convert import box_label, rotated_box_polyline, shape_to_label
from autoannotate.interface import DetectionFunctionSpec, keypoint_spec, label_spec, skeleton_label_spec
from autoannotate.outputs import box_corners, mask_polygon

fo = pytest.importorskip("fiftyone")

SIZE = (200, 100)
ANGLES = [0, 30, 90, 270]


def _pixels(polyline):
    (pts,) = polyline.points
    return [(x * SIZE[0], y * SIZE[1]) for x, y in pts]


def _same_corners(got, flat):
    want = list(zip(flat[0::2], flat[1::2]))
    assert len(got) == 4
    for p in want:  # the same four corners (FiftyOne starts at another one)
        assert min(math.dist(p, q) for q in got) == pytest.approx(0, abs=1e-9)


def _rotated_box_from(corners):
    """Centre, width, height and angle (degrees, clockwise, y down) back from FiftyOne's corners,
    which start at the turned (+w/2, +h/2) corner and go (-w/2, +h/2), (-w/2, -h/2), ..."""
    (ax, ay), (bx, by), (cx_, cy_), _ = corners
    w, h = math.dist((ax, ay), (bx, by)), math.dist((bx, by), (cx_, cy_))
    cx, cy = sum(p[0] for p in corners) / 4, sum(p[1] for p in corners) / 4
    deg = math.degrees(math.atan2(ay - by, ax - bx)) % 360
    return (cx, cy, w, h), deg


@pytest.mark.parametrize("deg", ANGLES)
def test_a_rotated_rectangle_is_fiftyones_oriented_box_polyline(deg):
    s = aa.rectangle(0, [60, 30, 140, 70], rotation=deg, score=0.8)
    line = shape_to_label(s, "ship", "polyline", SIZE, {"autoannotate_run": "r"})
    assert isinstance(line, fo.Polyline) and line.closed and not line.filled
    assert line.label == "ship" and line.confidence == 0.8 and line["autoannotate_run"] == "r"
    corners = _pixels(line)
    _same_corners(corners, box_corners(s))  # FiftyOne's theta turns the same way as our rotation
    (cx, cy, w, h), back = _rotated_box_from(corners)  # round trip
    assert (cx, cy, w, h) == pytest.approx((100, 50, 80, 40)) and back == pytest.approx(deg)
    if deg == 90:
        assert (120.0, 10.0) in [tuple(round(v, 9) for v in p) for p in corners]


@pytest.mark.parametrize("deg", ANGLES)
def test_a_rotated_rectangle_of_a_bbox_class_is_its_upright_box_with_the_angle(deg):
    s = aa.rectangle(0, [60, 30, 140, 70], rotation=deg, score=0.8)
    det = shape_to_label(s, "ship", "bbox", SIZE, {})
    xs, ys = box_corners(s)[0::2], box_corners(s)[1::2]
    x, y, w, h = det.bounding_box
    assert (x * 200, y * 100, (x + w) * 200, (y + h) * 100) == pytest.approx((min(xs), min(ys), max(xs), max(ys)))
    assert (det.get_field("rotation") if det.has_field("rotation") else 0) == deg
    # the fallback of a polygon class (refinement gave nothing) keeps the turn too
    poly = box_label(s, "ship", "polygon", SIZE, {})
    assert poly.closed and poly.filled and poly.refined is False
    _same_corners(_pixels(poly), box_corners(s))
    assert rotated_box_polyline(s, *SIZE).points == shape_to_label(s, "ship", "polyline", SIZE, {}).points


def test_outputs_of_upright_shapes_through_the_core():
    m = np.zeros((100, 200), bool)
    m[10:50, 20:120] = True
    mask = aa.mask(0, m, score=0.6)
    poly = shape_to_label(mask, "a", "polygon", SIZE, {})
    assert poly.closed and poly.filled
    flat = [v for x, y in _pixels(poly) for v in (x, y)]
    assert flat == pytest.approx(mask_polygon(m))  # the one mask -> polygon rule
    outline = shape_to_label(mask, "a", "polyline", SIZE, {})
    assert outline.closed and not outline.filled and outline.points == poly.points
    rect = shape_to_label(aa.rectangle(0, [20, 10, 120, 50]), "a", "polyline", SIZE, {})
    assert rect.closed and not rect.filled
    _same_corners(_pixels(rect), (20, 10, 120, 10, 120, 50, 20, 50))
    line = shape_to_label(aa.polyline(0, [0, 0, 100, 50]), "a", "polyline", SIZE, {})
    assert not line.closed and _pixels(line) == [(0, 0), (100, 50)]
    det = shape_to_label(mask, "a", "mask", SIZE, {})
    assert det.bounding_box == pytest.approx([0.1, 0.1, 0.5, 0.4]) and det.mask.shape == (40, 100) and det.mask.all()
    assert shape_to_label(aa.points(0, [5, 5]), "a", "bbox", SIZE, {}) is None  # a point has no box
    assert shape_to_label(aa.tag(0), "a", "bbox", SIZE, {}) is None
    with pytest.raises(ValueError, match="unknown output type 'box'"):
        shape_to_label(mask, "a", "box", SIZE, {})


def test_a_rectangle_class_may_ask_for_polylines():
    spec = DetectionFunctionSpec(labels=[label_spec("ship", 0, type="rectangle")])
    plan = make_plan(
        spec,
        label_field="obb",
        classes=[ClassSpec("ship", "polyline")],
        label_map=None,
        dataset_classes=None,
        review=None,
    )
    assert plan.outputs == {"ship": "polyline"} and plan.fields == {"polylines": "obb"} and not plan.refine


def test_each_label_type_has_a_default_output_stored_in_its_container():
    types = ["rectangle", "mask", "polygon", "polyline", "points", "tag", "any"]
    labels = [label_spec(t, i, type=t) for i, t in enumerate(types)]
    spec = DetectionFunctionSpec(labels=[*labels, skeleton_label_spec("skeleton", 9, [keypoint_spec("k", 0)])])
    plan = make_plan(spec, label_field="x", classes=None, label_map=None, dataset_classes=None, review=None)
    assert plan.outputs == {
        "rectangle": "bbox",
        "mask": "mask",
        "polygon": "polygon",
        "polyline": "polyline",
        "points": "keypoint",
        "tag": "tag",
        "any": "mask",
        "skeleton": "keypoint",
    }
    assert plan.fields == {
        "detections": "x",
        "polylines": "x_polylines",
        "keypoints": "x_keypoints",
        "classifications": "x_classifications",
    }
    with pytest.raises(aa.BadParameterError) as e:
        ClassSpec("ship", "box")
    assert str(e.value) == (
        "class 'ship': unknown output type 'box'; choose one of ['bbox', 'polygon', 'polyline', 'keypoint', 'mask', 'tag']"
    )
