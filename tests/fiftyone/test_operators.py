"""The plugin: discovered from plugins/, each operator executed through FiftyOne's operator
execution against the real database (immediate and delegated)."""

from __future__ import annotations

import pytest

import autoannotate as aa
from autoannotate.fiftyone import annotate_dataset, list_runs
from tests.fakes import FakeDetector
from tests.fiftyone.conftest import gt_snapshot

fo = pytest.importorskip("fiftyone")
foo = pytest.importorskip("fiftyone.operators")
from fiftyone import ViewField as F  # noqa: E402

PLUGIN = "@autoannotate/autoannotate"
OPERATORS = [
    "auto_label",
    "accept_labels",
    "reject_labels",
    "promote_approved",
    "assign_reviewers",
    "list_autoannotate_runs",
]


def run(op, ds, params=None, **ctx):
    ctx.setdefault("dataset", ds.name)
    result = foo.execute_operator(f"{PLUGIN}/{op}", ctx={"params": params or {}, **ctx})
    assert result.error is None, result.error_message
    return result.result


def routed(ctx, img):
    return [aa.rectangle(i % 2, [i, i, i + 10, i + 10], score=s) for i, s in enumerate([0.1, 0.5, 0.9])]


def test_plugin_is_discovered_from_the_plugins_folder():
    uris = {op.uri for op in foo.list_operators()}
    assert {f"{PLUGIN}/{name}" for name in OPERATORS} <= uris


def test_auto_label_operator_on_the_dataset(small_dataset, models_env):
    before = gt_snapshot(small_dataset)
    out = run(
        "auto_label",
        small_dataset,
        {
            "view_target": "DATASET",
            "function": "yolox",
            "function_params": "default_conf_threshold=float:0.01",
            "label_field": "auto",
            "review_lower": 0.02,
            "review_upper": 0.5,
        },
    )
    assert out["images_processed"] == 6 and out["success"]
    assert out["annotations_added"] == out["auto_approved"] + out["needs_review"]
    assert small_dataset.exists("auto").count() == 6
    assert list_runs(small_dataset)[-1]["status"] == "completed"
    assert gt_snapshot(small_dataset) == before


def test_auto_label_operator_on_selected_samples_and_current_view(small_dataset, models_env):
    ids = small_dataset.values("id")
    out = run(
        "auto_label",
        small_dataset,
        {"view_target": "SELECTED_SAMPLES", "label_field": "auto", "route": False},
        selected=ids[:2],
    )
    assert out["images_attempted"] == 2
    assert set(small_dataset.exists("auto").values("id")) == set(ids[:2])
    view = small_dataset.skip(4)
    out = run(
        "auto_label", small_dataset, {"view_target": "CURRENT_VIEW", "label_field": "auto", "route": False}, view=view
    )
    assert out["images_attempted"] == 2 and small_dataset.exists("auto").count() == 4


def _error_of(op, ds, params):
    """The error an operator run ends with (FiftyOne raises some, returns others)."""
    try:
        result = foo.execute_operator(f"{PLUGIN}/{op}", ctx={"dataset": ds.name, "params": params})
    except Exception as e:  # noqa: BLE001
        return str(e)
    return str(result.error)


def test_auto_label_bad_input_is_a_clear_error(small_dataset, models_env):
    base = {"view_target": "DATASET", "label_field": "auto"}
    assert "unknown classes ['unicorn']" in _error_of("auto_label", small_dataset, {**base, "classes": "unicorn:bbox"})
    assert "unknown output type 'cuboid'" in _error_of(
        "auto_label", small_dataset, {**base, "classes": "person:cuboid"}
    )
    assert "not a valid float" in _error_of(
        "auto_label", small_dataset, {**base, "function_params": "default_conf_threshold=float:x"}
    )
    assert small_dataset.get_field("auto") is None


def test_delegated_auto_label_is_queued_then_runs(small_dataset, models_env):
    from fiftyone.operators.delegated import DelegatedOperationService

    result = foo.execute_operator(
        f"{PLUGIN}/auto_label",
        ctx={
            "dataset": small_dataset.name,
            "request_delegation": True,
            "params": {"view_target": "DATASET", "label_field": "delegated", "route": False},
        },
    )
    svc = DelegatedOperationService()
    queued = [op for op in svc.list_operations(dataset_name=small_dataset.name) if op.run_state == "queued"]
    assert len(queued) == 1 and small_dataset.get_field("delegated") is None
    svc.execute_operation(queued[0])
    done = svc.get(queued[0].id)
    assert done.run_state == "completed", done.run_state
    assert done.result.result["images_processed"] == 6
    small_dataset.reload()
    assert small_dataset.exists("delegated").count() == 6
    del result


def _labelled(ds):
    annotate_dataset(ds, FakeDetector(routed), label_field="auto", review=(0.3, 0.8), progress=False)
    return [
        {"sample_id": s.id, "label_id": d.id, "field": "auto"}
        for s in ds
        for d in s.auto.detections
        if d.review == "needs_review"
    ]


def test_accept_and_reject_selected_labels(small_dataset):
    pending = _labelled(small_dataset)
    assert len(pending) == 6
    out = run("accept_labels", small_dataset, selected_labels=pending[:2])
    assert out == {"updated": 2, "status": "approved"}
    out = run("reject_labels", small_dataset, selected_labels=pending[2:3])
    assert out["updated"] == 1
    reviews = sorted(d.review for s in small_dataset for d in s.auto.detections)
    assert reviews.count("approved") == 6 + 2 and reviews.count("rejected") == 1 and reviews.count("needs_review") == 3


def test_promote_approved_appends_to_ground_truth_once(small_dataset):
    _labelled(small_dataset)
    human = small_dataset.count("ground_truth.detections")
    out = run(
        "promote_approved", small_dataset, {"view_target": "DATASET", "label_field": "auto", "gt_field": "ground_truth"}
    )
    assert out == {"promoted": 6}
    assert small_dataset.count("ground_truth.detections") == human + 6
    assert small_dataset.count_values("ground_truth.detections.review") == {None: human, "approved": 6}
    # the human labels are still there, unchanged, and promoting again adds nothing
    assert small_dataset.filter_labels("ground_truth", ~F("review").exists()).count("ground_truth.detections") == human  # noqa: E712
    assert run("promote_approved", small_dataset, {"view_target": "DATASET", "label_field": "auto"}) == {"promoted": 0}


def test_assign_reviewers_splits_evenly_without_repeats(small_dataset):
    _labelled(small_dataset)
    small_dataset.skip(5).set_values("auto", [fo.Detections(detections=[])])  # one sample with nothing to review
    out = run(
        "assign_reviewers", small_dataset, {"view_target": "DATASET", "label_field": "auto", "reviewers": "ann, bob"}
    )
    assert out == {"assigned": {"ann": 3, "bob": 2}}
    ann, bob = (
        set(small_dataset.match_tags("review:ann").values("id")),
        set(small_dataset.match_tags("review:bob").values("id")),
    )
    assert not ann & bob and len(ann | bob) == 5
    out = run("assign_reviewers", small_dataset, {"view_target": "DATASET", "label_field": "auto", "reviewers": "cy"})
    assert out == {"assigned": {"cy": 5}}
    assert small_dataset.match_tags(["review:ann", "review:bob"]).count() == 0


def test_list_runs_operator(small_dataset):
    report = annotate_dataset(small_dataset, FakeDetector(routed), label_field="auto", progress=False)
    runs = run("list_autoannotate_runs", small_dataset)["runs"]
    assert [r["run_key"] for r in runs] == [report.extra["run_key"]] and runs[0]["status"] == "completed"
