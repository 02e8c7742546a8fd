"""Tracks end when their object leaves the frame or is lost, with the reason in ``end_reason``
(synthetic clips with ground truth: the real OpenCV tracker, and functions that show the driver's
rules)."""

from __future__ import annotations

import numpy as np
import pytest

import autoannotate as aa
from autoannotate import TrackableShape, TrackLost
from autoannotate.functions import opencv_tracker
from autoannotate.tracking import track_shapes
from autoannotate.video import iter_video_tracks
from tests.fakes import FakeDetector
from tests.tracking.synthetic import iou, make_frames, make_leaving_frames, make_occluded_frames, write_video


def clipped(box, size=(320, 240)):
    return (max(box[0], 0), max(box[1], 0), min(box[2], size[0]), min(box[3], size[1]))


def test_a_track_ends_when_its_object_walks_out_of_the_frame():
    frames, truth = make_leaving_frames(24)  # 57% inside on frame 17, 43% on frame 18
    (t,) = track_shapes(opencv_tracker.create(), frames, [TrackableShape("rectangle", truth[0])])
    assert t.lost_at == 18 and sorted(t.shapes) == list(range(18)) and not t.failed
    assert t.end_reason.startswith("ended on frame 18: the object left the frame (its box [29"), t.end_reason
    assert t.end_reason.endswith("% inside the 320x240 frame)")
    ious = [iou(t.box(i), clipped(truth[i])) for i in range(18)]
    assert min(ious) > 0.9, ious
    assert all(t.box(i)[2] <= 320 for i in range(18))  # clipped to the frame while mostly inside


def test_a_track_ends_when_its_object_is_hidden():
    frames, truth = make_occluded_frames(20, hidden_from=8)
    (t,) = track_shapes(opencv_tracker.create(), frames, [TrackableShape("rectangle", truth[0])])
    assert t.lost_at == 8 and sorted(t.shapes) == list(range(8)) and not t.failed
    assert t.end_reason.startswith("lost on frame 8: the object is hidden or gone (its best match"), t.end_reason
    assert min(iou(t.box(i), truth[i]) for i in range(8)) > 0.9


def test_a_track_ends_when_the_patch_no_longer_looks_like_the_object():
    frames, truth = make_occluded_frames(12, hidden_from=6)
    # with min_match off, the appearance check against the first frame ends it instead
    (t,) = track_shapes(
        opencv_tracker.create(min_similarity=0.9, min_match=-1.0), frames, [TrackableShape("rectangle", truth[0])]
    )
    assert t.lost_at == 6 and not t.failed
    assert t.end_reason.startswith("lost on frame 6: the object no longer looks like on its first frame (similarity")


class Sliding:
    """Moves the box ``dx`` px right a frame, unclipped, or raises TrackLost on frame ``lose_at``."""

    spec = aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self, dx: float = 30.0, lose_at: int | None = None):
        self.dx, self.lose_at = dx, lose_at

    def init_tracking_state(self, ctx, pp, shape):
        return {"box": shape.points}

    def track(self, ctx, pp, state):
        if ctx.frame_index == self.lose_at:
            raise TrackLost("the cat went behind the sofa")
        x1, y1, x2, y2 = state["box"]
        state["box"] = (x1 + self.dx, y1, x2 + self.dx, y2)
        return TrackableShape("rectangle", state["box"])


def test_the_driver_clips_a_box_mostly_inside_and_ends_one_mostly_outside():
    frames, _ = make_frames(8)
    (t,) = track_shapes(Sliding(30), frames, [TrackableShape("rectangle", (200, 10, 260, 50))])
    assert [t.box(i) for i in sorted(t.shapes)] == [
        (200, 10, 260, 50),
        (230, 10, 290, 50),
        (260, 10, 320, 50),
        (290, 10, 320, 50),  # half inside: clipped, still followed
    ]
    assert t.lost_at == 4 and not t.failed
    assert (
        t.end_reason
        == "ended on frame 4: the object left the frame (its box [320, 10, 380, 50] is 0% inside the 320x240 frame)"
    )


def test_track_lost_raised_by_a_function_is_the_end_reason():
    frames, _ = make_frames(8)
    lost, other = track_shapes(
        Sliding(1, lose_at=3),
        frames,
        [TrackableShape("rectangle", (10, 10, 60, 50)), TrackableShape("rectangle", (100, 10, 160, 50))],
    )
    assert lost.lost_at == 3 and lost.end_reason == "lost on frame 3: the cat went behind the sofa"
    assert not lost.failed and other.lost_at == 3  # the same function loses both on frame 3


@pytest.mark.timeout(60)
def test_objects_leaving_a_video_are_not_warnings_of_the_run(tmp_path):
    frames, truth = make_leaving_frames(24)
    path = write_video(frames, tmp_path / "leaving.mp4")
    detector = FakeDetector(
        lambda ctx, img: [aa.rectangle(0, truth[0], score=0.9)] if ctx.frame_name == "frame 0" else []
    )
    (result,) = iter_video_tracks(
        detector, opencv_tracker.create(), [("v", str(path))], key_frame_interval=100, progress=False
    )
    (t,) = result.tracks
    assert t.end_reason.startswith("ended on frame 18: the object left the frame") and not t.failed
    assert result.warnings == []  # an object that walks out is no fault of the run
    assert np.isclose(t.box(0)[0], 150)


class ClampedAtTheEdge:
    """What OpenCV's MIL tracker did: follows the object (here: knows its true box) but keeps the
    full-size box inside the frame, so the box stays at the edge once the object walks out."""

    spec = aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self, truth, width=320):
        self.truth, self.width = truth, width

    def init_tracking_state(self, ctx, pp, shape):
        return None

    def track(self, ctx, pp, state):
        x1, y1, x2, y2 = self.truth[ctx.frame_index]
        shift = max(0.0, x2 - self.width)
        return TrackableShape("rectangle", (x1 - shift, y1, x2 - shift, y2))


def test_a_box_stuck_at_the_edge_while_the_picture_under_it_changes_ends_its_track():
    frames, truth = make_leaving_frames(24)  # the full-size box reaches the right edge on frame 14
    (t,) = track_shapes(ClampedAtTheEdge(truth), frames, [TrackableShape("rectangle", truth[0])])
    # the box stands still from frame 15 on; on frame 17 the picture under it no longer matches
    assert t.lost_at == 17 and sorted(t.shapes) == list(range(17)) and not t.failed, t.end_reason
    assert t.end_reason.startswith(
        "ended on frame 17: the box stayed at the frame's edge ([260, 90, 320, 145]) from frame 15 on "
        "while the picture under it changed (similarity 0."
    ), t.end_reason


def test_a_still_box_at_the_edge_over_a_still_picture_is_kept():
    frames, truth = make_frames(10)
    still = [frames[0]] * 10  # nothing moves: a box at the edge that stays put is right
    (t,) = track_shapes(
        ClampedAtTheEdge([(280, 10, 320, 60)] * 10), still, [TrackableShape("rectangle", (280, 10, 320, 60))]
    )
    assert t.lost_at is None and t.end_reason is None and sorted(t.shapes) == list(range(10))
