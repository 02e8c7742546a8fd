"""Review helpers against FiftyOne's real database: set_review counts only what it changed and
reports unknown ids, video frame labels are reviewable, reviewers can be balanced by labels."""

from __future__ import annotations

import pytest
from bson import ObjectId

import autoannotate as aa
from autoannotate.fiftyone import (
    ReviewResult,
    annotate_dataset,
    assign_reviewers,
    delete_run,
    needs_review_view,
    review_workload,
    set_review,
)
from tests.fakes import FakeDetector, StillTracker
from tests.tracking.synthetic import make_frames, write_video

fo = pytest.importorskip("fiftyone")


def routed(ctx, img):
    return [aa.rectangle(i % 2, [i, i, i + 10, i + 10], score=s) for i, s in enumerate([0.1, 0.5, 0.9])]


def pending(ds, field="auto"):
    return [
        {"sample_id": s.id, "label_id": d.id, "field": field}
        for s in ds
        for d in s[field].detections
        if d.review == "needs_review"
    ]


def test_set_review_counts_only_labels_it_changed_and_reports_unknown_ids(small_dataset):
    annotate_dataset(small_dataset, FakeDetector(routed), label_field="auto", review=(0.3, 0.8), progress=False)
    todo = pending(small_dataset)
    first = small_dataset.first()
    ghost = {"sample_id": first.id, "label_id": str(ObjectId()), "field": "auto"}
    bad_sample = {"sample_id": "not-an-id", "label_id": todo[0]["label_id"], "field": "auto"}
    other_sample = {"sample_id": small_dataset.last().id, "label_id": todo[0]["label_id"], "field": "auto"}
    out = set_review(small_dataset, [*todo[:2], ghost, bad_sample, other_sample], "approved")
    assert isinstance(out, ReviewResult)
    assert (out.changed, out.unchanged) == (2, 0)
    assert out.unknown == [ghost, bad_sample, other_sample]
    assert out.to_dict() == {"changed": 2, "unchanged": 0, "unknown": [ghost, bad_sample, other_sample]}
    # the same labels again: nothing changes, nothing counted as changed
    again = set_review(small_dataset, todo[:2], "approved")
    assert (again.changed, again.unchanged, again.unknown) == (0, 2, [])
    reviews = small_dataset.count_values("auto.detections.review")
    assert reviews == {"approved": 6 + 2, "needs_review": 4}
    only_ghost = set_review(small_dataset, [ghost], "rejected")
    assert only_ghost.changed == 0 and only_ghost.unknown == [ghost]
    assert small_dataset.count_values("auto.detections.review") == reviews


@pytest.fixture
def video_dataset(tmp_path, dataset_name):
    frames, _ = make_frames(8, objects=1)
    path = write_video(frames, tmp_path / "clip.mp4")
    ds = fo.Dataset(f"{dataset_name}-video")
    ds.add_sample(fo.Sample(filepath=str(path)))
    yield ds
    ds.delete()


def test_video_runs_review_frame_labels_and_save_a_needs_review_view(video_dataset):
    def detect(ctx, image):
        return [aa.rectangle(0, [10, 10, 60, 60], score=0.9), aa.rectangle(1, [100, 100, 150, 150], score=0.5)]

    report = annotate_dataset(
        video_dataset,
        FakeDetector(detect),
        label_field="auto",
        review=(0.3, 0.8),
        tracker=StillTracker(),
        progress=False,
    )
    assert report.needs_review == 8 and report.extra["needs_review_view"] == "autoannotate-frames-auto-needs-review"
    view = video_dataset.load_saved_view(report.extra["needs_review_view"])
    assert view.count("frames.auto.detections") == 8
    assert set(view.distinct("frames.auto.detections.label")) == {"dog"}
    assert needs_review_view(video_dataset, "auto").count("frames.auto.detections") == 8  # with or without frames.
    assert needs_review_view(video_dataset, "frames.auto").count("frames.auto.detections") == 8

    sample = video_dataset.first()
    dogs = [
        {"sample_id": sample.id, "frame_number": n, "label_id": d.id, "field": field}
        for n, f in sample.frames.items()
        for d in f.auto.detections
        if d.label == "dog"
        for field in ["frames.auto" if n % 2 else "auto"]  # the App names it frames.auto
    ]
    ghost = {"sample_id": sample.id, "frame_number": 1, "label_id": str(ObjectId()), "field": "frames.auto"}
    out = set_review(video_dataset, dogs[:3] + [ghost], "approved")
    assert (out.changed, out.unchanged, out.unknown) == (3, 0, [ghost])
    assert video_dataset.count_values("frames.auto.detections.review") == {"approved": 8 + 3, "needs_review": 5}
    assert video_dataset.load_saved_view(report.extra["needs_review_view"]).count("frames.auto.detections") == 5

    counts = assign_reviewers(video_dataset, "auto", ["ann", "bob"], balance="labels")
    assert counts == {"ann": 1, "bob": 0}
    assert review_workload(video_dataset, "frames.auto") == {"ann": {"samples": 1, "labels": 5}}

    done = delete_run(video_dataset, report.extra["run_key"], delete_labels=True)
    assert done["labels_deleted"] == 16 and done["views_deleted"] == ["autoannotate-frames-auto-needs-review"]
    assert video_dataset.count("frames.auto.detections") == 0 and video_dataset.list_saved_views() == []


def uneven(ds, counts):
    """Give the samples (in id order) ``counts`` needs-review labels each, plus one approved."""
    values = {}
    for sid, n in zip(sorted(ds.values("id")), counts):
        dets = [fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.1, 0.1], review="needs_review") for _ in range(n)]
        dets.append(fo.Detection(label="cat", bounding_box=[0.5, 0.5, 0.1, 0.1], review="approved"))
        values[sid] = fo.Detections(detections=dets)
    ds.set_values("auto", values, key_field="id")


def test_assign_reviewers_balances_labels_on_request(small_dataset):
    uneven(small_dataset, [9, 8, 1, 7, 1, 4])  # 30 labels on 6 samples
    by_samples = assign_reviewers(small_dataset, "auto", ["ann", "bob"])  # the default: samples
    assert by_samples == {"ann": 3, "bob": 3}
    work = review_workload(small_dataset, "auto")
    assert work == {"ann": {"samples": 3, "labels": 9 + 1 + 1}, "bob": {"samples": 3, "labels": 8 + 7 + 4}}

    by_labels = assign_reviewers(small_dataset, "auto", ["ann", "bob"], balance="labels")
    work = review_workload(small_dataset, "auto")
    assert {w["labels"] for w in work.values()} == {15} and sum(by_labels.values()) == 6
    assert small_dataset.match_tags(["review:ann", "review:bob"]).count() == 6  # each sample once
    assert all(len([t for t in tags if t.startswith("review:")]) == 1 for tags in small_dataset.values("tags"))

    three = assign_reviewers(small_dataset, "auto", ["ann", "bob", "cy"], balance="labels")
    loads = sorted(w["labels"] for w in review_workload(small_dataset, "auto").values())
    assert loads == [9, 10, 11] and sum(three.values()) == 6
    with pytest.raises(aa.BadParameterError, match="balance must be one of"):
        assign_reviewers(small_dataset, "auto", ["ann"], balance="time")
