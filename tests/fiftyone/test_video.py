"""Video datasets in FiftyOne's real database: track_labels (API and operator) and auto-labelling
videos with tracks."""

from __future__ import annotations

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.fiftyone import annotate_dataset, list_runs, track_labels
from tests.fakes import FakeDetector
from tests.tracking.synthetic import iou, make_frames, write_video

fo = pytest.importorskip("fiftyone")
foo = pytest.importorskip("fiftyone.operators")

N = 30


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, truth = make_frames(N, objects=2)
    return write_video(frames, tmp_path_factory.mktemp("video") / "clip.mp4"), truth, frames[0].size


@pytest.fixture
def video_dataset(clip, dataset_name):
    path, truth, (w, h) = clip
    ds = fo.Dataset(f"{dataset_name}-video")
    sample = fo.Sample(filepath=str(path))
    x1, y1, x2, y2 = truth[0][0]
    sample.frames[1]["detections"] = fo.Detections(
        detections=[
            fo.Detection(label="cat", bounding_box=[x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h], confidence=1.0)
        ]
    )
    ds.add_sample(sample)
    yield ds
    ds.delete()


def boxes_by_frame(ds, field="detections", index=None):
    s = ds.first()
    w, h = 320, 240
    out = {}
    for n, f in s.frames.items():
        for d in f[field].detections if f[field] is not None else []:
            if index is None or d.index == index:
                x, y, bw, bh = d.bounding_box
                out.setdefault(n, []).append((x * w, y * h, (x + bw) * w, (y + bh) * h, d))
    return out


def test_track_labels_propagates_forward_with_an_index(video_dataset, clip):
    _, truth, _ = clip
    report = track_labels(video_dataset, "detections", num_frames=N - 1)
    assert report.success and report.annotations_added == N - 1
    got = boxes_by_frame(video_dataset)
    assert sorted(got) == list(range(1, N + 1))
    ious = [iou(got[n][0][:4], truth[0][n - 1]) for n in range(1, N + 1)]
    assert sum(v >= 0.7 for v in ious) / N >= 0.9
    indexes = {got[n][0][4].index for n in got}
    assert indexes == {0}
    d = got[5][0][4]
    assert d.tracked and d.label == "cat" and d.confidence == 1.0 and d.autoannotate_run == report.extra["run_key"]
    again = track_labels(video_dataset, "detections", num_frames=N - 1)
    assert again.annotations_added == 0  # already tracked frames are kept
    assert list_runs(video_dataset)[-1]["kind"] == "track_labels"


def test_track_labels_backward_from_a_later_frame(video_dataset, clip):
    path, truth, (w, h) = clip
    s = video_dataset.first()
    x1, y1, x2, y2 = truth[0][19]
    s.frames[20]["detections"] = fo.Detections(
        detections=[fo.Detection(label="cat", bounding_box=[x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h], index=7)]
    )
    s.save()
    track_labels(video_dataset, "detections", frame_number=20, num_frames=10, direction="backward")
    got = boxes_by_frame(video_dataset, index=7)
    assert sorted(got) == list(range(10, 21))
    assert np.mean([iou(got[n][0][:4], truth[0][n - 1]) for n in got]) > 0.7


def test_track_labels_operator_with_selected_label(video_dataset):
    label = video_dataset.first().frames[1]["detections"].detections[0]
    result = foo.execute_operator(
        "@autoannotate/autoannotate/track_labels",
        ctx={
            "dataset": video_dataset.name,
            "params": {"view_target": "DATASET", "label_field": "frames.detections", "num_frames": 10},
            "selected_labels": [
                {
                    "label_id": label.id,
                    "sample_id": video_dataset.first().id,
                    "field": "frames.detections",
                    "frame_number": 1,
                }
            ],
        },
    )
    assert result.error is None and result.result["annotations_added"] == 10
    assert sorted(boxes_by_frame(video_dataset)) == list(range(1, 12))


def test_auto_label_on_a_video_dataset_gives_frame_labels_with_track_ids(video_dataset, clip):
    _, truth, _ = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(k, truth[k][i], score=s) for k, s in ((0, 0.9), (1, 0.5))]

    report = annotate_dataset(
        video_dataset, FakeDetector(detect), label_field="auto", review=(0.3, 0.8), progress=False
    )
    assert report.images_processed == 1 and report.extra["tracks"] == 2
    # review counts are frame labels, like annotations_added (approved + needs review == stored);
    # the same split per track is in extra
    assert (report.auto_approved, report.needs_review) == (N, N) and report.annotations_added == 2 * N
    assert report.extra["tracks_by_review"] == {"approved": 1, "needs_review": 1}
    got = boxes_by_frame(video_dataset, field="auto")
    assert sorted(got) == list(range(1, N + 1)) and all(len(v) == 2 for v in got.values())
    for n, items in got.items():
        by_label = {d.label: (box, d) for *box, d in items}
        assert iou(by_label["cat"][0], truth[0][n - 1]) > 0.6
        assert by_label["cat"][1].index != by_label["dog"][1].index
        assert by_label["cat"][1].review == "approved" and by_label["dog"][1].review == "needs_review"
    skipped = annotate_dataset(video_dataset, FakeDetector(detect), label_field="auto", progress=False)
    assert skipped.images_skipped == 1


def test_video_errors(video_dataset, small_dataset):
    with pytest.raises(aa.BadParameterError, match="needs a video collection"):
        track_labels(small_dataset, "ground_truth")
    with pytest.raises(aa.BadParameterError, match="not a frame field"):
        track_labels(video_dataset, "nope")
    with pytest.raises(aa.BadParameterError, match="direction"):
        track_labels(video_dataset, "detections", direction="sideways")


def test_auto_label_operator_on_a_video_dataset_takes_the_tracker_from_the_form(video_dataset, models_env):
    params = {
        "view_target": "DATASET",
        "function": "yolox",
        "label_field": "auto",
        "route": False,
        "tracker": "opencv_tracker",
        "key_frame_interval": 10,
    }
    ctx = {"dataset": video_dataset.name, "params": params}
    result = foo.execute_operator("@autoannotate/autoannotate/auto_label", ctx=ctx)
    assert result.error is None, result.error_message
    assert result.result["images_processed"] == 1 and result.result["unit"] == "videos"
    (run,) = [r for r in list_runs(video_dataset) if r["kind"] == "video"]
    assert run["tracker"] == "opencv_tracker" and run["key_frame_interval"] == 10 and run["status"] == "completed"
    # the form offers the registry's trackers only
    with pytest.raises(Exception, match="Path: tracker. Reason: Invalid enum value"):
        foo.execute_operator(
            "@autoannotate/autoannotate/auto_label",
            ctx={"dataset": video_dataset.name, "params": dict(params, tracker="x")},
        )


# -- sam2_video: a tiny random-weight model saved as sam2.1-hiera-tiny, found through AUTOANNOTATE_MODELS


@pytest.fixture(scope="module")
def tiny_sam2_dir(tmp_path_factory):
    from tests.functions.sam2_video_tiny import save_tiny_video_model

    models = tmp_path_factory.mktemp("tiny-models")
    save_tiny_video_model(models / "sam2.1-hiera-tiny")
    return models


@pytest.fixture
def tiny_sam2_env(tiny_sam2_dir, models_env, monkeypatch):
    import os

    monkeypatch.setenv("AUTOANNOTATE_MODELS", os.pathsep.join([str(tiny_sam2_dir), str(models_env)]))
    return tiny_sam2_dir


def test_track_labels_with_sam2_video_writes_boxes_and_masks_with_the_index(video_dataset, clip, tiny_sam2_env):
    from autoannotate.fiftyone.convert import abs_box
    from autoannotate.functions import sam2_video
    from autoannotate.interface import TrackableShape
    from autoannotate.tracking import track_shapes
    from autoannotate.video import read_frames

    path, _, (w, h) = clip
    params = {"min_score": 0.0}
    report = track_labels(
        video_dataset, "detections", tracker="sam2_video", tracker_params=params, num_frames=8, output="masks"
    )
    assert report.success and report.annotations_added == 8
    assert list_runs(video_dataset)[-1]["tracker"] == "sam2_video" and list_runs(video_dataset)[-1]["output"] == "masks"
    got = boxes_by_frame(video_dataset, index=0)
    assert sorted(got) == list(range(1, 10))
    # what the function itself gives for the same box on the same frames
    source = video_dataset.first().frames[1]["detections"].detections[0]
    (track,) = track_shapes(
        sam2_video.create(**params),
        read_frames(path, 0, 9),
        [TrackableShape("rectangle", abs_box(source.bounding_box, w, h))],
        masks=True,
    )
    for n in range(2, 10):
        (x1, y1, x2, y2, d) = got[n][0]
        assert (x1, y1, x2, y2) == pytest.approx(track.shapes[n - 1].box(), abs=1e-3)
        assert d.tracked and d.mask is not None and d.mask.shape == (round(y2 - y1), round(x2 - x1))
        assert d.mask.sum() == track.shapes[n - 1].bitmap.sum()
    with pytest.raises(aa.BadParameterError, match="gives no masks"):
        track_labels(video_dataset, "detections", output="masks")


def test_auto_label_videos_with_the_sam2_video_tracker(video_dataset, clip, tiny_sam2_env):
    _, truth, _ = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(k, truth[k][i], score=0.9) for k in (0, 1)]

    report = annotate_dataset(
        video_dataset,
        FakeDetector(detect),
        label_field="auto",
        tracker="sam2_video",
        tracker_params={"min_score": 0.0},
        key_frame_interval=10,
        progress=False,
    )
    assert report.images_processed == 1 and report.extra["tracks"] >= 2
    (run,) = [r for r in list_runs(video_dataset) if r["kind"] == "video"]
    assert run["tracker"] == "sam2_video" and run["status"] == "completed"
    got = boxes_by_frame(video_dataset, field="auto")
    assert sorted(got) == list(range(1, N + 1))
    for items in got.values():
        assert {d.label for *_, d in items} == {"cat", "dog"} and all(d.index is not None for *_, d in items)


def test_track_labels_with_sam2_video_writes_polylines_of_the_masks_with_the_index(video_dataset, clip, tiny_sam2_env):
    from autoannotate.fiftyone.convert import abs_box
    from autoannotate.functions import sam2_video
    from autoannotate.interface import TrackableShape
    from autoannotate.masks import mask_to_polygon
    from autoannotate.tracking import track_shapes
    from autoannotate.video import read_frames

    path, _, (w, h) = clip
    params = {"min_score": 0.0}
    report = track_labels(
        video_dataset, "detections", tracker="sam2_video", tracker_params=params, num_frames=8, output="polylines"
    )
    assert report.success and report.annotations_added == 8 and report.extra["polylines_added"] == 8
    assert report.extra["label_fields"] == ["frames.detections", "frames.detections_polylines"]
    assert list_runs(video_dataset)[-1]["output"] == "polylines"
    boxes = boxes_by_frame(video_dataset, index=0)
    assert sorted(boxes) == list(range(1, 10))
    source = video_dataset.first().frames[1]["detections"].detections[0]
    (track,) = track_shapes(
        sam2_video.create(**params),
        read_frames(path, 0, 9),
        [TrackableShape("rectangle", abs_box(source.bounding_box, w, h))],
        masks=True,
    )
    frames = video_dataset.first().frames
    assert frames[1]["detections_polylines"] is None  # the source frame keeps its own label
    for n in range(2, 10):
        (line,) = frames[n]["detections_polylines"].polylines
        assert line.index == 0 and line.label == "cat" and line.closed and line.filled and line.tracked
        assert line.confidence == 1.0 and line.autoannotate_run == report.extra["run_key"]
        poly = mask_to_polygon(track.shapes[n - 1].bitmap)
        expected = [v / (w if i % 2 == 0 else h) for i, v in enumerate(poly)]
        assert [v for point in line.points[0] for v in point] == pytest.approx(expected)
        assert boxes[n][0][4].mask is None  # boxes, and the outline beside them
    again = track_labels(
        video_dataset, "detections", tracker="sam2_video", tracker_params=params, num_frames=8, output="polylines"
    )
    assert again.annotations_added == 0 and again.extra["polylines_added"] == 0  # kept unless overwrite
    with pytest.raises(aa.BadParameterError, match="gives no masks"):
        track_labels(video_dataset, "detections", output="polylines")
    with pytest.raises(aa.BadParameterError, match="output must be one of"):
        track_labels(video_dataset, "detections", output="points")


def test_auto_label_videos_with_sam2_video_writes_mask_and_polygon_classes_from_its_masks(
    video_dataset, clip, tiny_sam2_env
):
    _, truth, _ = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(k, truth[k][i], score=0.9) for k in (0, 1)]

    def run(tracker, **kw):
        return annotate_dataset(
            video_dataset,
            FakeDetector(detect),
            label_field="auto",
            classes=[("cat", "mask"), ("dog", "polygon")],
            tracker=tracker,
            key_frame_interval=10,
            progress=False,
            **kw,
        )

    with pytest.raises(aa.BadParameterError, match="tracker that gives masks"):
        run("opencv_tracker")
    report = run("sam2_video", tracker_params={"min_score": 0.0})
    assert report.success and report.images_processed == 1
    assert report.extra["label_fields"] == ["frames.auto", "frames.auto_polylines"]
    frames = video_dataset.first().frames
    masked = outlined = 0
    for n in range(1, N + 1):
        for d in frames[n]["auto"].detections if frames[n]["auto"] else []:
            assert d.label == "cat" and d.index is not None
            if getattr(d, "refined", None) is False:  # the key frame the track starts on: the detector's box
                assert d.mask is None and (n - 1) % 10 == 0
            else:
                x, y, bw, bh = d.bounding_box
                assert d.mask is not None and d.mask.shape == (round(bh * 240), round(bw * 320))
                masked += 1
        for p in frames[n]["auto_polylines"].polylines if frames[n]["auto_polylines"] else []:
            assert p.label == "dog" and p.closed and p.index is not None
            outlined += getattr(p, "refined", None) is not False
    # the tracker's masks, not box refinement, on the tracked frames
    assert masked >= N // 2 and outlined >= N // 2
    assert report.extra["unrefined_labels"] >= 2


def test_track_labels_operator_offers_the_polylines_output(video_dataset):
    params = {"view_target": "DATASET", "label_field": "frames.detections", "num_frames": 3}
    ctx = {"dataset": video_dataset.name, "params": dict(params, output="polylines")}
    # a valid choice of the form, refused by track_labels for a tracker without masks
    with pytest.raises(Exception, match="gives no masks; use sam2_video or edgetam_video for output='polylines'"):
        foo.execute_operator("@autoannotate/autoannotate/track_labels", ctx=ctx)
    with pytest.raises(Exception, match="Path: output. Reason: Invalid enum value"):
        foo.execute_operator(
            "@autoannotate/autoannotate/track_labels",
            ctx={"dataset": video_dataset.name, "params": dict(params, output="points")},
        )


def test_track_labels_in_the_app_shows_its_counts_and_why_tracks_ended(dataset_name, tmp_path):
    """The App's execution path (a generator): progress, then the report's view with the count of
    tracked labels and, as warnings, the object that walked out of the frame."""
    from tests.fiftyone.test_operators import _as_the_app_runs_it
    from tests.tracking.synthetic import make_leaving_frames

    frames, truth = make_leaving_frames(24)  # half out of the 320x240 frame on frame 18 (number 19)
    ds = fo.Dataset(f"{dataset_name}-leaving")
    try:
        sample = fo.Sample(filepath=str(write_video(frames, tmp_path / "leaving.mp4")))
        x1, y1, x2, y2 = truth[0]
        sample.frames[1]["detections"] = fo.Detections(
            detections=[fo.Detection(label="cat", bounding_box=[x1 / 320, y1 / 240, (x2 - x1) / 320, (y2 - y1) / 240])]
        )
        ds.add_sample(sample)
        uri = "@autoannotate/autoannotate/track_labels"
        assert foo.get_operator(uri).config.execute_as_generator
        messages = _as_the_app_runs_it(
            ds, {"view_target": "DATASET", "label_field": "frames.detections", "num_frames": 23}, uri=uri
        )
        ops = [m["operator_uri"] for m in messages]
        assert ops[0] == "set_progress" and ops[-2:] == ["reload_dataset", "show_output"]
        labels = [m["params"].get("label") for m in messages if m["operator_uri"] == "set_progress"]
        assert labels[0] == "loading opencv_tracker and reading the videos"
        assert labels[-1] == "1 / 1 samples: saving the tracked labels"
        out = messages[-1]["params"]
        results, props = out["results"], out["outputs"]
        assert props["view"]["label"] == "Track labels report"
        run = list_runs(ds)[-1]
        assert run["kind"] == "track_labels" and results["run_key"] == run["run_key"]
        assert results["annotations_added"] == 17  # frames 2..18: the cat is half out on frame 19
        assert results["summary"].startswith("**1 of 1 samples labelled**, 17 labels stored")
        (warning,) = results["warnings"]
        assert warning["file"] == "leaving.mp4" and "ended on frame 19: the object left the frame" in warning["reason"]
        assert props["type"]["properties"]["warnings"]["view"]["name"] == "TableView"
        assert sorted(boxes_by_frame(ds)) == list(range(1, 19))
    finally:
        ds.delete()
