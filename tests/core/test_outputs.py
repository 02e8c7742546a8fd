"""The core's output stage (autoannotate.outputs): the shape x output-type table, the one
mask -> polygon rule, the one derived box, and rotated rectangles as COCO and Label Studio write
them (corner positions at 0/30/90/270 degrees and round trips back to the shape)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.driver import masks_to_polygon_shapes
from autoannotate.export import shape_to_coco
from autoannotate.masks import mask_to_polygon, polygon_to_mask
from autoannotate.outputs import (
    NATURAL_OUTPUT,
    OUTPUT_TYPES,
    box_corners,
    derived_box,
    mask_polygon,
    masks_to_polygons,
    to_output,
)
from autoannotate.shapes import rotated_corners

SIZE = (200, 100)  # width, height: not square, so percent and pixels differ per axis
ANGLES = [0, 30, 90, 270]


def _mask():
    m = np.zeros((100, 200), bool)
    m[10:50, 20:120] = True
    m[80:83, 180:183] = True  # a second, smaller region: the rule keeps the largest
    return m


def _skeleton():
    return aa.skeleton(
        0,
        [aa.keypoint(1, [30, 40]), aa.keypoint(2, [70, 20], occluded=True), aa.keypoint(3, [0, 0], outside=True)],
        score=0.8,
    )


SHAPES = {
    "rectangle": aa.rectangle(0, [20, 10, 120, 50], score=0.5),
    "rotated": aa.rectangle(0, [60, 30, 140, 70], rotation=30, score=0.5),
    "polygon": aa.polygon(0, [20, 10, 120, 10, 120, 50], score=0.4),
    "polyline": aa.polyline(0, [10, 10, 50, 40, 90, 20]),
    "flat polyline": aa.polyline(0, [10, 10, 50, 10]),
    "points": aa.points(0, [50, 25, 60, 30]),
    "mask": aa.mask(0, _mask(), score=0.6),
    "empty mask": aa.mask(0, np.zeros((100, 200), bool)),
    "skeleton": _skeleton(),
    "tag": aa.tag(0, score=0.7),
}

# (shape, output) -> the type of what to_output gives, None: cannot be that output
TABLE = {
    "rectangle": {"box": "rectangle", "polyline": "polygon"},
    "rotated": {"box": "rectangle", "polyline": "polygon"},
    "polygon": {"box": "rectangle", "polygon": "polygon", "polyline": "polygon", "mask": "mask"},
    "polyline": {"box": "rectangle", "polyline": "polyline"},
    "flat polyline": {"polyline": "polyline"},
    "points": {"box": "rectangle", "keypoints": "points"},
    "mask": {"box": "rectangle", "polygon": "polygon", "polyline": "polygon", "mask": "mask"},
    "empty mask": {},
    "skeleton": {"box": "rectangle", "keypoints": "skeleton"},
    "tag": {"tag": "tag"},
}


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("output", OUTPUT_TYPES)
def test_every_shape_as_every_output_type(name, output):
    s = SHAPES[name]
    out = to_output(s, output, SIZE)
    expected = TABLE[name].get(output)
    assert (out.type if out is not None else None) == expected
    if out is not None:  # label, score and attributes travel; the input is never edited
        assert (out.label_id, out.score, out.attributes) == (s.label_id, s.score, s.attributes)
        assert out.rotation == (s.rotation if out.type == "rectangle" else 0.0)
    assert s == SHAPES[name]


def test_unknown_output_type_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown output type 'bbox'; choose one of"):
        to_output(SHAPES["tag"], "bbox", SIZE)


def test_the_derived_box_is_one_rule():
    assert to_output(SHAPES["mask"], "box", SIZE).points == (
        20.0,
        10.0,
        183.0,
        83.0,
    )  # every set pixel, exclusive edges
    assert to_output(SHAPES["polygon"], "box", SIZE).points == (20.0, 10.0, 120.0, 50.0)
    assert to_output(SHAPES["skeleton"], "box", SIZE).points == (30.0, 20.0, 70.0, 40.0)  # outside left out
    assert to_output(aa.rectangle(0, [-10, 90, 30, 130]), "box", SIZE).points == (0.0, 90.0, 30.0, 100.0)  # clipped
    assert to_output(aa.rectangle(0, [210, 0, 230, 10]), "box", SIZE) is None  # nothing inside the image
    assert derived_box(SHAPES["empty mask"]) is None and derived_box(SHAPES["tag"]) is None
    corners = rotated_corners((60, 30, 140, 70), 30)
    assert derived_box(SHAPES["rotated"]) == (
        min(corners[0::2]),
        min(corners[1::2]),
        max(corners[0::2]),
        max(corners[1::2]),
    )


def test_mask_to_polygon_is_one_rule_for_the_driver_and_every_output():
    m = _mask()
    poly = mask_polygon(m)
    assert poly == tuple(mask_to_polygon(m))  # the largest region's outline
    assert min(poly[0::2]) == 20 and max(poly[0::2]) == 119 and min(poly[1::2]) == 10 and max(poly[1::2]) == 49
    (by_driver,) = masks_to_polygon_shapes([SHAPES["mask"]])
    assert by_driver == to_output(SHAPES["mask"], "polygon", SIZE) == masks_to_polygons([SHAPES["mask"]])[0]
    assert by_driver.points == poly and by_driver.bitmap is None
    assert to_output(SHAPES["mask"], "polyline", SIZE).points == poly
    assert mask_polygon(np.zeros((5, 5), bool)) is None and masks_to_polygons([SHAPES["empty mask"]]) == []
    # a polygon as a mask is its rasterization
    assert np.array_equal(
        to_output(SHAPES["polygon"], "mask", SIZE).bitmap, polygon_to_mask(SHAPES["polygon"].points, SIZE)
    )


def _corners_from_centre(x1, y1, x2, y2, deg):
    """The turned corners (flat x, y, ...) computed independently: the box's centre plus each half-diagonal turned
    clockwise (y down) by ``deg``."""
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    a = math.radians(deg)
    out = []
    for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
        out += [cx + dx * math.cos(a) - dy * math.sin(a), cy + dx * math.sin(a) + dy * math.cos(a)]
    return out


@pytest.mark.parametrize("deg", ANGLES)
def test_box_corners_turn_clockwise_about_the_centre(deg):
    s = aa.rectangle(0, [60, 30, 140, 70], rotation=deg)
    got = box_corners(s)
    assert got == pytest.approx(_corners_from_centre(60, 30, 140, 70, deg))
    if deg == 90:  # clockwise in image coordinates: the top-left corner goes to the top right
        assert got[:4] == pytest.approx((120.0, 10.0, 120.0, 90.0))


def _box_from_corners(c):
    """A rotated rectangle back from its four corners (top-left, top-right, bottom-right,
    bottom-left of the unrotated box)."""
    (ax, ay), (bx, by), _, (dx, dy) = c
    w, h = math.hypot(bx - ax, by - ay), math.hypot(dx - ax, dy - ay)
    cx, cy = sum(p[0] for p in c) / 4, sum(p[1] for p in c) / 4
    deg = math.degrees(math.atan2(by - ay, bx - ax)) % 360
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), deg


@pytest.mark.parametrize("deg", ANGLES)
def test_coco_writes_a_rotated_box_as_its_polygon_with_the_upright_box(deg):
    s = aa.rectangle(3, [60, 30, 140, 70], rotation=deg, score=0.9)
    ann = shape_to_coco(s, 1, 1, 5, SIZE)
    xs, ys = box_corners(s)[0::2], box_corners(s)[1::2]
    assert ann["bbox"] == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
    if deg == 0:  # an upright box stays a box
        assert "segmentation" not in ann and ann["bbox"] == [60, 30, 80, 40] and ann["area"] == 3200
        return
    (seg,) = ann["segmentation"]
    assert seg == pytest.approx(_corners_from_centre(60, 30, 140, 70, deg))
    corners = list(zip(seg[0::2], seg[1::2]))
    assert ann["area"] == pytest.approx(80 * 40)  # the turned box's area, not its upright box's
    box, back = _box_from_corners(corners)  # round trip: the polygon gives the shape back
    assert box == pytest.approx((60, 30, 140, 70)) and back == pytest.approx(deg)
    assert ann["attributes"] == {"rotation": deg}  # and the angle, as CVAT writes it


def test_coco_writes_every_shape_as_its_natural_output():
    assert set(NATURAL_OUTPUT) == {"rectangle", "polygon", "polyline", "mask", "points", "skeleton", "tag"}
    anns = {name: shape_to_coco(s, 1, 1, 1, SIZE) for name, s in SHAPES.items()}
    assert anns["tag"] is None and anns["empty mask"] is None
    assert anns["mask"]["area"] == int(_mask().sum()) and anns["mask"]["bbox"] == [20.0, 10.0, 163.0, 73.0]
    assert anns["polygon"]["segmentation"] == [[20, 10, 120, 10, 120, 50]] and anns["polygon"]["area"] == 2000
    assert anns["skeleton"]["keypoints"] == [30, 40, 2, 70, 20, 1, 0, 0, 0] and anns["skeleton"]["num_keypoints"] == 2
    assert anns["points"]["points"] == [50, 25, 60, 30] and anns["polyline"]["shape_type"] == "polyline"
    # without the image size boxes are written as they are (not clipped)
    assert shape_to_coco(aa.rectangle(0, [-10, 0, 10, 10]), 1, 1, 1)["bbox"] == [-10, 0, 20, 10]
    assert shape_to_coco(aa.rectangle(0, [-10, 0, 10, 10]), 1, 1, 1, SIZE)["bbox"] == [0, 0, 10, 10]


def test_coco_names_attributes_as_cvat_does():
    from autoannotate.driver import ImageResult
    from autoannotate.export import CocoBuilder

    labels = [aa.label_spec("car", 0, attributes=[aa.select_attribute_spec("color", 7, ["red", "blue"])])]
    builder = CocoBuilder(labels)
    builder.add(ImageResult("a.jpg", "a.jpg", [aa.rectangle(0, [1, 2, 30, 40], attributes={7: "red"})], SIZE))
    (ann,) = builder.annotations
    assert ann["attributes"] == {"color": "red"}


def test_a_flat_box_from_the_model_is_kept_but_a_point_gives_no_box():
    assert to_output(aa.rectangle(0, [72, 27, 72, 48]), "box", SIZE).points == (72.0, 27.0, 72.0, 48.0)
    assert to_output(aa.points(0, [5, 5]), "box", SIZE) is None
