"""A FiftyOne run is planned once (plan_run -> RunPlan), checked before any inference, then run
(run_plan), for images, videos and sharded runs alike."""

from __future__ import annotations

import pytest

import autoannotate as aa
from autoannotate.fiftyone import annotate_dataset, annotate_video_dataset, get_run, track_labels
from autoannotate.fiftyone.annotate import run_plan
from autoannotate.fiftyone.form import function_spec
from autoannotate.fiftyone.plan import RunPlan, plan_run
from tests.fakes import FakeDetector, StillTracker
from tests.tracking.synthetic import make_frames, write_video

fo = pytest.importorskip("fiftyone")


@pytest.fixture
def video_dataset(tmp_path, dataset_name):
    frames, _ = make_frames(4, objects=1)
    ds = fo.Dataset(f"{dataset_name}-video")
    ds.add_sample(fo.Sample(filepath=str(write_video(frames, tmp_path / "clip.mp4"))))
    yield ds
    ds.delete()


def test_an_image_run_is_planned_before_any_inference_then_run(small_dataset):
    det = FakeDetector()
    plan = plan_run(
        small_dataset, det, label_field="auto", classes=[("cat", "bbox")], review=(0.3, 0.8), progress=False
    )
    assert isinstance(plan, RunPlan) and plan.kind == "images" and plan.unit == "images"
    assert det.calls == []  # decided and checked, nothing inferred yet
    ids, paths = small_dataset.values(["id", "filepath"])
    assert plan.items == list(zip(ids, paths))
    assert plan.labels.outputs == {"cat": "bbox"} and plan.labels.fields == {"detections": "auto"}
    assert plan.config["kind"] == "images" and plan.config["review"] == {"cat": [0.3, 0.8]}
    assert plan.config["label_fields"] == ["auto"] and plan.config["dataset"] == small_dataset.name
    assert plan.mapping is not None and plan.mapping.unmatched == ["dog"]  # the run stores cats only

    report = run_plan(plan)
    assert report.images_processed == 6 and report.auto_approved == 6 and len(det.calls) == 6
    record = get_run(small_dataset, report.extra["run_key"])
    assert {k: record[k] for k in plan.config} == plan.config  # the record is the plan's configuration
    # the same run through the public API: nothing left to do, same configuration, same run
    again = annotate_dataset(
        small_dataset, det, label_field="auto", classes=[("cat", "bbox")], review=(0.3, 0.8), progress=False
    )
    assert again.images_skipped == 6 and len(det.calls) == 6


def test_every_refusal_comes_from_the_plan_before_inference(small_dataset):
    det = FakeDetector()
    for kwargs, match in [
        ({"classes": ["horse"]}, "unknown classes"),
        ({"conf_threshold": 2.0}, "conf_threshold"),
        ({"eval_gt_field": "nope"}, "eval_gt_field"),
        ({"max_samples": -1}, "max_samples"),
        ({"write_every": 0}, "write_every"),
        ({"label_field": "filepath"}, "not a usable field name"),
    ]:
        with pytest.raises(aa.BadParameterError, match=match):
            plan_run(small_dataset, det, **{"label_field": "auto", **kwargs})
    assert det.calls == []


def test_annotate_dataset_plans_each_run_once(small_dataset, video_dataset, monkeypatch):
    import autoannotate.fiftyone.annotate as annotate

    planned: list[str] = []

    def counting(*args, **kwargs):
        plan = plan_run(*args, **kwargs)
        planned.append(plan.kind)
        return plan

    monkeypatch.setattr(annotate, "plan_run", counting)
    annotate_dataset(small_dataset, FakeDetector(), label_field="auto", progress=False)
    annotate_dataset(video_dataset, FakeDetector(), label_field="auto", tracker=StillTracker(), progress=False)
    annotate_video_dataset(video_dataset, FakeDetector(), label_field="auto2", tracker=StillTracker(), progress=False)
    assert planned == ["images", "video", "video"]


def test_a_video_plan_holds_the_tracker_and_frame_fields(video_dataset, small_dataset):
    det, tracker = FakeDetector(), StillTracker()
    plan = plan_run(video_dataset, det, label_field="auto", tracker=tracker, key_frame_interval=2, progress=False)
    assert plan.kind == "video" and plan.unit == "videos" and plan.tracker is tracker
    assert plan.key_frame_interval == 2 and det.calls == []
    assert plan.config["kind"] == "video" and plan.config["label_fields"] == ["frames.auto"]
    assert plan.config["tracker"] == "StillTracker" and plan.config["key_frame_interval"] == 2
    with pytest.raises(aa.BadParameterError, match="eval_gt_field is not supported for videos"):
        plan_run(video_dataset, det, label_field="auto", eval_gt_field="x")
    with pytest.raises(aa.BadParameterError, match="needs a video collection"):
        annotate_video_dataset(small_dataset, det, label_field="auto")


def test_a_sharded_plan_stores_plain_arguments_and_queues_nothing(small_dataset):
    plan = plan_run(small_dataset, "yolox", label_field="auto", classes=["person"], review=(0.3, 0.8), shards=3)
    assert plan.kind == "sharded" and plan.shards == 3 and plan.function == "yolox"
    assert plan.shard_args["label_field"] == "auto" and plan.shard_args["review"] == {"person": [0.3, 0.8]}
    assert plan.config["kind"] == "sharded" and plan.config["label_fields"] == ["auto"]
    assert plan.items == []  # workers find their samples; nothing is run here


#: What users (help(), the docs, inspect.signature) see of annotate_dataset; its parameters are
#: declared once, in plan_run, and given to annotate_dataset by a decorator.
ANNOTATE_DATASET_SIGNATURE = (
    "(samples: 'Any', function: 'DetectionFunction | str', *, label_field: 'str', "
    "classes: 'Sequence[Any] | str | None' = None, label_map: 'Mapping[str, Any] | str | None' = None, "
    "conf_threshold: 'float | None' = None, review: 'Any' = None, overwrite: 'bool' = False, "
    "max_samples: 'int | None' = None, batch_size: 'int' = 8, num_workers: 'int' = 4, "
    "progress: 'Progress' = True, function_params: 'Mapping[str, Any] | None' = None, "
    "refine_with: 'InteractiveFunction | str | None' = None, eval_gt_field: 'str | None' = None, "
    "write_every: 'int' = 64, write_interval: 'float' = 5.0, tracker: 'TrackingFunction | str' = "
    "'opencv_tracker', tracker_params: 'Mapping[str, Any] | None' = None, key_frame_interval: 'int' = 5, "
    "shards: 'int | None' = None, run_info: 'Mapping[str, Any] | None' = None) -> 'AnnotateReport'"
)


def test_annotate_dataset_type_hints_are_plan_runs_resolved():
    """``typing.get_type_hints`` resolves the parameters in ``plan_run``'s module (``annotate``'s
    does not import every name they use) and the return in ``annotate_dataset``'s."""
    import typing

    from autoannotate.interface import InteractiveFunction
    from autoannotate.report import AnnotateReport

    hints = typing.get_type_hints(annotate_dataset)
    assert hints == {**typing.get_type_hints(plan_run), "return": AnnotateReport}
    assert hints["refine_with"] == InteractiveFunction | str | None


def test_annotate_dataset_shows_and_checks_its_own_signature(small_dataset):
    import inspect
    import pydoc

    assert str(inspect.signature(annotate_dataset)) == ANNOTATE_DATASET_SIGNATURE
    assert annotate_dataset.__name__ == "annotate_dataset" and annotate_dataset.__module__.endswith(".annotate")
    text = pydoc.render_doc(annotate_dataset, renderer=pydoc.plaintext)
    assert "annotate_dataset(samples: 'Any', function:" in text and "Auto-label ``samples``" in text
    det = FakeDetector()
    with pytest.raises(TypeError, match=r"^annotate_dataset\(\) got an unexpected keyword argument 'label_feld'$"):
        annotate_dataset(small_dataset, det, label_field="auto", label_feld="auto")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^annotate_dataset\(\) missing .*'label_field'"):
        annotate_dataset(small_dataset, det)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^annotate_dataset\(\) .*positional"):
        annotate_dataset(small_dataset, det, "auto")  # type: ignore[misc]
    assert det.calls == [] and small_dataset.get_field("auto") is None  # refused before anything ran


def test_a_function_of_the_wrong_kind_is_refused_by_the_plan(small_dataset, video_dataset):
    with pytest.raises(aa.BadFunctionError, match=r"^'grabcut' is an interactive function, but a detection function"):
        annotate_dataset(small_dataset, "grabcut", label_field="auto", progress=False)
    with pytest.raises(aa.BadFunctionError, match="`autoannotate functions --kind detection` lists them: "):
        plan_run(small_dataset, "opencv_tracker", label_field="auto", shards=2)
    # objects are checked for what they provide: a detector is no tracker, a tracker no detector
    with pytest.raises(aa.BadFunctionError, match=r"^'FakeDetector' is a detection function, but a tracking function"):
        plan_run(video_dataset, FakeDetector(), label_field="auto", tracker=FakeDetector())
    with pytest.raises(aa.BadFunctionError, match=r"^'StillTracker' is a tracking function, but a detection function"):
        plan_run(video_dataset, StillTracker(), label_field="auto", tracker=StillTracker())
    with pytest.raises(aa.BadFunctionError, match=r"^'yolox' is a detection function, but a tracking function"):
        plan_run(video_dataset, FakeDetector(), label_field="auto", tracker="yolox")
    with pytest.raises(aa.BadFunctionError, match=r"^'grabcut' is an interactive function, but a tracking function"):
        track_labels(video_dataset, "frames.auto", tracker="grabcut")
    with pytest.raises(aa.BadFunctionError, match=r"^'sam_tracker' is a tracking function, but a detection function"):
        function_spec("sam_tracker", {})  # what the auto_label form reads a function's labels with
    assert small_dataset.get_field("auto") is None  # nothing was run
