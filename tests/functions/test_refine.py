"""BoxRefiner: a box detector's rectangles become masks or polygons drawn by an interactive function."""

from __future__ import annotations

import numpy as np
import pytest

import autoannotate as aa
from autoannotate import annotate_images
from autoannotate.functions import grabcut
from tests.fakes import FakeDetector
from tests.functions.test_grabcut import disk_image, iou


def detector():
    return FakeDetector(
        lambda c, i: [aa.rectangle(0, [30, 20, 90, 80], score=0.8), aa.rectangle(1, [0, 0, 10, 10], score=0.4)]
    )


def test_boxes_become_masks_and_keep_the_detector_score():
    img, truth = disk_image()
    refiner = aa.BoxRefiner(detector(), grabcut.create(), outputs={"cat": "mask"})
    shapes = refiner.detect(aa.DetectionFunctionContext("x"), img)
    assert [s.type for s in shapes] == ["mask", "rectangle"]
    assert shapes[0].score == 0.8 and iou(shapes[0].bitmap, truth) > 0.85
    assert refiner.spec.label(0).type == "any" and refiner.spec.label(1).type == "rectangle"


def test_polygons_through_the_driver():
    img, truth = disk_image()
    refiner = aa.BoxRefiner(detector(), grabcut.create(), default_output="polygon")
    results, report = annotate_images(refiner, [("disk", img)], progress=False)
    assert report.success
    poly = results[0].shapes[0]
    assert poly.type == "polygon" and len(poly.points) >= 6


def test_unknown_outputs_or_labels_are_rejected():
    with pytest.raises(aa.BadParameterError):
        aa.BoxRefiner(detector(), grabcut.create(), outputs={"cat": "cuboid"})
    with pytest.raises(aa.BadParameterError):
        aa.BoxRefiner(detector(), grabcut.create(), outputs={"horse": "mask"})


def test_model_version_names_both_parts():
    r = aa.BoxRefiner(detector(), grabcut.create())
    assert r.model_version == "FakeDetector+grabcut-opencv"
    assert np.all([lbl.type == "any" for lbl in r.spec.labels])
