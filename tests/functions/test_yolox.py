"""YOLOX-Nano, the real default model, on real photos (weights from ../shared/models)."""

from __future__ import annotations

import pytest

import autoannotate as aa
from autoannotate import annotate_images
from autoannotate.functions import yolox
from autoannotate.mapping import TargetLabel
from tests.coco_eval import evaluate_boxes, load_gt


@pytest.fixture(scope="module")
def fn(models_dir):
    import os

    os.environ.setdefault("AUTOANNOTATE_MODELS", str(models_dir))
    return yolox.create(weights_path=str(models_dir / "yolox_nano.onnx"))


def names(fn, shapes):
    return [(fn.spec.label(s.label_id).name, s.score) for s in shapes]


def test_finds_the_astronaut(fn, astronaut):
    shapes = fn.detect(aa.DetectionFunctionContext("astronaut"), astronaut)
    (label, score), box = names(fn, shapes)[0], shapes[0].points
    assert label == "person" and score == pytest.approx(0.93, abs=0.03)
    assert box == pytest.approx((11, 20, 368, 507), abs=4)


def test_finds_the_cup(fn, coffee):
    top = names(fn, fn.detect(aa.DetectionFunctionContext("coffee"), coffee))[0]
    assert top[0] == "cup" and top[1] == pytest.approx(0.90, abs=0.03)


def test_resolves_by_name_from_the_models_folder(models_env):
    f = yolox.create()  # found in AUTOANNOTATE_MODELS, never downloaded
    assert f.model_version.startswith("yolox_nano@")
    assert len(f.spec.labels) == 80 and f.spec.label(0).name == "person"


def test_threshold_zero_keeps_more_than_default(fn, astronaut):
    default = fn.detect(aa.DetectionFunctionContext("a"), astronaut)
    everything = fn.detect(aa.DetectionFunctionContext("a", conf_threshold=0.0), astronaut)
    assert len(everything) > len(default) and len(everything) <= fn.max_detections


def test_map_on_coco128(fn, coco128):
    """A broken pre- or post-processing step shows up here: expect about mAP50 0.50, mAP 0.33."""
    gt = load_gt(coco128 / "detections.json")
    cat_by_name = {c["name"]: c["id"] for c in gt["categories"]}
    targets = [TargetLabel(c["name"], c["id"]) for c in gt["categories"]]
    items = [(im["id"], coco128 / "images" / im["file_name"]) for im in gt["images"]]
    results, report = annotate_images(fn, items, target_labels=targets, conf_threshold=0.01, progress=False)
    assert report.success and report.images_processed == 128
    dets = [
        {
            "image_id": r.key,
            "category_id": s.label_id,
            "score": s.score,
            "bbox": [s.points[0], s.points[1], s.points[2] - s.points[0], s.points[3] - s.points[1]],
        }
        for r in results
        for s in r.shapes
    ]
    assert set(cat_by_name.values()) >= {d["category_id"] for d in dets}
    scores = evaluate_boxes(coco128 / "detections.json", dets)
    print(f"YOLOX-Nano on COCO128: mAP50={scores['map50']:.3f} mAP={scores['map']:.3f}")
    assert scores["map50"] == pytest.approx(0.50, abs=0.05)
    assert scores["map"] == pytest.approx(0.33, abs=0.04)


def test_detect_batch_equals_detect(fn, astronaut, coffee):
    ctx = [aa.DetectionFunctionContext("a"), aa.DetectionFunctionContext("c")]
    assert fn.detect_batch(ctx, [astronaut, coffee]) == [fn.detect(ctx[0], astronaut), fn.detect(ctx[1], coffee)]
