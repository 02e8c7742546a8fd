"""The plugin: discovered from plugins/, each operator executed through FiftyOne's operator
execution against the real database (immediate and delegated)."""

from __future__ import annotations

import pytest

import autoannotate as aa
from autoannotate.fiftyone import annotate_dataset, list_runs
from tests.fakes import FakeDetector
from tests.fiftyone.conftest import gt_snapshot
from tests.fiftyone.test_video import clip, video_dataset  # noqa: F401 - fixtures

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
    "delete_autoannotate_run",
    "cleanup_autoannotate_runs",
    "track_labels",
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
            "function_params": "default_conf_threshold=float:0.01, max_detections=10",
            "label_field": "auto",
            "review_lower": 0.02,
            "review_upper": 0.5,
        },
    )
    assert out["images_processed"] == 6 and out["success"]
    assert out["annotations_added"] == out["auto_approved"] + out["needs_review"]
    assert small_dataset.exists("auto").count() == 6
    record = list_runs(small_dataset)[-1]
    assert record["status"] == "completed"
    # the record keeps what create() received: max_detections=10 without a type is yolox's int 10
    assert record["function_params"] == {"default_conf_threshold": 0.01, "max_detections": 10}
    assert type(record["function_params"]["max_detections"]) is int
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
    assert out == {"updated": 2, "status": "approved", "unchanged": 0, "unknown": 0}
    out = run("reject_labels", small_dataset, selected_labels=pending[2:3])
    assert out["updated"] == 1
    # a label already approved, and an id that matches no label: counted apart, never as changed
    missing = {**pending[3], "label_id": "0123456789abcdef01234567"}
    out = run("accept_labels", small_dataset, selected_labels=[pending[0], missing])
    assert out == {"updated": 0, "status": "approved", "unchanged": 1, "unknown": 1}
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
    assert out["assigned"] == {"ann": 3, "bob": 2} and sum(out["labels"].values()) == 5
    ann, bob = (
        set(small_dataset.match_tags("review:ann").values("id")),
        set(small_dataset.match_tags("review:bob").values("id")),
    )
    assert not ann & bob and len(ann | bob) == 5
    out = run("assign_reviewers", small_dataset, {"view_target": "DATASET", "label_field": "auto", "reviewers": "cy"})
    assert out["assigned"] == {"cy": 5}
    assert small_dataset.match_tags(["review:ann", "review:bob"]).count() == 0


def test_list_runs_operator(small_dataset):
    report = annotate_dataset(small_dataset, FakeDetector(routed), label_field="auto", progress=False)
    runs = run("list_autoannotate_runs", small_dataset)["runs"]
    assert [r["run_key"] for r in runs] == [report.extra["run_key"]] and runs[0]["status"] == "completed"


# --- the App's side of auto_label: progress, the result view, the form's checks -------------------

AUTO_LABEL = f"{PLUGIN}/auto_label"


def _plugin_module():
    import sys

    return sys.modules[type(foo.get_operator(AUTO_LABEL)).__module__]


def _as_the_app_runs_it(ds, params, uri=AUTO_LABEL):
    """Execute an operator (auto_label) the way the App's server does (``/operators/execute/generator``:
    the request carries ``operator_uri``) and collect the messages the App would receive."""
    import asyncio

    from fiftyone.operators.executor import execute_or_delegate_operator

    request = {"operator_uri": uri, "dataset_name": ds.name, "view": [], "params": params}
    result = asyncio.run(execute_or_delegate_operator(uri, request))
    assert result.error is None, result.error_message
    assert result.is_generator, "the App gets a generator: progress messages, then the result view"
    return [m.to_json()["body"] for m in result.result]


def _with_broken_sample(ds, tmp_path):
    broken = tmp_path / "broken-photo.jpg"
    broken.write_bytes(b"this is not a JPEG")
    ds.add_sample(fo.Sample(filepath=str(broken)))
    return broken


def test_auto_label_streams_progress_and_the_report_view_to_the_app(small_dataset, models_env, tmp_path):
    # however fast the run, the App is sent the first count (1) and the last (7), nothing else
    # is promised: the counts in between depend on the time each sample takes
    _with_broken_sample(small_dataset, tmp_path)
    assert foo.get_operator(AUTO_LABEL).config.execute_as_generator
    messages = _as_the_app_runs_it(
        small_dataset,
        {"view_target": "DATASET", "label_field": "auto", "batch_size": 1, "eval_gt_field": "ground_truth"},
    )
    ops = [m["operator_uri"] for m in messages]
    assert ops[-2:] == ["reload_dataset", "show_output"]
    labels = [m["params"].get("label") for m in messages if m["operator_uri"] == "set_progress"]
    counts = [int(label.split(" / ")[0]) for label in labels[1:]]
    assert labels[0].startswith("loading yolox") and all(" / 7 samples" in label for label in labels[1:])
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == 7, labels
    out = messages[-1]["params"]
    results, props = out["results"], out["outputs"]["type"]["properties"]
    run = list_runs(small_dataset)[-1]
    assert results["run_key"] == run["run_key"] and results["images_attempted"] == 7
    assert results["failures"] == [{"file": "broken-photo.jpg", "reason": run["report"]["failures"][0]["reason"]}]
    table = props["failures"]["view"]
    assert table["name"] == "TableView" and [c["key"] for c in table["columns"]] == ["file", "reason"]
    assert "1 failed" in results["summary"]
    assert {"evaluation_precision", "evaluation_recall", "evaluation_mAP"} <= set(results)
    if run["report"]["extra"].get("needs_review_view"):
        button = props["open_needs_review"]["view"]
        assert button["operator"] == "set_view" and button["params"] == {"name": results["needs_review_view"]}


def test_auto_label_failure_in_the_app_is_shown_not_swallowed(small_dataset, models_env):
    messages = _as_the_app_runs_it(
        small_dataset, {"view_target": "DATASET", "label_field": "auto", "function_params": "model=str:yolox_x"}
    )
    notify = [m for m in messages if m["operator_uri"] == "notify"]
    assert notify and notify[0]["params"]["variant"] == "error" and "yolox_x" in notify[0]["params"]["message"]
    shown = messages[-1]
    assert shown["operator_uri"] == "show_output"
    assert "yolox_x" in shown["params"]["outputs"]["type"]["properties"]["failed"]["view"]["description"]


def test_report_view_of_a_clean_run_has_no_failures_list():
    from fiftyone.operators import types

    report_view = _plugin_module().report_view
    prop, results = report_view(
        {"images_attempted": 2, "images_processed": 2, "annotations_added": 3, "extra": {"run_key": "k1"}}
    )
    assert isinstance(prop, types.Property)
    props = prop.to_json()["type"]["properties"]
    assert "failures" not in props and "failures" not in results
    assert results["summary"].endswith("no failures") and results["run_key"] == "k1"


def test_report_view_of_a_queued_sharded_run_says_queued():
    report_view = _plugin_module().report_view
    extra = {"run_key": "sharded_1", "status": "queued", "shards": 4, "samples": 24, "operations": ["a", "b"]}
    prop, results = report_view({"images_attempted": 0, "images_processed": 0, "annotations_added": 0, "extra": extra})
    assert results["summary"].startswith("**Queued: 24 samples in 4 shards** (run sharded_1); nothing labelled yet")
    assert "0 of 0" not in results["summary"] and "images_processed" not in results
    assert (results["run_key"], results["shards"], results["samples"], results["operations"]) == (
        "sharded_1",
        "4",
        "24",
        "a, b",
    )
    assert prop.to_json()["view"]["label"] == "Auto-label queued"


def test_auto_label_arguments_left_empty_take_the_settings_defaults():
    """What the form leaves empty becomes the package default (``autoannotate.settings``), for
    images and videos; unticking routing drops the review thresholds; one shard is no sharding."""
    from types import SimpleNamespace

    from autoannotate import settings

    arguments = _plugin_module().auto_label_arguments
    image = arguments(SimpleNamespace(media_type="image"), {})
    assert image["function"] == settings.DEFAULT_FUNCTION and image["label_field"] == settings.DEFAULT_LABEL_FIELD
    assert image["review"] == settings.DEFAULT_REVIEW and image["batch_size"] == settings.DEFAULT_BATCH_SIZE
    assert image["shards"] is None and "tracker" not in image and image["function_params"] == {}
    video = arguments(SimpleNamespace(media_type="video"), {"route": False, "shards": 1})
    assert (video["tracker"], video["key_frame_interval"]) == (
        settings.DEFAULT_TRACKER,
        settings.DEFAULT_KEY_FRAME_INTERVAL,
    )
    assert video["review"] is None and video["shards"] is None
    given = arguments(
        SimpleNamespace(media_type="image"),
        {"function": "fake", "review_lower": 0.1, "review_upper": 0.9, "shards": 3, "label_map": "car=vehicle"},
    )
    assert (given["function"], given["review"], given["shards"]) == ("fake", (0.1, 0.9), 3)
    assert given["label_map"] == {"car": "vehicle"}


def test_delegated_auto_label_stores_done_of_total_progress(small_dataset, models_env):
    from fiftyone.operators.delegated import DelegatedOperationService

    foo.execute_operator(
        AUTO_LABEL,
        ctx={"dataset": small_dataset.name, "params": {"view_target": "DATASET", "label_field": "d", "delegate": True}},
    )  # the form's "delegate" choice queues it
    svc = DelegatedOperationService()
    (queued,) = [op for op in svc.list_operations(dataset_name=small_dataset.name) if op.run_state == "queued"]
    svc.execute_operation(queued)
    done = svc.get(queued.id)
    assert done.run_state == "completed" and done.result.result["images_processed"] == 6
    assert done.status.label == "6 / 6 samples" and done.status.progress == 1.0
    # the App's "List auto-label runs" shows the run and the delegated operation with its progress
    out = run("list_autoannotate_runs", small_dataset)
    assert out["delegated"] == [
        {
            "id": str(queued.id),
            "state": "completed",
            "progress": "6 / 6 samples",
            "queued_at": out["delegated"][0]["queued_at"],
        }
    ]
    assert (
        out["rows"][0]["run_key"] == done.result.result["extra"]["run_key"] and out["rows"][0]["status"] == "completed"
    )


def _form(ds, **params):
    from autoannotate.fiftyone.form import check_form

    return check_form(ds, params)


def test_form_suggests_the_nearest_class_and_label_map_names(small_dataset, models_env):
    check = _form(small_dataset, function="yolox", classes="stop_sign:bbox, person:bbox")
    assert check.errors["classes"].startswith("unknown classes ['stop_sign']: did you mean 'stop sign'?")
    check = _form(small_dataset, function="yolox", classes="vehicle:bbox", label_map="carr=vehicle")
    assert "'carr': did you mean 'car'" in check.errors["label_map"]
    check = _form(small_dataset, function="yolox", classes="vehicle:bbox", label_map="car=vehicle, truck=vehicle")
    assert check.errors == {}
    assert (
        "unknown output type 'cuboid'"
        in _form(small_dataset, function="yolox", classes="person:cuboid").errors["classes"]
    )
    assert (
        "not a valid float"
        in _form(small_dataset, function_params="default_conf_threshold=float:x").errors["function_params"]
    )


def test_form_checks_function_parameters_without_classes_and_for_open_vocabulary_functions(
    small_dataset, models_env, monkeypatch
):
    import autoannotate.fiftyone.form as form

    def no_build(*args, **kwargs):
        raise AssertionError("the form built the function to check its parameters")

    monkeypatch.setattr(form, "load_function", no_build)  # names and types come from create's signature
    err = _form(small_dataset, function="yolox", function_params="bogus=1").errors["function_params"]
    assert "unexpected keyword argument 'bogus'" in err and "max_detections: int = 100" in err
    err = _form(small_dataset, function="yolox", function_params="max_detections=many").errors["function_params"]
    assert "'many' is not a valid int" in err
    for classes in ("person:mask", ""):
        err = _form(small_dataset, function="sam3", function_params="pretrained=maybe", classes=classes).errors
        assert "'maybe' is not a valid bool" in err["function_params"], classes
    err = _form(small_dataset, function="owlv2", function_params="bogus=1", classes="person").errors
    assert "unexpected keyword argument 'bogus'" in err["function_params"]
    assert _form(small_dataset, function="yolox", function_params="max_detections=10, model=yolox_nano").errors == {}
    assert _form(small_dataset, function="sam3", function_params="pretrained=no", classes="person:mask").errors == {}


def test_form_checks_thresholds_and_the_label_field(small_dataset, models_env):
    assert (
        "must be at or above the lower"
        in _form(small_dataset, review_lower=0.9, review_upper=0.5).errors["review_upper"]
    )
    assert _form(small_dataset, review_lower=0.9, review_upper=0.5, route=False).errors == {}
    assert (
        "every stored label will be approved" in _form(small_dataset, conf_threshold=0.9, review_upper=0.8).warnings[0]
    )
    assert "not a usable field name" in _form(small_dataset, label_field="my labels").errors["label_field"]
    assert (
        "ground-truth field"
        in _form(small_dataset, label_field="ground_truth", eval_gt_field="ground_truth").errors["label_field"]
    )
    # a field holding human labels: overwriting would replace them; otherwise those samples are skipped
    assert (
        "autoannotate did not make"
        in _form(small_dataset, label_field="ground_truth", overwrite=True).errors["label_field"]
    )
    assert (
        "6 samples already have labels in 'ground_truth'"
        in _form(small_dataset, label_field="ground_truth").warnings[0]
    )


def test_operator_refuses_what_the_form_flags_before_any_work(small_dataset, models_env):
    err = _error_of(
        "auto_label", small_dataset, {"view_target": "DATASET", "label_field": "auto", "classes": "stop_sign"}
    )
    assert "did you mean 'stop sign'?" in err
    assert small_dataset.get_field("auto") is None


def test_assign_reviewers_can_balance_labels(small_dataset):
    # sample i gets i needs-review labels (0..5): by samples 3 / 2 samples but uneven labels
    dets = [
        fo.Detections(
            detections=[
                fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.1, 0.1], confidence=0.5, review="needs_review")
                for _ in range(i)
            ]
        )
        for i in range(6)
    ]
    small_dataset.set_values("auto", dets)
    params = {"view_target": "DATASET", "label_field": "auto", "reviewers": "ann, bob", "balance": "labels"}
    out = run("assign_reviewers", small_dataset, params)
    assert sum(out["assigned"].values()) == 5 and sum(out["labels"].values()) == 15
    assert abs(out["labels"]["ann"] - out["labels"]["bob"]) <= 1, out


def test_delete_and_cleanup_run_operators(small_dataset):
    first = annotate_dataset(small_dataset, FakeDetector(routed), label_field="a", review=(0.3, 0.8), progress=False)
    second = annotate_dataset(small_dataset, FakeDetector(routed), label_field="b", review=(0.3, 0.8), progress=False)
    key_a, key_b = first.extra["run_key"], second.extra["run_key"]
    out = run("delete_autoannotate_run", small_dataset, {"run_key": key_a, "delete_labels": True})
    assert out["run_key"] == key_a and out["labels_deleted"] == first.annotations_added
    assert [r["run_key"] for r in list_runs(small_dataset)] == [key_b]
    small_dataset.delete_sample_field("b")
    out = run("cleanup_autoannotate_runs", small_dataset)
    assert out["runs_deleted"] == [key_b] and list_runs(small_dataset) == []
    assert not [v for v in small_dataset.list_saved_views() if "needs-review" in v]


def test_review_operators_on_video_frame_labels(video_dataset):  # noqa: F811 - the fixture imported above
    sample = video_dataset.first()
    label = sample.frames[1].detections.detections[0]
    selected = [{"sample_id": sample.id, "frame_number": 1, "label_id": label.id, "field": "frames.detections"}]
    out = run("reject_labels", video_dataset, selected_labels=selected)
    assert out["updated"] == 1 and out["unknown"] == 0
    assert video_dataset.count_values("frames.detections.detections.review") == {"rejected": 1}
    video_dataset.set_values("frames.detections.detections.review", [[["needs_review"]] * len(sample.frames)])
    out = run(
        "assign_reviewers",
        video_dataset,
        {"view_target": "DATASET", "label_field": "frames.detections", "reviewers": "ann", "balance": "labels"},
    )
    assert out == {"assigned": {"ann": 1}, "labels": {"ann": 1}}


def _form_schema(ds, params):
    """The auto_label form as the App receives it while the person types (``/operators/resolve-type``)."""
    import asyncio

    from fiftyone.operators import OperatorRegistry
    from fiftyone.operators.executor import resolve_type

    request = {"dataset_name": ds.name, "view": [], "params": params, "target": "inputs"}
    return asyncio.run(resolve_type(OperatorRegistry(), AUTO_LABEL, request)).to_json()["type"]["properties"]


def test_form_schema_flags_fields_and_warns_about_delegation(small_dataset, models_env, monkeypatch):
    props = _form_schema(small_dataset, {"function_params": "bogus=1"})  # Execute is disabled
    assert props["function_params"]["invalid"] and "'bogus'" in props["function_params"]["error_message"]
    props = _form_schema(small_dataset, {"classes": "stop_sign:bbox", "review_lower": 0.9, "review_upper": 0.5})
    assert props["classes"]["invalid"] and "did you mean 'stop sign'?" in props["classes"]["error_message"]
    assert props["review_upper"]["invalid"] and not props["review_lower"]["invalid"]
    assert not props["label_field"]["invalid"]
    assert any(p["view"]["name"] == "Error" for name, p in props.items() if name.startswith("error_"))
    assert "delegate" in props and "delegate_setup" not in props
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", False)
    assert (
        "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"
        in _form_schema(small_dataset, {"delegate": True})["delegate_setup"]["view"]["description"]
    )
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    assert "delegate_setup" not in _form_schema(small_dataset, {"delegate": True})
