"""Shapes -> Label Studio regions (rotated rectangles included, and back); the fast brush RLE
equals the SDK's encoder byte for byte."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.label_studio.config import parse_config
from autoannotate.label_studio.regions import (
    brush_rle,
    build_prediction,
    rectangle_from_value,
    rectangle_value,
    to_regions,
)
from autoannotate.label_studio.review_report import compare_regions
from autoannotate.outputs import box_corners

pytest.importorskip("label_studio_sdk")
from label_studio_sdk.converter.brush import decode_rle, mask2rle  # noqa: E402


def sdk(mask):
    return [int(v) for v in mask2rle((mask * 255).astype(np.uint8))]


@pytest.mark.parametrize("seed", range(40))
def test_brush_rle_equals_the_sdk(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 50, 2)
    m = rng.random((h, w)) > [0.5, 0.97, 0.03][seed % 3]
    assert brush_rle(m) == sdk(m)


@pytest.mark.parametrize("shape", [(1, 1), (300, 400), (200, 200)])
def test_brush_rle_long_runs_and_full_masks(shape):
    m = np.zeros(shape, bool)
    m[: shape[0] // 2] = True
    assert brush_rle(m) == sdk(m)
    assert (decode_rle(brush_rle(m)).reshape(*shape, 4)[:, :, 3] > 0).tolist() == m.tolist()


CONFIG = """<View><Image name="img" value="$url"/>
<RectangleLabels name="r" toName="img"><Label value="a"/></RectangleLabels>
<PolygonLabels name="p" toName="img"><Label value="a"/></PolygonLabels>
<KeyPointLabels name="k" toName="img"><Label value="a"/></KeyPointLabels>
<Choices name="c" toName="img"><Choice value="a"/></Choices></View>"""


def test_regions_in_percent_of_the_original_size():
    controls = {c.name: c for c in parse_config(CONFIG)}
    assert controls["r"].value_key == "url"
    size = (200, 100)
    m = np.zeros((100, 200), bool)
    m[10:50, 20:120] = True
    cases = {
        "r": aa.rectangle(0, [20, 10, 120, 50], score=0.5),
        "p": aa.mask(0, m, score=0.6),
        "k": aa.points(0, [50, 25]),
        "c": aa.tag(0, score=0.7),
    }
    for name, s in cases.items():
        (reg,) = to_regions(9, [s], controls[name], size)
        assert reg["original_width"] == 200 and reg["original_height"] == 100 and reg["from_name"] == name
        v = reg["value"]
        if name == "r":
            assert (v["x"], v["y"], v["width"], v["height"]) == (10.0, 10.0, 50.0, 40.0) and reg["score"] == 0.5
        elif name == "p":
            xs = [p[0] for p in v["points"]]
            assert min(xs) == pytest.approx(10.0) and max(xs) == pytest.approx(59.5) and v["polygonlabels"] == ["a"]
        elif name == "k":
            assert (v["x"], v["y"]) == (25.0, 25.0) and "score" not in reg
        else:
            assert v == {"choices": ["a"]}


def test_build_prediction_numbers_regions_once_unique_across_controls_and_stable():
    controls = {c.name: c for c in parse_config(CONFIG)}
    size = (200, 100)
    parts = [
        (controls["r"], [aa.rectangle(0, [20, 10, 120, 50], score=0.5), aa.rectangle(0, [0, 0, 10, 10], score=0.7)]),
        (controls["k"], [aa.points(0, [50, 25], score=0.9)]),
        (controls["c"], [aa.tag(0)]),
        (controls["p"], [aa.rectangle(0, [0, 0, 1, 1])]),  # a polygon control cannot show a rectangle: no region
    ]
    pred = build_prediction(7, parts, size, "m@1")
    assert set(pred) == {"result", "score", "model_version"} and pred["model_version"] == "m@1"
    regions = pred["result"]
    assert [r["from_name"] for r in regions] == ["r", "r", "k", "c"]
    ids = [r["id"] for r in regions]
    assert len(set(ids)) == 4 and all(isinstance(i, str) and len(i) == 12 for i in ids)
    assert pred["score"] == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert [r["id"] for r in build_prediction(7, parts, size, "m@1")["result"]] == ids  # stable
    # a function that gives no scores: no task score (Label Studio would show "0.00%")
    assert "score" not in build_prediction(7, [(controls["r"], [aa.rectangle(0, [20, 10, 120, 50])])], size, "m")
    assert not set(ids) & {r["id"] for r in build_prediction(8, parts, size, "m@1")["result"]}  # per task
    # the same shapes in two controls with the same labels never share an id
    both = build_prediction(7, [(controls["r"], parts[0][1]), (controls["r"], parts[0][1])], size, "m")["result"]
    assert len({r["id"] for r in both}) == 4
    assert build_prediction(7, [], size, "m") == {"result": [], "model_version": "m"}


def test_to_regions_is_build_prediction_for_one_control():
    controls = {c.name: c for c in parse_config(CONFIG)}
    shapes = [aa.rectangle(0, [20, 10, 120, 50], score=0.5)]
    assert (
        to_regions(3, shapes, controls["r"], (200, 100))
        == build_prediction(3, [(controls["r"], shapes)], (200, 100), "x")["result"]
    )


def test_masks_and_polygons_on_a_rectangle_control_become_their_boxes():
    """SAM 3 (masks) or instance segmentation (polygons) with a RectangleLabels-only config."""
    controls = {c.name: c for c in parse_config(CONFIG)}
    m = np.zeros((100, 200), bool)
    m[10:50, 20:120] = True
    shapes = [aa.mask(0, m, score=0.6), aa.polygon(0, [20, 10, 120, 10, 120, 50], score=0.4)]
    regs = to_regions(9, shapes, controls["r"], (200, 100))
    assert [(r["value"]["x"], r["value"]["y"], r["value"]["width"], r["value"]["height"]) for r in regs] == [
        (10.0, 10.0, 50.0, 40.0),
        (10.0, 10.0, 50.0, 40.0),
    ]
    assert [r["score"] for r in regs] == [0.6, 0.4] and all(r["type"] == "rectanglelabels" for r in regs)
    assert to_regions(9, [aa.mask(0, np.zeros((100, 200), bool))], controls["r"], (200, 100)) == []


def _ls_corners(v, size):
    """The corners (flat pixels) of a Label Studio rectangle value as Label Studio draws it: the
    unrotated box at its top-left corner (x, y), turned clockwise by ``rotation`` about that corner."""
    w, h = size
    px, py = v["x"] * w / 100, v["y"] * h / 100
    bw, bh = v["width"] * w / 100, v["height"] * h / 100
    a = math.radians(v["rotation"])
    out = []
    for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh)):
        out += [px + dx * math.cos(a) - dy * math.sin(a), py + dx * math.sin(a) + dy * math.cos(a)]
    return out


@pytest.mark.parametrize("deg", [0, 30, 90, 270])
def test_a_rotated_rectangle_is_a_rotated_label_studio_rectangle_and_round_trips(deg):
    controls = {c.name: c for c in parse_config(CONFIG)}
    size = (200, 100)  # not square: percent differs per axis
    s = aa.rectangle(0, [60, 30, 140, 70], rotation=deg, score=0.5)
    (reg,) = to_regions(9, [s], controls["r"], size)
    v = reg["value"]
    assert v["rotation"] == deg and v["rectanglelabels"] == ["a"]
    assert (v["width"], v["height"]) == pytest.approx((40.0, 40.0))  # the unrotated size, in percent
    assert _ls_corners(v, size) == pytest.approx(box_corners(s))  # drawn where the shape is
    if deg == 90:  # the top-left corner lands at the top right of the turned box
        assert (v["x"], v["y"]) == pytest.approx((60.0, 10.0))
    back = rectangle_from_value(v, size)
    assert back.points == pytest.approx(s.points) and back.rotation == pytest.approx(deg)
    assert rectangle_value(back, size) == pytest.approx({k: v[k] for k in ("x", "y", "width", "height", "rotation")})


def test_rotated_boxes_on_other_controls_and_in_the_review_report():
    controls = {c.name: c for c in parse_config(CONFIG)}
    s = aa.rectangle(0, [60, 30, 140, 70], rotation=90)
    assert to_regions(9, [s], controls["p"], (200, 100)) == []  # a polygon control takes no box
    (reg,) = to_regions(9, [s], controls["r"], (200, 100))
    (pred,), _ = compare_regions([reg], [])
    assert pred["box"] == pytest.approx((40.0, 10.0, 60.0, 90.0))  # the upright box around the turned one


def test_points_on_a_keypoint_control_give_one_region_per_point():
    controls = {c.name: c for c in parse_config(CONFIG)}
    regs = to_regions(9, [aa.points(0, [50, 25, 100, 50], score=0.3)], controls["k"], (200, 100))
    assert [(r["value"]["x"], r["value"]["y"]) for r in regs] == [(25.0, 25.0), (50.0, 50.0)]
    assert len({r["id"] for r in regs}) == 2 and all(r["score"] == 0.3 for r in regs)
