"""annotate_dataset against FiftyOne's real embedded database."""

from __future__ import annotations

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.fiftyone import ClassSpec, annotate_dataset, get_run, list_runs
from tests.fakes import FakeDetector
from tests.fiftyone.conftest import gt_snapshot

fo = pytest.importorskip("fiftyone")
from fiftyone import ViewField as F  # noqa: E402

SCORES = [0.0, 0.3, 0.5, 0.8, 1.0]


def scored_boxes(ctx, img):
    return [aa.rectangle(i % 2, [i, i, i + 10, i + 10], score=s) for i, s in enumerate(SCORES)]


def labels(ds, field="auto"):
    out = []
    for s in ds.sort_by("filepath"):
        c = s[field]
        out.append(
            None if c is None else [(d.label, round(d.confidence, 6), getattr(d, "review", None)) for d in c.detections]
        )
    return out


def test_routing_at_the_threshold_edges(small_dataset):
    report = annotate_dataset(
        small_dataset, FakeDetector(scored_boxes), label_field="auto", review=(0.3, 0.8), progress=False
    )
    first = labels(small_dataset)[0]
    # 0.0 discarded; 0.3 is at the lower edge (kept, needs review); 0.8 is at the upper edge (approved)
    assert [(c, r) for _, c, r in first] == [
        (0.3, "needs_review"),
        (0.5, "needs_review"),
        (0.8, "approved"),
        (1.0, "approved"),
    ]
    assert (report.auto_approved, report.needs_review, report.discarded) == (12, 12, 6)
    assert report.annotations_added == 24 and report.images_processed == 6 and report.success
    d = small_dataset.first().auto.detections[0]
    assert d.autoannotate_run == report.extra["run_key"]
    assert d.bounding_box == pytest.approx([1 / 60, 1 / 40, 10 / 60, 10 / 40])


def test_zero_thresholds_are_real(small_dataset):
    report = annotate_dataset(
        small_dataset,
        FakeDetector(scored_boxes),
        label_field="auto",
        review=(0.0, 0.0),
        conf_threshold=0.0,
        progress=False,
    )
    assert report.auto_approved == 30 and report.discarded == 0 and report.needs_review == 0


def test_per_class_thresholds_with_fallback(small_dataset):
    report = annotate_dataset(
        small_dataset,
        FakeDetector(scored_boxes),
        label_field="auto",
        review={"cat": (0.5, 0.9), "*": (0.0, 0.3)},
        progress=False,
    )
    first = labels(small_dataset)[0]
    # cats have scores 0.0, 0.5, 1.0; dogs 0.3, 0.8
    assert first == [
        ("dog", 0.3, "approved"),
        ("cat", 0.5, "needs_review"),
        ("dog", 0.8, "approved"),
        ("cat", 1.0, "approved"),
    ]
    assert report.discarded == 6
    with pytest.raises(aa.BadParameterError, match="no review thresholds for class 'dog'"):
        annotate_dataset(
            small_dataset, FakeDetector(scored_boxes), label_field="x", review={"cat": (0.1, 0.2)}, progress=False
        )
    with pytest.raises(aa.BadParameterError, match="unknown classes"):
        annotate_dataset(
            small_dataset,
            FakeDetector(scored_boxes),
            label_field="x",
            review={"horse": (0.1, 0.2), "*": (0, 1)},
            progress=False,
        )
    with pytest.raises(aa.BadParameterError, match="lower <= upper"):
        annotate_dataset(small_dataset, FakeDetector(scored_boxes), label_field="x", review=(0.9, 0.1), progress=False)


def test_skip_vs_overwrite_and_ground_truth_untouched(small_dataset):
    before = gt_snapshot(small_dataset)
    fn = FakeDetector(scored_boxes)
    annotate_dataset(small_dataset, fn, label_field="auto", progress=False)
    assert len(fn.calls) == 6
    again = annotate_dataset(small_dataset, fn, label_field="auto", progress=False)
    assert again.images_skipped == 6 and again.images_processed == 0 and len(fn.calls) == 6
    fn.make = lambda c, i: [aa.rectangle(1, [0, 0, 5, 5], score=0.9)]
    over = annotate_dataset(small_dataset, fn, label_field="auto", overwrite=True, progress=False)
    assert over.images_processed == 6 and over.images_skipped == 0
    assert labels(small_dataset)[0] == [("dog", 0.9, None)]  # replaced, not appended
    assert gt_snapshot(small_dataset) == before


def test_human_labels_in_the_target_field_are_never_overwritten(small_dataset):
    before = gt_snapshot(small_dataset)
    skipped = annotate_dataset(small_dataset, FakeDetector(scored_boxes), label_field="ground_truth", progress=False)
    assert skipped.images_skipped == 6 and skipped.annotations_added == 0
    with pytest.raises(aa.BadParameterError, match="that autoannotate did not make"):
        annotate_dataset(
            small_dataset, FakeDetector(scored_boxes), label_field="ground_truth", overwrite=True, progress=False
        )
    assert gt_snapshot(small_dataset) == before


def test_nothing_found_is_stored_as_an_empty_container_so_it_is_not_redone(small_dataset):
    fn = FakeDetector(lambda c, i: [])
    annotate_dataset(small_dataset, fn, label_field="auto", progress=False)
    assert all(s.auto is not None and s.auto.detections == [] for s in small_dataset)
    annotate_dataset(small_dataset, fn, label_field="auto", progress=False)
    assert len(fn.calls) == 6


def test_bad_images_are_failures_and_the_run_goes_on(small_dataset, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    small_dataset.add_samples([fo.Sample(filepath=str(broken)), fo.Sample(filepath=str(tmp_path / "missing.png"))])

    def flaky(ctx, img):
        if ctx.frame_name.endswith("img3.png"):
            raise RuntimeError("model exploded")
        return scored_boxes(ctx, img)

    report = annotate_dataset(small_dataset, FakeDetector(flaky), label_field="auto", progress=False)
    assert report.images_attempted == 8 and report.images_processed == 5 and len(report.failures) == 3
    reasons = " ".join(f.reason for f in report.failures)
    assert "not an image" in reasons and "file not found" in reasons and "model exploded" in reasons
    assert small_dataset.exists("auto").count() == 5
    # failed samples are retried by the next run
    retry = annotate_dataset(small_dataset, FakeDetector(scored_boxes), label_field="auto", progress=False)
    assert retry.images_skipped == 5 and retry.images_processed == 1 and len(retry.failures) == 2


def test_classes_in_three_shapes_and_label_map(small_dataset):
    for classes in ([("kitty", "bbox")], [{"name": "kitty", "output_type": "bbox"}], [ClassSpec("kitty", "bbox")]):
        report = annotate_dataset(
            small_dataset,
            FakeDetector(scored_boxes),
            label_field="auto",
            classes=classes,
            label_map={"cat": "kitty"},
            overwrite=True,
            progress=False,
        )
        assert set(small_dataset.distinct("auto.detections.label")) == {"kitty"}
        assert report.annotations_added == 18


@pytest.mark.parametrize(
    "classes, message",
    [
        ([("horse", "bbox")], "unknown classes \\['horse'\\]"),
        ([("cat", "cuboid")], "unknown output type 'cuboid'"),
        ([("cat", "keypoint")], "cannot become 'keypoint'"),
        ([{"label": "cat"}], "takes 'name' and 'output_type'"),
    ],
)
def test_bad_classes_raise_before_any_work(small_dataset, classes, message):
    fn = FakeDetector(scored_boxes)
    with pytest.raises(aa.BadParameterError, match=message):
        annotate_dataset(small_dataset, fn, label_field="auto", classes=classes, progress=False)
    assert fn.calls == [] and small_dataset.get_field("auto") is None


def test_dataset_classes_are_matched_by_name(small_dataset):
    small_dataset.default_classes = ["Dog", "bird"]
    small_dataset.save()
    annotate_dataset(small_dataset, FakeDetector(scored_boxes), label_field="auto", progress=False)
    assert set(small_dataset.distinct("auto.detections.label")) == {"Dog"}


def test_polygons_and_masks_from_a_box_detector_are_refined(small_dataset):
    def disk(ctx, img):
        return [aa.rectangle(0, [15, 5, 45, 35], score=0.9)]

    import PIL.Image

    for s in small_dataset:
        arr = np.full((40, 60, 3), (40, 160, 60), np.uint8)
        yy, xx = np.mgrid[:40, :60]
        arr[(xx - 30) ** 2 + (yy - 20) ** 2 <= 12**2] = (200, 40, 40)
        PIL.Image.fromarray(arr).save(s.filepath)
    report = annotate_dataset(
        small_dataset,
        FakeDetector(disk),
        label_field="auto",
        classes=[("cat", "polygon")],
        refine_with="grabcut",
        progress=False,
    )
    assert report.success and report.extra["label_fields"] == ["auto"]
    poly = small_dataset.first().auto.polylines[0]
    assert poly.closed and poly.filled and poly.confidence == 0.9 and len(poly.points[0]) >= 3
    xs = [p[0] * 60 for p in poly.points[0]]
    assert 16 <= min(xs) <= 20 and 40 <= max(xs) <= 44  # hugs the disk (x 18..42), not the box (15..45)
    annotate_dataset(
        small_dataset,
        FakeDetector(disk),
        label_field="masks",
        classes=[("cat", "mask")],
        refine_with="grabcut",
        progress=False,
    )
    det = small_dataset.first().masks.detections[0]
    assert det.mask is not None and det.mask.any() and det.mask.shape == (25, 25)


def test_mixed_output_types_get_one_field_per_container(small_dataset):
    spec = [aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("scene", 1, type="tag")]
    fn = FakeDetector(lambda c, i: [aa.rectangle(0, [0, 0, 5, 5], score=0.7), aa.tag(1, score=0.6)], labels=spec)
    report = annotate_dataset(small_dataset, fn, label_field="auto", progress=False)
    assert report.extra["label_fields"] == ["auto", "auto_classifications"]
    s = small_dataset.first()
    assert s.auto.detections[0].label == "cat" and s.auto_classifications.classifications[0].label == "scene"


def test_runs_are_recorded_with_a_needs_review_view(small_dataset):
    report = annotate_dataset(
        small_dataset,
        FakeDetector(scored_boxes),
        label_field="auto",
        review=(0.3, 0.8),
        conf_threshold=0.0,
        progress=False,
    )
    key = report.extra["run_key"]
    run = get_run(small_dataset, key)
    assert run["status"] == "completed" and run["review"] == {"cat": [0.3, 0.8], "dog": [0.3, 0.8]}
    assert run["conf_threshold"] == 0.0 and run["report"]["needs_review"] == 12
    assert run["model_version"] == "FakeDetector" and run["label_fields"] == ["auto"]
    assert [r["run_key"] for r in list_runs(small_dataset)] == [key]
    view = small_dataset.load_saved_view(run["needs_review_view"])
    assert view.count("auto.detections") == 12
    assert set(view.distinct("auto.detections.review")) == {"needs_review"}
    # which run produced a label
    assert small_dataset.match_labels(filter=F("autoannotate_run") == key, fields="auto").count() == 6


def test_max_samples_and_views(small_dataset):
    fn = FakeDetector(scored_boxes)
    report = annotate_dataset(small_dataset.limit(4), fn, label_field="auto", max_samples=3, progress=False)
    assert report.images_processed == 3 and small_dataset.exists("auto").count() == 3


def test_progress_callback(small_dataset):
    seen = []
    annotate_dataset(
        small_dataset, FakeDetector(scored_boxes), label_field="auto", progress=lambda n, t: seen.append((n, t))
    )
    assert seen[-1] == (6, 6)


def test_function_by_name_with_params(small_dataset, models_env):
    report = annotate_dataset(
        small_dataset, "yolox", function_params={"default_conf_threshold": 0.9}, label_field="auto", progress=False
    )
    assert report.success
    run = get_run(small_dataset, report.extra["run_key"])
    assert run["function"] == "yolox" and run["function_params"] == {"default_conf_threshold": 0.9}
    assert run["model_version"].startswith("yolox_nano@")


def test_wrong_field_types_and_names(small_dataset):
    small_dataset.add_sample_field("note", fo.StringField)
    with pytest.raises(aa.BadParameterError, match="already holds"):
        annotate_dataset(small_dataset, FakeDetector(scored_boxes), label_field="note", progress=False)
    with pytest.raises(aa.BadParameterError, match="not a usable field name"):
        annotate_dataset(small_dataset, FakeDetector(scored_boxes), label_field="filepath", progress=False)
    with pytest.raises(aa.BadParameterError, match="dataset or view"):
        annotate_dataset([1, 2], FakeDetector(scored_boxes), label_field="auto")
