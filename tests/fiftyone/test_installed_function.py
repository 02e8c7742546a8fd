"""A function installed from another package (an ``autoannotate.functions`` entry point) in the
FiftyOne API, the auto_label form's choices and the operator."""

from __future__ import annotations

import pytest

from tests.fiftyone.test_operators import _form_schema, run

fo = pytest.importorskip("fiftyone")


def test_installed_function_in_the_api_the_form_and_the_operator(small_dataset, installed):
    from autoannotate.fiftyone import annotate_dataset

    # small_dataset's photos are noise: each has grey levels of 240 or more, so one "bright" box each
    report = annotate_dataset(
        small_dataset, "bright_spots", label_field="api", function_params={"threshold": 240}, progress=False
    )
    assert report.images_processed == 6 and report.annotations_added == 6
    assert small_dataset.count_values("api.detections.label") == {"bright": 6}
    choices = _form_schema(small_dataset, {})["function"]["type"]["values"]
    assert "bright_spots" in choices and "yolox" in choices and "broken_fn" not in choices
    out = run(
        "auto_label",
        small_dataset,
        {
            "view_target": "DATASET",
            "function": "bright_spots",
            "function_params": "threshold=int:240",
            "label_field": "op",
            "route": False,
        },
    )
    assert out["images_processed"] == 6 and out["annotations_added"] == 6 and out["success"]
    assert small_dataset.count_values("op.detections.label") == {"bright": 6}
