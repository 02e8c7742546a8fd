"""Video detection validates and maps like images do; one object that cannot be tracked never
fails the video (the real OpenCV tracker on synthetic clips)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate import BadFunctionError, TrackableShape, TrackLost
from autoannotate.functions import opencv_tracker
from autoannotate.interface import TrackingFunctionContext, TrackingFunctionShapeContext
from autoannotate.mapping import LabelMapping, TargetLabel
from autoannotate.tracking import detect_and_track, track_shapes
from tests.fakes import FakeDetector
from tests.tracking.synthetic import EDGE_BOX, iou, make_frames, make_panned_frames


@pytest.fixture(scope="module")
def clip():
    return make_frames(10, objects=2)


@pytest.fixture(scope="module")
def panned():
    return make_panned_frames(10)


def frame_of(ctx) -> int:
    return int(ctx.frame_name.split()[-1])


class EchoTracker:
    """Echoes the shape it started on; fails for objects whose box starts left of ``x`` (x1 < x):
    in ``init_tracking_state`` when ``fail_init``, in ``track`` on frame ``fail_track_at``."""

    spec = aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self, x: float = 1e9, fail_init: bool = False, fail_track_at: int | None = None):
        self.x, self.fail_init, self.fail_track_at = x, fail_init, fail_track_at
        self.calls: list[tuple[int, float]] = []

    def init_tracking_state(self, ctx, pp, shape):
        if self.fail_init and shape.points[0] < self.x:
            raise RuntimeError("cannot start here\nsecond line of details")
        return {"shape": shape}

    def track(self, ctx, pp, state):
        x1 = state["shape"].points[0]
        self.calls.append((ctx.frame_index, x1))
        if ctx.frame_index == self.fail_track_at and x1 < self.x:
            raise ValueError("boom\nlong traceback-like text")
        return state["shape"]


# -- detections go through validation, threshold and mapping ------------------------------------


@pytest.mark.timeout(20, method="thread")  # MIL used to loop forever in C: a signal cannot stop it
def test_a_reversed_box_raises_instead_of_looping(clip):
    frames, _ = clip
    detector = FakeDetector(lambda ctx, img: [aa.rectangle(0, [10, 10, 5, 5], score=0.9)])
    with pytest.raises(BadFunctionError, match=r"inverted rectangle.*") as e:
        detect_and_track(detector, opencv_tracker.create(), frames)
    assert "'frame 0'" in str(e.value)
    assert detector.calls == ["frame 0"]


@pytest.mark.timeout(20, method="thread")  # MIL used to loop forever in C: a signal cannot stop it
def test_a_reversed_box_on_a_later_key_frame_names_that_frame(clip):
    frames, (truth, _) = clip

    def detect(ctx, img):
        i = frame_of(ctx)
        return [aa.rectangle(0, truth[i] if i < 5 else [10, 10, 5, 5], score=0.9)]

    with pytest.raises(BadFunctionError, match="'frame 5'"):
        detect_and_track(FakeDetector(detect), EchoTracker(), frames, key_frame_interval=5)


def test_an_unknown_label_id_raises(clip):
    frames, (truth, _) = clip
    detector = FakeDetector(lambda ctx, img: [aa.rectangle(17, truth[0], score=7.0)])
    with pytest.raises(BadFunctionError, match=r"label id 17, which its spec does not have \(spec ids: \[0, 1\]\)"):
        detect_and_track(detector, opencv_tracker.create(), frames)


def test_a_score_outside_0_1_raises(clip):
    frames, (truth, _) = clip
    detector = FakeDetector(lambda ctx, img: [aa.rectangle(1, truth[0], score=7.0)])
    with pytest.raises(BadFunctionError, match=r"score must be a number in \[0, 1\], the function returned 7\.0"):
        detect_and_track(detector, opencv_tracker.create(), frames)


def test_track_labels_are_the_mapping_target_ids(clip):
    frames, truth = clip
    detector = FakeDetector(lambda ctx, img: [aa.rectangle(k, truth[k][frame_of(ctx)], score=0.9) for k in range(2)])
    targets = [TargetLabel("animal-dog", 5), TargetLabel("animal-cat", 9), TargetLabel("bird", 2)]
    mapping = LabelMapping.build(detector.spec, targets, label_map={"cat": "animal-cat", "dog": "animal-dog"})
    tracks = detect_and_track(detector, opencv_tracker.create(), frames, mapping=mapping, key_frame_interval=5)
    assert [t.label_id for t in tracks] == [9, 5]  # cat (0) -> animal-cat (9), dog (1) -> animal-dog (5)
    for t, gt in zip(tracks, truth):
        assert sorted(t.shapes) == list(range(10)) and t.lost_at is None and t.end_reason is None
        assert np.mean([iou(t.box(i), gt[i]) for i in range(10)]) > 0.7


def test_without_a_mapping_labels_are_the_function_ids(clip):
    frames, truth = clip
    detector = FakeDetector(
        lambda ctx, img: [aa.rectangle(1 - k, truth[k][frame_of(ctx)], score=0.9) for k in range(2)]
    )
    tracks = detect_and_track(detector, EchoTracker(), frames, key_frame_interval=5)
    assert [t.label_id for t in tracks] == [1, 0]


def test_unmatched_labels_are_dropped_when_the_mapping_allows_it(clip):
    frames, truth = clip
    detector = FakeDetector(lambda ctx, img: [aa.rectangle(k, truth[k][frame_of(ctx)], score=0.9) for k in range(2)])
    mapping = LabelMapping.build(detector.spec, [TargetLabel("dog", 3)], allow_unmatched=True)
    tracks = detect_and_track(detector, EchoTracker(), frames, mapping=mapping)
    assert [t.label_id for t in tracks] == [3] and tracks[0].box(0) == truth[1][0]


def test_conf_threshold_is_applied_and_passed_to_the_detector(clip):
    frames, truth = clip
    seen = []

    def detect(ctx, img):
        seen.append(ctx.conf_threshold)
        i = frame_of(ctx)
        return [aa.rectangle(0, truth[0][i], score=0.9), aa.rectangle(1, truth[1][i], score=0.2)]

    tracks = detect_and_track(FakeDetector(detect), opencv_tracker.create(), frames, conf_threshold=0.5)
    assert seen == [0.5, 0.5]  # key frames 0 and 5
    assert len(tracks) == 1 and tracks[0].label_id == 0 and tracks[0].score == 0.9
    assert sorted(tracks[0].shapes) == list(range(10))
    everything = detect_and_track(FakeDetector(detect), EchoTracker(), frames, conf_threshold=0.1)
    assert sorted(t.label_id for t in everything) == [0, 1]
    with pytest.raises(aa.BadParameterError):
        detect_and_track(FakeDetector(detect), EchoTracker(), frames, conf_threshold=1.5)


# -- an object at the frame's edge: the user's YOLOX box -----------------------------------------


def test_yolox_box_touching_the_bottom_edge_is_tracked(panned):
    frames, (tall, face) = panned

    def detect(ctx, img):
        return [aa.rectangle(0, EDGE_BOX, score=0.8), aa.rectangle(1, face[0], score=0.9)] if frame_of(ctx) == 0 else []

    tracks = detect_and_track(FakeDetector(detect), opencv_tracker.create(), frames, key_frame_interval=100)
    assert len(tracks) == 2
    edge, normal = tracks
    assert edge.shapes[0].points == EDGE_BOX and edge.label_id == 0
    for t, gt in ((edge, tall), (normal, face)):
        assert t.end_reason is None and t.lost_at is None and sorted(t.shapes) == list(range(10))
        ious = [iou(t.box(i), gt[i]) for i in range(1, 10)]
        assert min(ious) > 0.7, ious
    # really followed leftwards (4 px a frame), the whole height of the frame
    assert edge.box(9)[0] < edge.box(0)[0] - 25
    assert edge.box(9)[1] < 5 and edge.box(9)[3] > 295


def test_track_shapes_follows_boxes_on_every_edge(panned):
    frames, (tall, face) = panned
    boxes = [
        EDGE_BOX,
        (0, 0, 400, 300),
        (0, 100, 400, 200),
        (100, 0, 160, 300),
        (0, 50, 70, 120),
        (330, 0, 400, 60),
        (-20, 250, 50, 330),
        (395, 295, 400, 300),
        (200, 150, 203, 152),
    ]
    tracks = track_shapes(opencv_tracker.create(), frames[:4], [TrackableShape("rectangle", b) for b in boxes])
    assert len(tracks) == len(boxes)
    for t in tracks:
        assert not t.failed, t.end_reason  # lost or gone out of the frame is fine, failing is not
    assert sorted(tracks[0].shapes) == [0, 1, 2, 3]
    assert min(iou(tracks[0].box(i), tall[i]) for i in range(1, 4)) > 0.8
    assert tracks[6].shapes[0].points == (0, 250, 50, 300)  # clipped to the frame before tracking


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize(
    "box",
    [
        EDGE_BOX,
        (0, 0, 400, 300),
        (0, 0, 396, 296),
        (3, 3, 397, 297),
        (0, 0, 400, 150),
        (0, 0, 200, 300),
        (0, 0, 1, 1),
        (100, 100, 101, 140),
        (100, 100, 104, 104),
        (100, 100, 110, 102),
        (396, 296, 400, 300),
    ],
)
def test_opencv_tracker_starts_and_steps_on_any_box(panned, box):
    """Boxes that made MIL assert (full height/width, nearly the whole frame) or hang (tiny)."""
    frames, _ = panned
    fn = opencv_tracker.create()
    shape = TrackableShape("rectangle", box)
    state = fn.init_tracking_state(
        TrackingFunctionShapeContext("rectangle", 0), fn.preprocess_image(TrackingFunctionContext(0), frames[0]), shape
    )
    for i in (1, 2):
        try:
            out = fn.track(
                TrackingFunctionShapeContext("rectangle", i),
                fn.preprocess_image(TrackingFunctionContext(i), frames[i]),
                state,
            )
        except TrackLost:
            break  # lost with a reason is fine, failing is not
        x1, y1, x2, y2 = out.points
        # the whole box the object is predicted to occupy (the driver clips it to the frame)
        assert x1 < x2 and y1 < y2 and abs((x2 - x1) - (box[2] - box[0])) <= 0.1 * (box[2] - box[0]) + 1e-6
        assert x1 < 400 and x2 > 0 and y1 < 300 and y2 > 0


def test_opencv_tracker_reports_boxes_the_size_of_the_object(panned):
    frames, (tall, _) = panned
    (t,) = track_shapes(opencv_tracker.create(), frames[:3], [TrackableShape("rectangle", EDGE_BOX)])
    x1, y1, x2, y2 = t.box(2)
    assert y1 <= 2.5 and y2 >= 298.0 and abs((x2 - x1) - 144.0) < 1e-6
    assert abs(x1 - tall[2][0]) <= 3


def test_a_tiny_frame_is_tracked():
    """A 12x30 frame (too small for OpenCV's MIL tracker, which needed 16x16 px) is tracked."""
    texture = np.random.default_rng(0).integers(0, 256, (30, 12), dtype=np.uint8)
    frames = [PIL.Image.fromarray(texture).convert("RGB")] * 3
    (t,) = track_shapes(opencv_tracker.create(), frames, [TrackableShape("rectangle", (0, 0, 12, 30))])
    assert t.end_reason is None and sorted(t.shapes) == [0, 1, 2]
    assert np.allclose(t.box(2), (0, 0, 12, 30), atol=0.5), t.box(2)


def test_the_opencv_tracker_gives_the_same_boxes_in_every_run(panned):
    """OpenCV's MIL tracker, which this one replaced, seeded its sampler from the clock: runs a
    second apart gave boxes a pixel apart whatever cv2.setRNGSeed said. Three runs with different
    seeds, more than a clock second apart (the last with one OpenCV thread), must agree exactly."""
    import time

    import cv2

    frames, (tall, face) = panned
    runs = []
    threads = cv2.getNumThreads()
    try:
        for seed, n_threads in ((1, threads), (2, threads), (3, 1)):  # the last on one OpenCV thread
            if runs:
                time.sleep(1.1)
            cv2.setRNGSeed(seed)
            cv2.setNumThreads(n_threads)
            tracks = track_shapes(
                opencv_tracker.create(),
                frames,
                [TrackableShape("rectangle", face[0]), TrackableShape("rectangle", EDGE_BOX)],
            )
            runs.append([[t.shapes[i].points for i in sorted(t.shapes)] for t in tracks])
    finally:
        cv2.setNumThreads(threads)
    assert runs[0] == runs[1] == runs[2]
    assert [len(r) for r in runs[0]] == [10, 10]


# -- one object failing ends its track only --------------------------------------------------------


def test_init_failing_for_one_object_leaves_the_others_tracked(clip):
    frames, truth = clip  # object 0 starts at x 20, object 1 at x 255
    detector = FakeDetector(lambda ctx, img: [aa.rectangle(k, truth[k][frame_of(ctx)], score=0.9) for k in range(2)])
    tracks = detect_and_track(detector, EchoTracker(x=100, fail_init=True), frames, key_frame_interval=100)
    failed, ok = tracks
    assert failed.label_id == 0 and failed.lost_at == 1 and sorted(failed.shapes) == [0]
    assert failed.shapes[0].points == truth[0][0]
    assert (
        failed.end_reason
        == "not tracked: the tracker could not start on this box (error: RuntimeError: cannot start here)"
    )
    assert ok.label_id == 1 and ok.end_reason is None and ok.lost_at is None and sorted(ok.shapes) == list(range(10))


def test_a_real_opencv_error_on_start_becomes_the_end_reason(panned):
    """OpenCV's MIL tracker on the raw box (what opencv_tracker once was) as a function: its
    cv2.error ends that object only, with OpenCV's first line as the reason."""
    import cv2

    class RawMil(opencv_tracker.OpenCvTracker):
        def preprocess_image(self, ctx, image):
            return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])

        def init_tracking_state(self, ctx, pp, shape):
            x1, y1, x2, y2 = shape.points
            tracker = cv2.TrackerMIL.create()
            tracker.init(pp, (int(round(x1)), int(round(y1)), int(round(x2 - x1)), int(round(y2 - y1))))
            return tracker

        def track(self, ctx, pp, state):
            ok, (x, y, w, h) = state.update(pp)
            return TrackableShape("rectangle", (x, y, x + w, y + h)) if ok else None

    frames, (tall, face) = panned
    edge, normal = track_shapes(
        RawMil(), frames[:5], [TrackableShape("rectangle", EDGE_BOX), TrackableShape("rectangle", face[0])]
    )
    assert edge.lost_at == 1 and sorted(edge.shapes) == [0] and "\n" not in edge.end_reason
    assert edge.end_reason.startswith("not tracked: the tracker could not start on this box (error: error: OpenCV(")
    assert "!posSamples.empty()" in edge.end_reason
    assert normal.end_reason is None and sorted(normal.shapes) == [0, 1, 2, 3, 4]


def test_track_failing_on_frame_3_ends_that_track_only(clip):
    frames, truth = clip
    fn = EchoTracker(x=100, fail_track_at=3)
    failed, ok = track_shapes(fn, frames, [TrackableShape("rectangle", truth[k][0]) for k in range(2)], labels=[0, 1])
    assert failed.lost_at == 3 and sorted(failed.shapes) == [0, 1, 2]
    assert failed.end_reason == "tracking stopped on frame 3: the tracking function raised ValueError: boom"
    assert ok.lost_at is None and ok.end_reason is None and sorted(ok.shapes) == list(range(10))
    assert [f for f, x in fn.calls if x < 100] == [1, 2, 3]  # not asked again after failing


def test_track_failing_in_detect_and_track_ends_that_track_only(clip):
    frames, truth = clip
    detector = FakeDetector(
        lambda ctx, img: [aa.rectangle(k, truth[k][0], score=0.9) for k in range(2)] if frame_of(ctx) == 0 else []
    )
    failed, ok = detect_and_track(detector, EchoTracker(x=100, fail_track_at=3), frames, key_frame_interval=100)
    assert failed.lost_at == 3 and sorted(failed.shapes) == [0, 1, 2] and "frame 3" in failed.end_reason
    assert ok.end_reason is None and sorted(ok.shapes) == list(range(10))


def test_a_track_lost_normally_has_no_end_reason(clip):
    frames, (truth, _) = clip

    class Losing(EchoTracker):
        def track(self, ctx, pp, state):
            return None if ctx.frame_index == 4 else state["shape"]

    (t,) = track_shapes(Losing(), frames, [TrackableShape("rectangle", truth[0])])
    assert t.lost_at == 4 and t.end_reason is None and sorted(t.shapes) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "box, size_text",
    [
        ((399.5, 10, 420, 50), "0.5x40"),  # 0.5 px wide once clipped
        ((500, 10, 600, 50), "0x40"),  # right of the frame
        ((10, -50, 60, -5), "50x0"),  # above it
        ((100, 100, 101, 150), "1x50"),  # too thin to track
    ],
)
def test_a_degenerate_box_is_not_tracked(panned, box, size_text):
    frames, (tall, _) = panned
    bad, good = track_shapes(
        opencv_tracker.create(), frames[:4], [TrackableShape("rectangle", box), TrackableShape("rectangle", EDGE_BOX)]
    )
    assert bad.lost_at == 1 and sorted(bad.shapes) == [0] and bad.shapes[0].points == box
    assert bad.end_reason.startswith(f"not tracked: the box is {size_text} px after clipping to the 400x300 frame")
    assert good.end_reason is None and sorted(good.shapes) == [0, 1, 2, 3]


def test_a_box_outside_the_frame_from_the_detector_does_not_fail_the_video(panned):
    frames, (tall, face) = panned

    def detect(ctx, img):
        i = frame_of(ctx)
        return [aa.rectangle(0, (500, 10, 600, 50), score=0.9), aa.rectangle(1, face[i], score=0.9)]

    tracks = detect_and_track(FakeDetector(detect), opencv_tracker.create(), frames, key_frame_interval=5)
    outside = [t for t in tracks if t.label_id == 0]
    assert [min(t.shapes) for t in outside] == [0, 5]  # tried again on each key frame, never tracked
    assert all(t.lost_at == min(t.shapes) + 1 and "0x40 px" in t.end_reason for t in outside)
    (normal,) = [t for t in tracks if t.label_id == 1]
    assert normal.end_reason is None and sorted(normal.shapes) == list(range(10))
