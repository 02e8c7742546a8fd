"""Issue 24: interactive results are validated like detections
(:func:`autoannotate.validation.validate_segmentation`), wherever an interactive function is
called: Label Studio's click-to-mask (tests/label_studio/test_interactive_results.py) and box
refinement inside a detection function (here)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate import BadFunctionError, SegmentationResult, annotate_images
from autoannotate.validation import validate_segmentation
from tests.fakes import FakeDetector


def mask(w=8, h=6):
    m = np.zeros((h, w), bool)
    m[1:4, 2:6] = True
    return m


@pytest.mark.parametrize(
    "results, expected, message",
    [
        ([SegmentationResult(mask())], 1, None),
        ((SegmentationResult(mask(), score=0.5), SegmentationResult(mask(), score=np.float64(1))), 2, None),
        ([SegmentationResult(mask())], 2, "returned 1 results for 2 object(s)"),
        (None, 1, "must return a list of SegmentationResult, got NoneType"),
        ([{"mask": mask()}], 1, "result #0: the function returned a dict, not a SegmentationResult"),
        ([SegmentationResult(mask(6, 8))], 1, "a mask of 6x8 pixels (WxH) for an image of 8x6"),
        ([SegmentationResult(mask().astype(np.float32))], 1, "returned a 2-D float32 array of shape (6, 8)"),
        (
            [SegmentationResult(mask(), score=-0.1)],
            1,
            "score must be None or a number in [0, 1], the function returned -0.1",
        ),
        ([SegmentationResult(mask(), score=True)], 1, "returned True"),
        ([SegmentationResult(mask(), score="high")], 1, "returned 'high'"),
    ],
)
def test_validate_segmentation(results, expected, message):
    if message is None:
        assert len(validate_segmentation(results, (8, 6), expected=expected)) == expected
        return
    with pytest.raises(BadFunctionError) as e:
        validate_segmentation(results, (8, 6), expected=expected, what="segment_boxes()", frame_name="im.png")
    assert str(e.value).startswith("segment_boxes() on 'im.png'") and message in str(e.value)


class OneMaskOnly:
    """An interactive function that draws one mask however many boxes it is given."""

    def encode(self, context, image):
        return image.size

    def segment_boxes(self, context, encoding, boxes):
        w, h = encoding
        return [SegmentationResult(np.ones((h, w), bool))]


def test_box_refinement_validates_what_the_interactive_function_returns():
    two = FakeDetector(
        lambda c, i: [aa.rectangle(0, [1, 1, 5, 5], score=0.8), aa.rectangle(0, [6, 6, 9, 9], score=0.7)]
    )
    refiner = aa.BoxRefiner(two, OneMaskOnly())
    results, report = annotate_images(refiner, [("im", PIL.Image.new("RGB", (12, 10)))], progress=False)
    assert not results[0].ok and not report.success
    assert results[0].error == (
        "function broke the protocol: segment_boxes() on 'im' returned 1 results for 2 object(s) "
        "(one per box, or one for clicks alone)"
    )
