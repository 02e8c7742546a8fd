"""Tracking protocol, driver and the predefined tracking functions on a synthetic video."""

from __future__ import annotations

import numpy as np
import pytest

import autoannotate as aa
from autoannotate import BadFunctionError, TrackableShape
from autoannotate.functions import opencv_tracker
from autoannotate.tracking import detect_and_track, track_shapes
from tests.fakes import FakeDetector
from tests.tracking.synthetic import iou, make_frames


@pytest.fixture(scope="module")
def video():
    return make_frames(60)


def test_opencv_tracker_keeps_iou_on_90_percent_of_frames(video):
    frames, (truth,) = video
    (track,) = track_shapes(opencv_tracker.create(), frames, [TrackableShape("rectangle", truth[0])])
    ious = [iou(track.box(i), truth[i]) if i in track.shapes else 0.0 for i in range(len(frames))]
    good = sum(v >= 0.7 for v in ious) / len(ious)
    print(f"OpenCV tracker: IoU >= 0.7 on {good:.0%} of {len(frames)} frames (mean IoU {np.mean(ious):.3f})")
    assert good >= 0.9 and track.lost_at is None


class LosingTracker:
    """Follows by echoing the shape, then loses the object on frame ``lose_at``."""

    spec = aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self, lose_at, bad=None):
        self.lose_at, self.bad, self.calls, self.pre = lose_at, bad, [], 0

    def preprocess_image(self, ctx, image):
        self.pre += 1
        return image

    def init_tracking_state(self, ctx, pp, shape):
        return {"shape": shape}

    def track(self, ctx, pp, state):
        self.calls.append(ctx.frame_index)
        if ctx.frame_index == self.lose_at:
            return None
        if self.bad is not None and ctx.frame_index == 2:
            return self.bad
        return state["shape"]


def test_a_lost_object_stops_its_track(video):
    frames, (truth,) = video
    fn = LosingTracker(lose_at=5)
    (track,) = track_shapes(fn, frames[:20], [TrackableShape("rectangle", truth[0])])
    assert track.lost_at == 5 and sorted(track.shapes) == [0, 1, 2, 3, 4]
    assert fn.calls == [1, 2, 3, 4, 5]  # not asked again after the loss


def test_preprocessing_runs_once_per_frame_for_many_objects(video):
    frames, (truth,) = video
    fn = LosingTracker(lose_at=99)
    tracks = track_shapes(fn, frames[:10], [TrackableShape("rectangle", truth[0])] * 4)
    assert len(tracks) == 4 and fn.pre == 10 and len(fn.calls) == 4 * 9


@pytest.mark.parametrize(
    "bad, message",
    [
        (TrackableShape("polygon", [0, 0, 5, 0, 5, 5]), "returned a 'polygon' for a tracked 'rectangle'"),
        (TrackableShape("rectangle", [0, 0, float("nan"), 4]), "non-finite"),
        (TrackableShape("rectangle", [5, 5, 1, 1]), "inverted"),
        (TrackableShape("rectangle", [1, 2, 3]), "3 coordinates"),
        ({"type": "rectangle"}, "must return a TrackableShape"),
    ],
)
def test_bad_tracked_shapes_raise(video, bad, message):
    """A bad tracked shape (validate_tracked raises BadFunctionError inside) ends that track, with
    the validation message as its end_reason, instead of failing the whole video."""
    frames, (truth,) = video
    (track,) = track_shapes(LosingTracker(lose_at=99, bad=bad), frames[:4], [TrackableShape("rectangle", truth[0])])
    assert track.lost_at == 2 and sorted(track.shapes) == [0, 1]
    assert track.end_reason.startswith("tracking stopped on frame 2: track() on frame 2")
    assert message in track.end_reason


def test_unsupported_shape_types_and_spec_rules(video):
    frames, _ = video
    with pytest.raises(BadFunctionError, match="follows \\['rectangle'\\], not 'polygon'"):
        track_shapes(opencv_tracker.create(), frames[:2], [TrackableShape("polygon", [0, 0, 9, 0, 9, 9])])
    for bad in ([], ["cuboid"], ["rectangle", "rectangle"]):
        with pytest.raises(BadFunctionError):
            aa.TrackingFunctionSpec(supported_shape_types=bad)


def test_detect_and_track_gives_stable_ids(video):
    frames, truth = make_frames(40, objects=2)

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        rng = np.random.default_rng(i)
        return [aa.rectangle(k, np.array(truth[k][i]) + rng.normal(0, 1.5, 4), score=0.9) for k in range(2)]

    detector = FakeDetector(detect)
    tracks = detect_and_track(detector, opencv_tracker.create(), frames, key_frame_interval=5)
    assert len(tracks) == 2 and [t.label_id for t in tracks] == [0, 1]
    for t, gt in zip(tracks, truth):
        assert sorted(t.shapes) == list(range(40)) and t.lost_at is None
        assert np.mean([iou(t.box(i), gt[i]) for i in range(40)]) > 0.7
    assert len(detector.calls) == 8  # key frames only


def test_detect_and_track_ends_unconfirmed_tracks_and_starts_new_ones():
    frames, (truth,) = make_frames(30)

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, truth[i], score=0.8)] if i < 10 or i >= 20 else []

    tracks = detect_and_track(
        FakeDetector(detect), opencv_tracker.create(), frames, key_frame_interval=5, max_missed_key_frames=1
    )
    assert tracks[0].lost_at == 15 and len(tracks) == 2 and min(tracks[1].shapes) == 20


def test_read_frames_from_a_video_file(tmp_path, video):
    from autoannotate.video import read_frames, video_info
    from tests.tracking.synthetic import write_video

    frames, _ = video
    path = write_video(frames[:12], tmp_path / "clip.mp4")
    info = video_info(path)
    assert info["frames"] == 12 and (info["width"], info["height"]) == frames[0].size
    assert len(list(read_frames(path))) == 12 and len(list(read_frames(path, 3, 9))) == 6
    back = list(read_frames(path, 11, -1, -1))
    assert len(back) == 12
    with pytest.raises(aa.ImageLoadError):
        list(read_frames(tmp_path / "missing.mp4"))


def test_sam_tracker_plumbing_with_random_weights(video):
    torch = pytest.importorskip("torch")
    from autoannotate.functions import sam_tracker

    frames, (truth,) = video
    torch.manual_seed(0)
    fn = sam_tracker.create(pretrained=False, min_pixels=1)
    for kind, shape in [("rectangle", TrackableShape("rectangle", truth[0]))]:
        (track,) = track_shapes(fn, frames[:2], [shape])
        assert 0 in track.shapes
        if 1 in track.shapes:  # random weights may find nothing: then the track is lost, not broken
            assert track.shapes[1].type == kind
        else:
            assert track.lost_at == 1
