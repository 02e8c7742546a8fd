"""The review loop against FiftyOne's real database: who decided and when, review progress per
run / class / reviewer, review order by uncertainty and by disagreeing runs, and thresholds
calibrated from decisions (reviewers', or COCO128's ground truth for YOLOX-Nano)."""

from __future__ import annotations

import json

import pytest

import autoannotate as aa
from autoannotate.errors import BadParameterError
from autoannotate.fiftyone import annotate_dataset, assign_reviewers, set_review
from autoannotate.fiftyone.review import (
    apply_calibration,
    calibrate_review,
    needs_review_view,
    review_decisions,
    review_priority,
    review_summary,
    save_calibration,
    saved_calibration,
)
from tests.conftest import ARTIFACTS
from tests.fakes import FakeDetector

fo = pytest.importorskip("fiftyone")

SCORES = [0.1, 0.35, 0.5, 0.75, 0.9]


def five(ctx, img):
    """cat at 0.1 / 0.5 / 0.9, dog at 0.35 / 0.75 (distinct boxes)."""
    return [
        aa.rectangle(0 if i % 2 == 0 else 1, [4 * i, 4 * i, 4 * i + 10, 4 * i + 10], score=s)
        for i, s in enumerate(SCORES)
    ]


def labels(ds, field="auto", review=None):
    return [
        {"sample_id": s.id, "label_id": d.id, "field": field, "label": d.label, "confidence": d.confidence}
        for s in ds
        for d in s[field].detections
        if review is None or d.review == review
    ]


def test_decisions_record_who_and_when_and_the_summary_counts_them(small_dataset):
    report = annotate_dataset(small_dataset, FakeDetector(five), label_field="auto", review=(0.3, 0.8), progress=False)
    # per sample: 0.1 discarded, 0.35 / 0.5 / 0.75 need review, 0.9 approved
    assert (report.auto_approved, report.needs_review, report.discarded) == (6, 18, 6)
    todo = labels(small_dataset, review="needs_review")
    out = set_review(small_dataset, todo[:4], "approved", reviewer="ann")
    assert out.changed == 4
    set_review(small_dataset, todo[4:6], "rejected", reviewer="bob")
    assign_reviewers(small_dataset.skip(3), "auto", ["cy"])
    d = small_dataset.select(todo[0]["sample_id"]).first().auto.detections
    decided = next(x for x in d if x.id == todo[0]["label_id"])
    assert decided.reviewed_by == "ann" and decided.reviewed_at.endswith("+00:00")
    assert all(not x.has_field("reviewed_by") for x in d if x.review == "approved" and x.confidence >= 0.8)

    summary = review_summary(small_dataset, "auto")
    total = summary["total"]
    assert {k: total[k] for k in ("approved_auto", "approved_human", "rejected", "needs_review", "discarded")} == {
        "approved_auto": 6,
        "approved_human": 4,
        "rejected": 2,
        "needs_review": 12,
        "discarded": 6,
    }
    assert total["labels"] == 24 and total["reviewed"] == 6
    assert total["reviewed_share"] == pytest.approx(6 / 18) and total["acceptance_rate"] == pytest.approx(4 / 6)
    (run_key,) = summary["by_run"]
    assert run_key == report.extra["run_key"] and summary["by_run"][run_key]["discarded"] == 6
    assert summary["by_class"]["cat"]["approved_auto"] == 6 and summary["by_class"]["dog"]["labels"] == 12
    assert summary["by_reviewer"]["ann"]["approved_human"] == 4 and summary["by_reviewer"]["bob"]["rejected"] == 2
    assert summary["by_reviewer"]["cy"]["needs_review"] == 9  # the 3 samples assigned to cy, 3 pending each
    json.dumps(summary)  # plain data, for the CLI and the panel


def test_uncertainty_order_puts_labels_near_the_thresholds_first(small_dataset):
    ids = sorted(small_dataset.values("id"))
    # one needs-review label per sample, at distances 0.3, 0.01, 0.2, 0.05, 0.15, 0.1 from (0.3, 0.8)
    confs = [0.6, 0.79, 0.5, 0.35, 0.65, 0.4]
    values = {
        sid: fo.Detections(
            detections=[
                fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.2, 0.2], confidence=c, review="needs_review")
            ]
        )
        for sid, c in zip(ids, confs)
    }
    small_dataset.set_values("auto", values, key_field="id")
    view = needs_review_view(small_dataset, "auto", order="uncertainty", thresholds=(0.3, 0.8))
    assert view.values("id") == [ids[i] for i in (1, 3, 5, 4, 2, 0)]
    assert view.count("auto.detections") == 6
    # the run's own thresholds are used when none are given; an unknown order is refused
    with pytest.raises(aa.BadParameterError, match="order must be one of"):
        needs_review_view(small_dataset, "auto", order="random")


def test_disagreeing_runs_come_first(small_dataset):
    def run_a(ctx, img):
        return [aa.rectangle(0, [2, 2, 20, 20], score=0.5), aa.rectangle(1, [30, 5, 50, 30], score=0.5)]

    annotate_dataset(small_dataset, FakeDetector(run_a), label_field="auto", review=(0.3, 0.8), progress=False)
    target = sorted(small_dataset.values("id"))[4]

    def run_b(ctx, img):  # agrees with run_a, except on one sample where it sees a dog elsewhere
        if ctx.frame_name.endswith("img4.png"):
            return [aa.rectangle(0, [2, 2, 20, 20], score=0.5), aa.rectangle(1, [0, 20, 12, 38], score=0.5)]
        return run_a(ctx, img)

    # a second run into the same field: append run_b's labels next to run_a's (as a second model would)
    b_ds = fo.Dataset()
    b_ds.add_samples([fo.Sample(filepath=f) for f in small_dataset.values("filepath")])
    annotate_dataset(b_ds, FakeDetector(run_b), label_field="auto", review=(0.3, 0.7), progress=False)
    extra = dict(zip(b_ds.values("filepath"), b_ds.values("auto")))
    merged = {}
    for sid, fp, dets in zip(*small_dataset.values(["id", "filepath", "auto"])):
        merged[sid] = fo.Detections(detections=dets.detections + extra[fp].detections)
    small_dataset.set_values("auto", merged, key_field="id")
    b_ds.delete()
    ranked = review_priority(small_dataset, "auto")
    assert ranked[0]["sample_id"] == target and ranked[0]["disagreement"] == pytest.approx(0.5)
    assert all(r["disagreement"] == 0 for r in ranked[1:])
    assert needs_review_view(small_dataset, "auto", order="uncertainty").first().id == target


def test_calibration_from_reviewers_is_the_next_runs_review_and_can_be_applied(small_dataset):
    def many(ctx, img):  # 40 cats per photo, scores 0.30 .. 0.79
        return [aa.rectangle(0, [i, 0, i + 5, 5], score=0.3 + i / 80) for i in range(40)]

    annotate_dataset(small_dataset, FakeDetector(many), label_field="auto", review=(0.2, 0.99), progress=False)
    todo = labels(small_dataset, review="needs_review")
    # reviewers accept everything at or above 0.6, reject below
    set_review(small_dataset, [t for t in todo if t["confidence"] >= 0.6], "approved", reviewer="ann")
    set_review(small_dataset, [t for t in todo if t["confidence"] < 0.6], "rejected", reviewer="ann")
    cal = calibrate_review(small_dataset, "auto", 0.95, fallback=(0.3, 0.8))
    assert cal["cat"] == (pytest.approx(0.6), pytest.approx(0.6)) and cal.classes["cat"].decisions == 240
    assert cal.refused == {} and cal["*"] == (0.3, 0.8)
    assert calibrate_review(small_dataset, "auto", min_decisions=500).refused["cat"].startswith("240 scored")
    # pass it to the next run
    report = annotate_dataset(small_dataset, FakeDetector(many), label_field="auto2", review=cal, progress=False)
    assert report.auto_approved == 6 * 16 and report.needs_review == 0 and report.discarded == 6 * 24
    # save it on the dataset and apply it to labels still waiting for review
    save_calibration(small_dataset, "auto", cal)
    assert saved_calibration(small_dataset, "auto") == {"cat": (0.6, 0.6), "*": (0.3, 0.8)}
    set_review(small_dataset, labels(small_dataset), "needs_review", reviewer="ann")
    assign_reviewers(small_dataset, "auto", ["ann"])
    # back to needs_review: undecided again, and counted once for ann (her assignment), not twice
    assert not any(d.reviewed_by or d.reviewed_at for s in small_dataset for d in s.auto.detections)
    summary = review_summary(small_dataset, "auto")
    assert summary["by_reviewer"]["ann"]["needs_review"] == 6 * 40 and summary["total"]["needs_review"] == 6 * 40
    assert apply_calibration(small_dataset, "auto", cal) == 6 * 16
    # approvals by the calibration are the routing's, never a person's
    assert review_summary(small_dataset, "auto")["total"]["approved_auto"] == 6 * 16
    decisions, _ = review_decisions(small_dataset, "auto")
    assert decisions == {}


def test_apply_calibration_clears_an_earlier_reviewer(small_dataset):
    annotate_dataset(small_dataset, FakeDetector(five), label_field="auto", review=(0.05, 0.95), progress=False)
    todo = labels(small_dataset, review="needs_review")
    set_review(small_dataset, todo, "rejected", reviewer="ann")
    # a reviewer's decision is undone by hand in the database (e.g. an older version), then calibrated
    small_dataset.set_label_values(
        "auto.detections.review",
        [{"sample_id": t["sample_id"], "label_id": t["label_id"], "value": "needs_review"} for t in todo],
    )
    assert apply_calibration(small_dataset, "auto", {"*": (0.0, 0.7)}) == 6 * 2
    approved = [d for s in small_dataset for d in s.auto.detections if d.review == "approved"]
    assert len(approved) == 6 * 2 and not any(d.reviewed_by or d.reviewed_at for d in approved)
    total = review_summary(small_dataset, "auto")["total"]
    assert total["approved_auto"] == 6 * 2 and total["approved_human"] == 0
    assert review_decisions(small_dataset, "auto")[0] == {}  # nothing counts as a person's decision


def test_a_calibration_with_refused_and_foreign_classes_is_a_runs_review(small_dataset):
    from autoannotate.calibrate import calibrate

    steps = [(i / 100, i >= 60) for i in range(100)]
    cal = calibrate(
        {"cat": steps, "bird": steps, "dog": steps[:5]}, 0.95, bound="estimate"
    )  # thresholds of the observed precision
    assert cal.refused.keys() == {"dog"} and cal["*"] == (0.3, 0.8) and cal["cat"] == (0.58, 0.58)
    # bird is not a class of this run (ignored); dog was refused (the default fallback)
    report = annotate_dataset(small_dataset, FakeDetector(five), label_field="auto", review=cal, progress=False)
    got = {(d.label, d.confidence): d.review for s in small_dataset.limit(1) for d in s.auto.detections}
    assert got == {("cat", 0.9): "approved", ("dog", 0.35): "needs_review", ("dog", 0.75): "needs_review"}
    assert report.discarded == 6 * 2  # cats at 0.1 and 0.5, below cat's lower 0.58


@pytest.fixture(scope="module")
def coco_predictions(coco128, models_dir):
    """YOLOX-Nano on COCO128, every label kept down to 0.05 (no routing), beside the ground truth."""
    import os

    os.environ.setdefault("AUTOANNOTATE_MODELS", str(models_dir))
    name = "aa-review-coco128"
    ds = fo.Dataset.from_dir(
        dataset_type=fo.types.COCODetectionDataset,
        data_path=str(coco128 / "images"),
        labels_path=str(coco128 / "detections.json"),
        label_types=["detections"],
        label_field="ground_truth",
        name=name,
        overwrite=True,
        progress=False,
    )
    annotate_dataset(ds, "yolox", label_field="auto", conf_threshold=0.05, progress=False)
    yield ds
    ds.delete()


def held_out_precision(view, cal, classes=None):
    """Precision of the labels of ``view`` at or above their class's calibrated ``upper``,
    ground truth at IoU 0.5 (FiftyOne's evaluation)."""
    decisions, _ = review_decisions(view, "auto", source="ground_truth")
    hits = total = 0
    per = {}
    for name, ds in decisions.items():
        if name not in cal or (classes and name not in classes):
            continue
        above = [c for s, c in ds if s is not None and s >= cal[name][1]]
        hits += sum(above)
        total += len(above)
        per[name] = (sum(above), len(above))
    return hits / total, total, per


def test_coco128_ground_truth_calibration_holds_on_the_other_half(coco_predictions):
    ds = coco_predictions
    ids = sorted(ds.values("id"), key=lambda i: ds[i].filepath)
    half_a, half_b = ds.select(ids[0::2]), ds.select(ids[1::2])
    results = {}
    for target in (0.8, 0.9):
        cal = calibrate_review(half_a, "auto", target, source="ground_truth", min_decisions=30)
        assert "person" in cal and cal.classes["person"].decisions >= 200
        precision, n, per = held_out_precision(half_b, cal)
        results[str(target)] = {
            "calibrated_classes": sorted(k for k in cal if k != "*"),
            "thresholds": {k: list(v) for k, v in cal.thresholds.items()},
            "calibration_precision": {
                k: [c.precision, c.support, list(c.interval or [])] for k, c in cal.classes.items() if not c.refused
            },
            "held_out_precision": precision,
            "held_out_labels": n,
            "held_out_per_class": {k: list(v) for k, v in per.items()},
            "auto_approved_share_calibration_half": cal.auto_approved_share,
        }
        # the threshold chosen on one half gives about the target precision on the other
        assert precision >= target - 0.05, (target, precision, n)
        assert n >= 50
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "review-calibration-coco128.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: (v["held_out_precision"], v["held_out_labels"]) for k, v in results.items()}))


# -- the plugin: operators and the panel -------------------------------------------------------------

foo = pytest.importorskip("fiftyone.operators")
PLUGIN = "@autoannotate/autoannotate"


def run_op(op, ds, params=None, **ctx):
    ctx.setdefault("dataset", ds.name)
    result = foo.execute_operator(f"{PLUGIN}/{op}", ctx={"params": params or {}, **ctx})
    assert result.error is None, result.error_message
    return result.result


def reviewed_dataset(ds):
    """40 cats and 10 dogs per photo, needs review between 0.2 and 0.99; reviewers accept cats at
    or above 0.55 and every other dog."""

    def many(ctx, img):
        cats = [aa.rectangle(0, [i, 0, i + 5, 5], score=0.3 + i / 80) for i in range(40)]
        dogs = [aa.rectangle(1, [i, 20, i + 5, 25], score=0.4 + i / 20) for i in range(10)]
        return cats + dogs

    annotate_dataset(ds, FakeDetector(many), label_field="auto", review=(0.2, 0.99), progress=False)
    todo = labels(ds, review="needs_review")
    good = [
        t
        for t in todo
        if (t["label"] == "cat" and t["confidence"] >= 0.55)
        or (t["label"] == "dog" and round(t["confidence"] * 20) % 2)
    ]
    bad = [t for t in todo if t not in good]
    set_review(ds, good[: len(good) - 10], "approved", reviewer="ann")
    set_review(ds, bad[: len(bad) - 10], "rejected", reviewer="bob")
    return ds


def test_operators_sort_by_uncertainty_calibrate_and_record_the_reviewer(small_dataset, monkeypatch):
    reviewed_dataset(small_dataset)
    out = run_op(
        "calibrate_review",
        small_dataset,
        {"label_field": "auto", "target_precision": 0.95, "min_decisions": 100, "apply": True},
    )
    lower, upper = (float(x) for x in out["thresholds"]["cat"].split(" / "))
    # 0.5375 (rejected) still passes: 5 of its kind among ~115 accepted keep precision >= 0.95
    assert 0.53 <= lower <= upper <= 0.55 and set(out["refused"]) == {"dog"}
    assert out["approved"] > 0 and saved_calibration(small_dataset, "auto")["*"] == (0.3, 0.8)
    out = run_op("sort_by_review_uncertainty", small_dataset, {"label_field": "auto"})
    assert out["samples"] == needs_review_view(small_dataset, "auto").count()
    monkeypatch.setenv("AUTOANNOTATE_REVIEWER", "dee")
    todo = labels(small_dataset, review="needs_review")[:3]
    run_op("reject_labels", small_dataset, selected_labels=todo)
    assert review_summary(small_dataset, "auto")["by_reviewer"]["dee"]["rejected"] == 3


def test_a_held_out_share_of_the_photos_checks_the_thresholds_everywhere_they_are_shown(small_dataset, capsys):
    from autoannotate.cli import main

    reviewed_dataset(small_dataset)
    # by a hash of the file name: img0, img3 and img5 are held out at 0.5, whatever the dataset
    held_names = {"img0.png", "img3.png", "img5.png"}
    decided = [
        (s.filepath.rsplit("/", 1)[-1], d.confidence, d.review == "approved")
        for s in small_dataset
        for d in s.auto.detections
        if d.label == "cat" and d.has_field("reviewed_by") and d.reviewed_by
    ]
    cal = calibrate_review(small_dataset, "auto", 0.9, holdout=0.5)
    learned = [(c, ok) for f, c, ok in decided if f not in held_names]
    held = [(c, ok) for f, c, ok in decided if f in held_names]
    assert learned and held and cal.classes["cat"].decisions == len(learned) and cal.bound == "wilson"
    upper = cal["cat"][1]
    check = cal.held_out["classes"]["cat"]
    above = [ok for c, ok in held if c >= upper]
    assert (check["decisions"], check["labels"], check["correct"]) == (len(held), len(above), sum(above))
    assert check["precision"] == pytest.approx(sum(above) / len(above)) and check["target_met"] is (
        sum(above) / len(above) >= 0.9
    )
    assert calibrate_review(small_dataset, "auto", 0.9).held_out is None  # nothing held out by default
    # the shell command and the operator show it
    assert main(["fiftyone", "calibrate-review", small_dataset.name, "auto", "--target-precision", "0.9"]) == 0
    assert "held-out check: none" in capsys.readouterr().out
    args = ["fiftyone", "calibrate-review", small_dataset.name, "auto", "--target-precision", "0.9", "--holdout", "0.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"held-out check on {cal.held_out['decisions']} decisions not used for the thresholds" in out
    assert f"cat: precision {check['precision']:.3f} ({check['correct']}/{check['labels']} at or above upper" in out
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["held_out"]["classes"]["cat"] == check
    op = run_op("calibrate_review", small_dataset, {"label_field": "auto", "target_precision": 0.9, "holdout": 0.5})
    assert op["held_out"].startswith(f"precision {check['precision']:.3f} ({check['correct']} of {check['labels']}")
    assert "held-out check on" in op["summary"]
    # the form takes --min-support too: the operator learns what the API learns with it
    strict = calibrate_review(small_dataset, "auto", 0.9, min_support=150)
    assert strict["cat"] != calibrate_review(small_dataset, "auto", 0.9)["cat"]  # 150 labels, not 10, above upper
    op = run_op("calibrate_review", small_dataset, {"label_field": "auto", "target_precision": 0.9, "min_support": 150})
    assert op["thresholds"]["cat"] == f"{strict['cat'][0]:.3f} / {strict['cat'][1]:.3f}"
    with pytest.raises(BadParameterError):
        calibrate_review(small_dataset, "auto", 0.9, holdout=1.0)


def test_review_panel_logic(small_dataset):
    from autoannotate.fiftyone.panel import panel_content

    reviewed_dataset(small_dataset)
    content = panel_content(small_dataset, None)
    assert content["fields"] == ["auto"] and content["label_field"] == "auto"
    assert "| reviewer |" in content["markdown"] and "| ann |" in content["markdown"]
    cat = next(t for t in content["traces"] if t["name"].startswith("cat"))
    # cats: rejected below 0.55, accepted above: precision 0 in the low bins, 1 in the high ones
    assert cat["y"][0] == 0.0 and cat["y"][-1] == 1.0 and len(cat["x"]) == len(cat["y"]) == 5
    empty = panel_content(small_dataset.limit(0), None)  # an empty view of the dataset: zeros, no plot
    assert empty["traces"] == [] and "| total | 0 | 0 | 0 | 0 | 0 | - | - |" in empty["markdown"]
    small_dataset.delete_sample_field("auto")
    none = panel_content(small_dataset, None)
    assert none["fields"] == [] and none["label_field"] is None and "No label field" in none["markdown"]


PANEL_SERVER = """
import sys
import fiftyone as fo
ds = fo.load_dataset(sys.argv[1])
spaces = fo.Space(children=[fo.Panel(type="autoannotate_review_progress", pinned=False)])
session = fo.launch_app(ds, spaces=spaces, remote=True, address="127.0.0.1", port=int(sys.argv[2]))
print("ready", flush=True)
sys.stdin.read()
"""


def test_review_panel_renders_in_the_app(small_dataset):
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.browser import playwright_browser
    from tests.fiftyone.test_app import free_port
    from tests.procs import kill_tree, wait_for_line

    reviewed_dataset(small_dataset)
    small_dataset.persistent = True
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", PANEL_SERVER, small_dataset.name, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_line(proc, "ready")
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with playwright_browser() as b:
            page = b.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(f"{url}/datasets/{small_dataset.name}")
            page.get_by_text("approved by reviewer").first.wait_for(timeout=120_000)
            dismiss = page.get_by_text("Dismiss", exact=True)
            if dismiss.count():
                dismiss.first.click()
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            time.sleep(2)
            text = page.inner_text("body")
            shot = ARTIFACTS / "fiftyone-review-panel.png"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
    finally:
        kill_tree(proc)
    assert "Review progress" in text and "ann" in text and "bob" in text
    assert shot.stat().st_size > 30_000


def test_fiftyone_commands_print_the_summary_and_the_calibration(small_dataset, capsys):
    from autoannotate.cli import main

    reviewed_dataset(small_dataset)
    assert main(["fiftyone", "review-summary", small_dataset.name, "auto"]) == 0
    out = capsys.readouterr().out
    assert "reviewer ann" in out and "class cat" in out and out.strip().splitlines()[-1].startswith("total")
    (run_key,) = small_dataset.distinct("auto.detections.autoannotate_run")
    assert f"run {run_key} " in out  # the whole key
    assert main(["fiftyone", "review-summary", small_dataset.name, "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["approved_human"] == 140
    args = ["fiftyone", "calibrate-review", small_dataset.name, "auto", "--min-decisions", "100", "--save"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cat: lower" in out and "dog: refused" in out
    assert "other classes (refused, not seen): lower 0.300 upper 0.800 (the package's default" in out
    saved = saved_calibration(small_dataset, "auto")
    assert set(saved) == {"cat"}  # the default fallback is not saved: it would approve unlearned classes
    assert saved.review(["cat", "dog"])["*"] == (0.3, 0.8)  # a next run still routes dog with it
    assert main([*args, "--fallback", "0.1,0.9"]) == 0
    out = capsys.readouterr().out
    assert "upper 0.900" in out and "package's default" not in out
    assert saved_calibration(small_dataset, "auto")["*"] == (0.1, 0.9)


def test_video_frame_labels_summary_order_and_calibration(tmp_path, dataset_name):
    from tests.fakes import StillTracker
    from tests.tracking.synthetic import make_frames, write_video

    frames, _ = make_frames(8, objects=1)
    ds = fo.Dataset(f"{dataset_name}-video")
    ds.add_sample(fo.Sample(filepath=str(write_video(frames, tmp_path / "clip.mp4"))))
    try:

        def detect(ctx, image):
            return [aa.rectangle(0, [10, 10, 60, 60], score=0.9), aa.rectangle(1, [100, 100, 150, 150], score=0.5)]

        annotate_dataset(
            ds, FakeDetector(detect), label_field="auto", review=(0.3, 0.8), tracker=StillTracker(), progress=False
        )
        sample = ds.first()
        dogs = [
            {"sample_id": sample.id, "frame_number": n, "label_id": d.id, "field": "frames.auto"}
            for n, f in sample.frames.items()
            for d in f.auto.detections
            if d.label == "dog"
        ]
        set_review(ds, dogs[:3], "approved", reviewer="ann")
        set_review(ds, dogs[3:5], "rejected", reviewer="bob")
        total = review_summary(ds, "auto")["total"]
        assert review_summary(ds, "auto")["field"] == "frames.auto"
        assert (total["approved_auto"], total["approved_human"], total["rejected"], total["needs_review"]) == (
            8,
            3,
            2,
            3,
        )
        view = needs_review_view(ds, "frames.auto", order="uncertainty")
        assert view.count("frames.auto.detections") == 3
        cal = calibrate_review(ds, "auto", min_decisions=5)
        assert cal.classes["dog"].decisions == 5 and not cal.classes["dog"].target_reached
        assert apply_calibration(ds, "auto", {"dog": (0.3, 0.5)}) == 3
        assert ds.count_values("frames.auto.detections.review") == {"approved": 14, "rejected": 2}
    finally:
        ds.delete()


def test_review_tools_on_a_sharded_run(small_dataset, models_env):
    """A sharded run (its parent record and its two shard runs, run here in-process): labels carry
    the shard run keys, the parent key still selects them and its discards count once."""
    from autoannotate.fiftyone.shard_worker import run_shard

    queued = annotate_dataset(
        small_dataset, "yolox", label_field="auto", review=(0.1, 1.0), conf_threshold=0.01, shards=2, progress=False
    )
    key = queued.extra["run_key"]
    for shard in (0, 1):
        run_shard(small_dataset, key, shard)
    small_dataset.reload()
    from autoannotate.fiftyone import get_run

    parent = get_run(small_dataset, key)
    assert parent["kind"] == "sharded"
    discarded = int(parent["report"]["discarded"])
    assert discarded > 0
    summary = review_summary(small_dataset, "auto")
    assert summary["total"]["discarded"] == discarded  # not twice (parent + shards)
    assert sum(r["discarded"] for r in summary["by_run"].values()) == discarded
    pending = summary["total"]["needs_review"]
    assert pending > 0
    view = needs_review_view(small_dataset, "auto", run_key=key)
    assert view.count("auto.detections") == pending
    ranked = review_priority(small_dataset, "auto", run_key=key)
    assert sum(d["labels"] for d in ranked) == pending
    todo = labels(small_dataset, review="needs_review")
    set_review(small_dataset, todo, "approved", reviewer="ann")
    cal = calibrate_review(small_dataset, "auto", 0.95, run_key=key, min_decisions=1)
    assert sum(c.decisions for c in cal.classes.values()) == len(todo)


def test_auto_label_operator_uses_a_saved_calibration(small_dataset, models_env):
    from autoannotate.calibrate import calibrate

    # "unicorn" is no class of the run (ignored); every other class routes with the fallback
    cal = calibrate({"unicorn": [(i / 100, i >= 60) for i in range(100)]}, 0.95, fallback=(0.01, 0.02))
    save_calibration(small_dataset, "auto", cal)
    params = {"view_target": "DATASET", "function": "yolox", "label_field": "auto2", "conf_threshold": 0.02}
    report = run_op("auto_label", small_dataset, {**params, "review_calibration": "auto"})
    small_dataset.reload()
    reviews = [d.review for s in small_dataset for d in (s.auto2.detections if s.auto2 else [])]
    assert reviews and set(reviews) == {"approved"} and report["auto_approved"] == len(reviews)


def test_a_default_fallback_never_approves_classes_nothing_was_learned_for(small_dataset):
    """calibrate() without fallback= adds "*" = the package default for the next run's routing;
    applying (or saving) that calibration approves only the calibrated classes."""
    from autoannotate.calibrate import calibrate
    from autoannotate.fiftyone.review import save_calibration, saved_calibration

    def cat_and_dog(ctx, img):
        return [aa.rectangle(0, [0, 0, 10, 10], score=0.9), aa.rectangle(1, [20, 20, 30, 30], score=0.85)]

    annotate_dataset(small_dataset, FakeDetector(cat_and_dog), label_field="auto", review=(0.05, 0.95), progress=False)
    steps = [(i / 100, i >= 60) for i in range(100)]
    cal = calibrate({"cat": steps, "dog": steps[:5]}, 0.95, bound="estimate")  # dog refused: "*" is the default
    assert cal["*"] == (0.3, 0.8)
    assert apply_calibration(small_dataset, "auto", cal) == 6  # the cats; not the dogs at 0.85
    assert {d.label for s in small_dataset for d in s.auto.detections if d.review == "approved"} == {"cat"}
    save_calibration(small_dataset, "auto", cal)
    assert "*" not in saved_calibration(small_dataset, "auto")
    assert apply_calibration(small_dataset, "auto", {"*": (0.0, 0.7)}) == 6  # an explicit "*" applies: the dogs


def test_json_commands_print_only_json_on_stdout(small_dataset):
    """FiftyOne says "Evaluating detections..." on stdout while calibrating against ground truth:
    with --json that goes to stderr, and stdout is exactly the JSON (a shell pipes it to jq)."""
    import subprocess
    import sys

    reviewed_dataset(small_dataset)
    small_dataset.persistent = True  # the command runs in another process

    def run(*args):
        cmd = [sys.executable, "-m", "autoannotate.cli", "fiftyone", *args, small_dataset.name, "auto"]
        return subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)

    r = run("calibrate-review", "--source", "ground_truth", "--min-decisions", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source"] == "ground truth 'ground_truth'"
    assert "Evaluating detections..." in r.stderr
    r = run("review-summary")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total"]["approved_human"] == 140
