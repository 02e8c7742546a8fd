"""Bring your own model in FiftyOne (real database): an Ultralytics ``.pt`` and a Hugging Face
folder through ``annotate_dataset`` and the ``auto_label`` operator (the model's path in the
form's function parameters), both offered among the form's choices. What is stored is compared
with the function run directly (tiny random-weight models: no accuracy to check)."""

from __future__ import annotations

from collections import Counter

import pytest

from autoannotate.images import load_image
from autoannotate.interface import DetectionFunctionContext
from autoannotate.loading import load_function
from tests.fiftyone.test_operators import _form_schema, run
from tests.functions import hf_tiny, yolo_tiny

fo = pytest.importorskip("fiftyone")
pytest.importorskip("ultralytics")


def direct(name, paths, threshold, **params):
    """Label names per image path, from the function called directly."""
    fn = load_function(name, **params)
    ctx = DetectionFunctionContext(conf_threshold=threshold)
    return {p: Counter(fn.spec.label_names[s.label_id] for s in fn.detect(ctx, load_image(p))) for p in paths}


def test_ultralytics_weights_in_annotate_dataset_and_the_form(small_dataset, tmp_path):
    from autoannotate.fiftyone import annotate_dataset

    models = yolo_tiny.build(tmp_path / "yolo", ("detect", "segment"))
    params = {"model": str(models["detect"]), "imgsz": 64, "max_det": 3, "device": "cpu"}
    report = annotate_dataset(
        small_dataset, "ultralytics", label_field="yolo", function_params=params, conf_threshold=0.0, progress=False
    )
    assert report.success and report.images_processed == 6
    want = direct("ultralytics", small_dataset.values("filepath"), 0.0, **params)
    for sample in small_dataset:
        dets = sample["yolo"].detections
        assert Counter(d.label for d in dets) == want[sample.filepath] and len(dets) == 3
    assert report.annotations_added == 18
    seg = {"model": str(models["segment"]), "imgsz": 64, "max_det": 2, "device": "cpu"}
    report = annotate_dataset(
        small_dataset, "ultralytics", label_field="seg", function_params=seg, conf_threshold=0.0, progress=False
    )
    assert report.success and report.annotations_added > 0
    assert all(d.mask is not None for s in small_dataset for d in s["seg"].detections)
    assert "ultralytics" in _form_schema(small_dataset, {})["function"]["type"]["values"]


def test_hugging_face_folder_through_the_operator(small_dataset, tmp_path):
    folder = hf_tiny.detector(tmp_path / "yolos")
    choices = _form_schema(small_dataset, {})["function"]["type"]["values"]
    assert "transformers" in choices
    out = run(
        "auto_label",
        small_dataset,
        {
            "view_target": "DATASET",
            "function": "transformers",
            "function_params": f"model=str:{folder}\ndefault_conf_threshold=float:0.0",
            "label_field": "hf",
            "route": False,
        },
    )
    assert out["images_processed"] == 6 and out["success"]
    want = direct("transformers", small_dataset.values("filepath"), None, model=str(folder), default_conf_threshold=0.0)
    total = 0
    for sample in small_dataset:
        got = Counter(d.label for d in sample["hf"].detections)
        assert got == want[sample.filepath]
        total += sum(got.values())
    assert total > 0 and set(small_dataset.distinct("hf.detections.label")) <= {"cat", "dog", "car"}
