"""Open-vocabulary functions end to end in FiftyOne (real database): ``annotate_dataset`` and the
``auto_label`` operator with class names COCO does not have. The models are tiny random-weight
SAM 3 / OWLv2 saved as Hugging Face folders under their registry names and found through
``AUTOANNOTATE_MODELS`` (the normal weights path). Random weights find arbitrary things: the
tests check what is stored against the function run directly, not accuracy."""

from __future__ import annotations

from collections import Counter

import pytest

from autoannotate.interface import DetectionFunctionContext
from autoannotate.loading import load_function
from tests.functions.test_open_vocab import save_tiny

fo = pytest.importorskip("fiftyone")
foo = pytest.importorskip("fiftyone.operators")

PLUGIN = "@autoannotate/autoannotate"


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    models = tmp_path / "models"
    save_tiny("sam3", models / "sam3")
    save_tiny("owlv2", models / "owlv2-base")
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(models))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    return models


def direct_counts(name, classes, paths, threshold, **params):
    """What the function finds per image, called directly: Counter of label names per path."""
    from autoannotate.images import load_image

    fn = load_function(name, classes=classes, **params)
    out = {}
    for p in paths:
        shapes = fn.detect(DetectionFunctionContext(conf_threshold=threshold), load_image(p))
        out[p] = Counter(fn.spec.label_names[s.label_id] for s in shapes)
    return out


def test_sam3_with_custom_classes_boxes_and_polygons(small_dataset, tiny_weights):
    from autoannotate.fiftyone import annotate_dataset

    report = annotate_dataset(
        small_dataset,
        "sam3",
        label_field="ov",
        classes=[("stop_sign", "bbox"), ("yield", "polygon")],
        conf_threshold=0.45,
        batch_size=3,
        progress=False,
    )
    assert report.success and report.images_processed == 6
    assert report.extra["label_fields"] == ["ov", "ov_polylines"]
    want = direct_counts("sam3", ["stop_sign", "yield"], small_dataset.values("filepath"), 0.45)
    total = 0
    for sample in small_dataset.sort_by("filepath"):
        boxes = sample["ov"].detections
        polys = sample["ov_polylines"].polylines
        assert {d.label for d in boxes} <= {"stop_sign"} and {p.label for p in polys} <= {"yield"}
        assert all(0.45 <= d.confidence <= 1 for d in boxes + polys)
        assert all(p.closed and p.filled and len(p.points[0]) >= 3 for p in polys)
        assert all(d.mask is None for d in boxes)
        got = Counter([d.label for d in boxes] + [p.label for p in polys])
        assert got == want[sample.filepath]
        total += len(boxes) + len(polys)
    assert total > 0 and report.annotations_added == total
    from autoannotate.fiftyone.runs import get_run

    record = get_run(small_dataset, report.extra["run_key"])
    assert "'classes': ['stop_sign', 'yield']" in repr(record)


def test_owlv2_finds_the_dataset_classes_through_the_operator(small_dataset, tiny_weights):
    small_dataset.default_classes = ["forklift", "pallet_jack"]
    small_dataset.save()
    result = foo.execute_operator(
        f"{PLUGIN}/auto_label",
        ctx={
            "dataset": small_dataset.name,
            "params": {
                "view_target": "DATASET",
                "function": "owlv2",
                "function_params": "default_conf_threshold=float:0.3",
                "label_field": "ov",
                "route": False,
            },
        },
    )
    assert result.error is None, result.error_message
    assert result.result["images_processed"] == 6 and result.result["success"]
    want = direct_counts("owlv2", ["forklift", "pallet_jack"], small_dataset.values("filepath"), 0.3)
    total = 0
    for sample in small_dataset:
        got = Counter(d.label for d in sample["ov"].detections)
        assert got == want[sample.filepath]
        total += sum(got.values())
    assert total > 0


def test_open_vocabulary_function_without_any_classes_is_a_clear_error(small_dataset, tiny_weights):
    from autoannotate.errors import BadParameterError
    from autoannotate.fiftyone import annotate_dataset

    with pytest.raises(BadParameterError, match="open-vocabulary"):
        annotate_dataset(small_dataset, "owlv2", label_field="ov", progress=False)


def test_sharded_open_vocabulary_run_carries_the_dataset_classes_to_its_shards(small_dataset, tiny_weights):
    """shards= with owlv2 and no classes: the dataset's classes are resolved once, at queue time,
    and stored for every shard; running the shards (what a worker does) labels with them."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    from autoannotate.fiftyone import annotate_dataset
    from autoannotate.fiftyone.runs import runs_collection
    from autoannotate.fiftyone.shards import parent_id, wait_for_run

    small_dataset.default_classes = ["forklift", "pallet_jack"]
    small_dataset.save()
    queued = annotate_dataset(small_dataset, "owlv2", label_field="ov", shards=2, conf_threshold=0.0)
    key = queued.extra["run_key"]
    parent = runs_collection().find_one({"_id": parent_id(small_dataset, key)})
    assert parent["shard_args"]["function_params"]["classes"] == ["forklift", "pallet_jack"]
    svc = DelegatedOperationService()
    for op_id in queued.extra["operations"]:
        svc.execute_operation(svc.get(ObjectId(op_id)))
    record = wait_for_run(small_dataset, key, timeout=120)
    assert record["report"]["images_processed"] == 6
    labels = small_dataset.distinct("ov.detections.label")
    assert labels and set(labels) <= {"forklift", "pallet_jack"}
