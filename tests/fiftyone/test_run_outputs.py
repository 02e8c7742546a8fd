"""What a FiftyOne run leaves behind, as a person meets it: classes and label maps as typed in the
form, no label dropped silently by refinement, a stored FiftyOne evaluation, one saved view per
label field, and cleaning up runs."""

from __future__ import annotations

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.fiftyone import annotate_dataset
from tests.fakes import FakeDetector

fo = pytest.importorskip("fiftyone")
from fiftyone import ViewField as F  # noqa: E402


def boxes(ctx, img):
    return [aa.rectangle(0, [1, 1, 20, 20], score=0.9), aa.rectangle(1, [20, 5, 40, 30], score=0.5)]


# -- item 4: label_map always applies; the form's classes string is accepted ----------------------


def test_label_map_applies_even_when_the_default_classes_hold_the_function_name(small_dataset):
    small_dataset.default_classes = ["cat", "dog", "pet"]
    small_dataset.save()
    annotate_dataset(small_dataset, FakeDetector(boxes), label_field="auto", label_map={"cat": "pet"}, progress=False)
    assert sorted(small_dataset.distinct("auto.detections.label")) == ["dog", "pet"]


def test_label_map_target_outside_the_default_classes_is_still_stored(small_dataset):
    small_dataset.default_classes = ["cat", "dog"]
    small_dataset.save()
    annotate_dataset(small_dataset, FakeDetector(boxes), label_field="auto", label_map={"cat": "kitty"}, progress=False)
    assert sorted(small_dataset.distinct("auto.detections.label")) == ["dog", "kitty"]


def test_label_map_against_explicit_classes_is_not_ignored(small_dataset):
    with pytest.raises(aa.BadParameterError, match="unknown classes \\['cat'\\].*label_map"):
        annotate_dataset(
            small_dataset,
            FakeDetector(boxes),
            label_field="auto",
            classes=["cat"],
            label_map={"cat": "kitty"},
            progress=False,
        )


def test_the_forms_comma_separated_strings_are_accepted(small_dataset):
    report = annotate_dataset(
        small_dataset,
        FakeDetector(boxes),
        label_field="auto",
        classes="kitty:bbox, dog:bbox",
        label_map="cat=kitty",
        progress=False,
    )
    assert report.success and report.annotations_added == 12
    assert sorted(small_dataset.distinct("auto.detections.label")) == ["dog", "kitty"]
    with pytest.raises(aa.BadParameterError, match="unknown output type 'cuboid'"):
        annotate_dataset(small_dataset, FakeDetector(boxes), label_field="x", classes="cat:cuboid, dog", progress=False)


# -- item 2: refinement never drops a label silently --------------------------------------------


class PartlyBlindRefiner:
    """An interactive function that draws the inner half of the first box, nothing for the second
    (an empty mask) and one pixel for the third (a degenerate mask: no polygon)."""

    def encode(self, context, image):
        return image.size

    def segment_boxes(self, context, encoding, boxes):
        w, h = encoding
        out = []
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            mask = np.zeros((h, w), bool)
            if k == 0:
                mask[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2] = True
            elif k == 2:
                mask[int(y1) + 1, int(x1) + 1] = True
            out.append(aa.SegmentationResult(mask))
        return out


def three_boxes(ctx, img):
    return [
        aa.rectangle(0, [2, 2, 22, 22], score=0.9),
        aa.rectangle(0, [30, 5, 50, 35], score=0.8),
        aa.rectangle(0, [5, 25, 15, 38], score=0.7),
    ]


@pytest.mark.parametrize("output", ["polygon", "mask"])
def test_refinement_keeps_labels_it_cannot_refine_as_boxes_and_says_so(small_dataset, output):
    report = annotate_dataset(
        small_dataset,
        FakeDetector(three_boxes),
        label_field="auto",
        classes=[("cat", output)],
        refine_with=PartlyBlindRefiner(),
        progress=False,
    )
    assert report.success and report.annotations_added == 18  # 3 per sample, none dropped
    assert "unconvertible_shapes" not in report.extra
    assert report.extra["unrefined_labels"] == {
        "count": 12 if output == "polygon" else 6,
        "reason": report.extra["unrefined_labels"]["reason"],
        "classes": {"cat": 12 if output == "polygon" else 6},
    }
    assert "empty or degenerate" in report.extra["unrefined_labels"]["reason"]
    assert len(report.warnings) == 6 and "refined=False" in report.warnings[0].reason
    first = small_dataset.sort_by("filepath").first()
    if output == "polygon":
        polys = first.auto.polylines
        assert [p.get_field("refined") if p.has_field("refined") else None for p in polys] == [None, False, False]
        # the unrefined one is its box, corner for corner, with the detector's confidence
        xs = sorted({round(x * 60, 6) for x, _ in polys[1].points[0]})
        ys = sorted({round(y * 40, 6) for _, y in polys[1].points[0]})
        assert xs == [30, 50] and ys == [5, 35] and polys[1].confidence == 0.8 and polys[1].closed
    else:
        dets = first.auto.detections
        assert [d.mask is not None for d in dets] == [True, False, True]
        assert dets[1].refined is False and dets[1].bounding_box == pytest.approx([30 / 60, 5 / 40, 20 / 60, 30 / 40])
    filtered = small_dataset.filter_labels("auto", F("refined") == False)  # noqa: E712 - a query
    assert filtered.count(f"auto.{'polylines' if output == 'polygon' else 'detections'}") == (
        12 if output == "polygon" else 6
    )


# -- item 5: the evaluation is a FiftyOne evaluation under the run's key -------------------------


def gt_boxes(ctx, img):  # the fixture's ground truth is one cat at [0.1, 0.1, 0.2, 0.2] of 60 x 40
    return [aa.rectangle(0, [6, 4, 18, 12], score=0.9), aa.rectangle(1, [30, 20, 50, 35], score=0.6)]


def test_eval_gt_field_stores_a_fiftyone_evaluation_under_the_run_key(small_dataset):
    report = annotate_dataset(
        small_dataset, FakeDetector(gt_boxes), label_field="auto", eval_gt_field="ground_truth", progress=False
    )
    key = report.extra["eval_key"]
    assert key == report.extra["evaluation"]["eval_key"] and key.isidentifier()
    assert key == report.extra["run_key"]  # run keys are identifiers already
    assert small_dataset.list_evaluations() == [key]
    info = small_dataset.get_evaluation_info(key)
    assert info.config.pred_field == "auto" and info.config.gt_field == "ground_truth"
    results = small_dataset.load_evaluation_results(key)
    assert results.mAP() == pytest.approx(report.extra["evaluation"]["mAP"], abs=1e-4)
    assert report.extra["evaluation"]["precision"] == 0.5 and report.extra["evaluation"]["recall"] == 1.0
    assert small_dataset.sum(f"{key}_tp") == 6 and small_dataset.sum(f"{key}_fp") == 6
    run = fo_get_run(small_dataset, report.extra["run_key"])
    assert run["eval_key"] == key


def test_the_evaluation_covers_the_runs_classes_and_each_output_type(small_dataset):
    from autoannotate.fiftyone import delete_run

    # the ground truth has a bird the run was not asked for, and a dog polygon in a Polylines field
    for sample in small_dataset:
        sample.ground_truth.detections.append(fo.Detection(label="bird", bounding_box=[0.6, 0.6, 0.2, 0.2]))
        square = [(0.5, 0.5), (0.8333, 0.5), (0.8333, 0.875), (0.5, 0.875)]  # [30, 20, 50, 35] of 60 x 40
        sample["gt_polygons"] = fo.Polylines(polylines=[fo.Polyline(label="dog", points=[square], closed=True)])
        sample.save()
    cat_only = annotate_dataset(
        small_dataset, FakeDetector(gt_boxes), label_field="a", classes=["cat"], eval_gt_field="ground_truth"
    )
    ev = cat_only.extra["evaluation"]
    # the bird is no class of the run: not counted as missed (recall 0.5 when it was)
    assert (ev["precision"], ev["recall"], ev["classes"]) == (1.0, 1.0, ["cat"])
    assert ev["evaluated"] == "bbox (cat) by box IoU" and ev["not_evaluated"] is None

    def box_and_polygon(ctx, img):
        return [aa.rectangle(0, [6, 4, 18, 12], score=0.9), aa.polygon(1, [30, 20, 50, 20, 50, 35, 30, 35], score=0.6)]

    labels = [aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("dog", 1, type="polygon")]
    classes = [("cat", "bbox"), ("dog", "polygon")]
    both = annotate_dataset(
        small_dataset,
        FakeDetector(box_and_polygon, labels),
        label_field="b",
        classes=classes,
        eval_gt_field="ground_truth",
    )
    ev = both.extra["evaluation"]
    assert ev["evaluated"] == "bbox (cat) by box IoU" and (ev["precision"], ev["recall"]) == (1.0, 1.0)
    assert (
        ev["not_evaluated"] == "polygon (dog): the ground truth 'ground_truth' holds boxes (Detections), not polygons"
    )
    assert ev["classes_without_ground_truth"] == ["dog"] and ev["eval_keys"] == [ev["eval_key"]]
    text = both.summary()
    assert "evaluation against 'ground_truth' (classes of the run: cat, dog):" in text
    assert "  bbox (cat) by box IoU: precision 1.000, recall 1.000, mAP " in text
    assert "  not evaluated: polygon (dog): the ground truth 'ground_truth' holds boxes" in text
    # against a Polylines ground truth the polygons are evaluated, the boxes are not
    polys = annotate_dataset(
        small_dataset,
        FakeDetector(box_and_polygon, labels),
        label_field="c",
        classes=classes,
        eval_gt_field="gt_polygons",
    )
    ev = polys.extra["evaluation"]
    assert ev["evaluated"] == "polygon (dog) by polygon IoU" and (ev["precision"], ev["recall"]) == (1.0, 1.0)
    assert ev["not_evaluated"].startswith("bbox (cat): the ground truth 'gt_polygons' holds polylines (Polylines)")
    assert ev["by_type"]["polygon"]["field"] == "c_polylines" and small_dataset.has_evaluation(ev["eval_key"])
    # the App's report view names what was evaluated, and the metrics' output type
    from tests.fiftyone.test_operators import _plugin_module

    _, shown = _plugin_module().report_view(both.to_dict())
    assert shown["evaluation_evaluated"] == "bbox (cat) by box IoU" and shown["evaluation_recall"] == 1.0
    assert shown["evaluation_not_evaluated"].startswith("polygon (dog)")
    assert shown["evaluation_classes_without_ground_truth"] == "dog"
    # a run with two evaluated types keeps both evaluations, and deleting the run removes both
    for sample in small_dataset:
        sample["gt_both"] = fo.Detections(
            detections=[
                fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.2, 0.2]),
                fo.Detection(label="dog", bounding_box=[0.5, 0.5, 0.3333, 0.375], mask=np.ones((15, 20), bool)),
            ]
        )
        sample.save()

    def box_and_mask(ctx, img):
        m = np.zeros((40, 60), bool)
        m[20:35, 30:50] = True
        return [aa.rectangle(0, [6, 4, 18, 12], score=0.9), aa.mask(1, m, score=0.6)]

    masks = [aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("dog", 1, type="mask")]
    two = annotate_dataset(
        small_dataset,
        FakeDetector(box_and_mask, masks),
        label_field="d",
        classes=[("cat", "bbox"), ("dog", "mask")],
        eval_gt_field="gt_both",
    )
    ev = two.extra["evaluation"]
    assert ev["evaluated"] == "bbox (cat) by box IoU; mask (dog) by mask IoU" and ev["not_evaluated"] is None
    assert ev["by_type"]["mask"]["recall"] == 1.0 and ev["eval_keys"] == [ev["eval_key"], f"{ev['eval_key']}_mask"]
    assert all(small_dataset.has_evaluation(k) for k in ev["eval_keys"])
    delete_run(small_dataset, two.extra["run_key"])
    assert not any(small_dataset.has_evaluation(k) for k in ev["eval_keys"])
    # polygons against a ground truth with masks: not compared, and the way to compare them is said
    poly_vs_masks = annotate_dataset(
        small_dataset, FakeDetector(box_and_polygon, labels), label_field="e", classes=classes, eval_gt_field="gt_both"
    )
    assert poly_vs_masks.extra["evaluation"]["not_evaluated"] == (
        "polygon (dog): the ground truth 'gt_both' holds boxes and masks (Detections), not polygons; "
        "label them as masks to compare with its masks"
    )


def fo_get_run(ds, key):
    from autoannotate.fiftyone import get_run

    return get_run(ds, key)


# -- item 6: one saved view per label field; deleting runs and cleaning up ---------------------


def test_one_needs_review_view_per_label_field_updated_by_each_run(small_dataset):
    keys = []
    for field in ["auto", "auto", "other"]:
        report = annotate_dataset(
            small_dataset.limit(2) if len(keys) == 0 else small_dataset,
            FakeDetector(boxes),
            label_field=field,
            review=(0.3, 0.8),
            progress=False,
        )
        keys.append(report.extra["run_key"])
        assert report.extra["needs_review_view"] == f"autoannotate-{field}-needs-review"
    assert sorted(small_dataset.list_saved_views()) == [
        "autoannotate-auto-needs-review",
        "autoannotate-other-needs-review",
    ]
    # the field's view shows the pending labels of every run on it (the first run did 2 samples, the second 4)
    view = small_dataset.load_saved_view("autoannotate-auto-needs-review")
    assert view.count("auto.detections") == 6 and set(view.distinct("auto.detections.review")) == {"needs_review"}
    assert keys[1] in small_dataset.get_saved_view_info("autoannotate-auto-needs-review")["description"]
    again = annotate_dataset(small_dataset, FakeDetector(boxes), label_field="auto", review=(0.3, 0.8), progress=False)
    assert again.images_skipped == 6 and len(small_dataset.list_saved_views()) == 2  # nothing new, no new view

    # deleting the field's last run removes its view; a deleted field's runs and view go at cleanup
    from autoannotate.fiftyone import cleanup_runs, delete_run, list_runs

    done = delete_run(small_dataset, keys[2], delete_labels=True)
    assert done["views_deleted"] == ["autoannotate-other-needs-review"] and done["labels_deleted"] == 12
    assert small_dataset.count("other.detections") == 0 and keys[2] not in [
        r["run_key"] for r in list_runs(small_dataset)
    ]
    small_dataset.delete_sample_field("auto")
    out = cleanup_runs(small_dataset)
    assert sorted(out["runs_deleted"]) == sorted(keys[:2])
    assert out["views_deleted"] == ["autoannotate-auto-needs-review"]
    assert small_dataset.list_saved_views() == [] and list_runs(small_dataset) == []


def test_delete_run_removes_its_evaluation_and_keeps_other_runs(small_dataset):
    from autoannotate.fiftyone import delete_run, list_runs

    first = annotate_dataset(
        small_dataset.limit(3),
        FakeDetector(gt_boxes),
        label_field="auto",
        review=(0.3, 0.8),
        eval_gt_field="ground_truth",
        progress=False,
    )
    second = annotate_dataset(
        small_dataset,
        FakeDetector(gt_boxes),
        label_field="auto",
        review=(0.3, 0.8),
        eval_gt_field="ground_truth",
        progress=False,
    )
    assert sorted(small_dataset.list_evaluations()) == sorted([first.extra["eval_key"], second.extra["eval_key"]])
    done = delete_run(small_dataset, first.extra["run_key"], delete_labels=True)
    assert done["evaluation_deleted"] == first.extra["eval_key"] and done["views_deleted"] == []
    assert done["labels_deleted"] == 6
    assert small_dataset.list_evaluations() == [second.extra["eval_key"]]
    assert f"{first.extra['eval_key']}_tp" not in small_dataset.get_field_schema()
    assert small_dataset.list_saved_views() == ["autoannotate-auto-needs-review"]  # the second run still writes it
    assert [r["run_key"] for r in list_runs(small_dataset)] == [second.extra["run_key"]]
    assert small_dataset.count("auto.detections") == 6  # the second run's labels stay
    with pytest.raises(KeyError, match="no autoannotate run"):
        delete_run(small_dataset, first.extra["run_key"])


def test_cleanup_removes_per_run_views_of_older_versions_and_records_of_deleted_datasets(small_dataset, dataset_name):
    from autoannotate.fiftyone import cleanup_runs, list_runs

    report = annotate_dataset(small_dataset, FakeDetector(boxes), label_field="auto", review=(0.3, 0.8), progress=False)
    key = report.extra["run_key"]
    # what version 2 left: one saved view per run, named in the run record
    legacy = f"{key}-needs-review".replace("_", "-")
    small_dataset.save_view(legacy, small_dataset.limit(1))
    from fiftyone.core.odm import get_db_conn

    get_db_conn()["autoannotate_runs"].update_one({"run_key": key}, {"$set": {"needs_review_view": legacy}})
    doomed = fo.Dataset(f"{dataset_name}-doomed")
    doomed.add_samples([fo.Sample(filepath=s.filepath) for s in small_dataset.limit(2)])
    annotate_dataset(doomed, FakeDetector(boxes), label_field="auto", progress=False)
    doomed.delete()
    out = cleanup_runs()
    assert out["orphan_records_deleted"] >= 1  # the doomed dataset's (and earlier tests' deleted datasets')
    assert legacy in out["views_deleted"] and legacy not in small_dataset.list_saved_views()
    assert "autoannotate-auto-needs-review" in small_dataset.list_saved_views()
    assert [r["run_key"] for r in list_runs(small_dataset)] == [key]
    assert get_db_conn()["autoannotate_runs"].count_documents({"dataset": doomed.name}) == 0


def test_real_photos_every_person_box_survives_refinement(coco128_dataset, models_env):
    """YOLOX-Nano boxes refined by GrabCut (the weight-free refiner) on real COCO photos: GrabCut
    finds nothing in some boxes; every detected person is still stored, those as marked boxes."""
    photos = coco128_dataset.sort_by("filepath").limit(12)
    boxes_run = annotate_dataset(
        photos, "yolox", label_field="t_people_boxes", classes="person:bbox", overwrite=True, progress=False
    )
    polys = annotate_dataset(
        photos,
        "yolox",
        label_field="t_people_polys",
        classes="person:polygon",
        refine_with="grabcut",
        overwrite=True,
        progress=False,
    )
    try:
        people = boxes_run.annotations_added
        print(f"{people} people; {polys.extra.get('unrefined_labels')}")
        assert people > 5 and polys.annotations_added == people  # none dropped
        # how many GrabCut misses varies with OpenCV's per-thread random state (k-means in GrabCut)
        unrefined = polys.extra.get("unrefined_labels", {}).get("count", 0)
        assert unrefined < people
        marked = photos.filter_labels("t_people_polys", F("refined") == False)  # noqa: E712 - a query
        assert marked.count("t_people_polys.polylines") == unrefined
        assert sum(int(w.reason.split()[0]) for w in polys.warnings) == unrefined
    finally:
        for field in ("t_people_boxes", "t_people_polys"):
            coco128_dataset.delete_sample_field(field)
