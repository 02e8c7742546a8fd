"""``label-studio review-report`` against a real Label Studio server: predictions of two model
versions, annotations made from them (kept, moved, deleted, relabelled, one region added), and the
report's counts, calibration and acceptance curve PNG."""

from __future__ import annotations

import json

import PIL.Image
import pytest

from autoannotate.cli import main
from autoannotate.label_studio.review_report import compare_regions, report_from_tasks, review_report
from tests.conftest import ARTIFACTS

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="cat"/>
    <Label value="dog"/>
  </RectangleLabels>
</View>"""


def rect(label, x, y, w=20, h=20, score=None, rid=None):
    r = {
        "id": rid or f"{label}{x}{y}",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 640,
        "original_height": 480,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]},
    }
    if score is not None:
        r["score"] = score
    return r


PREDICTED = [
    rect("cat", 10, 10, score=0.9, rid="a"),  # kept as is
    rect("cat", 40, 10, score=0.8, rid="b"),  # moved 3 % to the right: IoU 340/460
    rect("cat", 10, 50, score=0.3, rid="c"),  # deleted
    rect("dog", 40, 50, score=0.6, rid="d"),  # relabelled to cat
]
ANNOTATED = [
    rect("cat", 10, 10, rid="a"),
    rect("cat", 43, 10, rid="b"),
    rect("cat", 40, 50, rid="d"),
    rect("dog", 70, 70, w=10, h=10, rid="new"),  # the model missed it
]


def test_compare_regions_table():
    regions, added = compare_regions(PREDICTED, ANNOTATED)
    assert [r["outcome"] for r in regions] == ["unchanged", "edited", "deleted", "relabelled"]
    assert regions[1]["iou"] == pytest.approx(340 / 460)
    assert [a["label"] for a in added] == ["dog"]
    # nothing annotated: everything deleted; no prediction: everything added
    assert {r["outcome"] for r in compare_regions(PREDICTED, [])[0]} == {"deleted"}
    assert len(compare_regions([], ANNOTATED)[1]) == 4
    # a cancelled annotation and a task without annotation are not reviews
    tasks = [
        {
            "predictions": [{"model_version": "v", "result": PREDICTED}],
            "annotations": [{"was_cancelled": True, "result": []}],
        },
        {"predictions": [{"model_version": "v", "result": PREDICTED}], "annotations": []},
    ]
    report = report_from_tasks(tasks)
    assert (report["tasks"], report["reviewed_tasks"], report["model_versions"]) == (2, 0, {})


def test_the_report_holds_out_tasks_and_states_the_precision_reached_on_them():
    from autoannotate.calibrate import holds_out
    from autoannotate.label_studio.review_report import format_report

    tasks = [
        {
            "id": i,
            "predictions": [{"model_version": "v", "result": PREDICTED}],
            "annotations": [{"result": ANNOTATED, "was_cancelled": False}],
        }
        for i in range(1, 61)
    ]
    held = [t["id"] for t in tasks if holds_out(t["id"], 0.5)]
    assert 0 < len(held) < 60
    report = report_from_tasks(tasks, target_precision=0.9, min_decisions=30, holdout=0.5)
    cal = report["model_versions"]["v"]["calibration"]
    # the thresholds rest on the other tasks only (3 cat predictions each); the default bound is Wilson's
    assert cal["classes"]["cat"]["decisions"] == 3 * (60 - len(held)) and cal["bound"] == "wilson"
    assert cal["review"]["cat"] == [0.3, 0.8]  # 0 wrong of 20 below 0.8 is no proof that <= 10% are right there
    check = cal["held_out"]
    assert check["decisions"] == 4 * len(held)  # cat 0.9, 0.8, 0.3 and the relabelled dog per task
    cat = check["classes"]["cat"]
    assert (cat["decisions"], cat["labels"], cat["correct"], cat["precision"]) == (
        3 * len(held),
        2 * len(held),
        2 * len(held),
        1.0,
    )
    assert check["not_checked"] == ["dog"]  # refused (20 decisions): it has no learned threshold
    text = format_report(report)
    assert f"held-out check on {4 * len(held)} decisions not used for the thresholds" in text
    assert f"cat: precision 1.000 ({2 * len(held)}/{2 * len(held)} at or above upper" in text
    assert "held-out check: none" in format_report(report_from_tasks(tasks, target_precision=0.9))


def test_the_report_and_its_curve_say_what_each_number_and_line_is():
    """The calibration line "review=(l, u) precision P over S of N" and the curve's dotted lines
    come with their meaning (text legend; a legend entry for every line of the PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autoannotate.label_studio.review_report import acceptance_figure, format_report

    tasks = []
    for i in range(40):  # deleted below 0.25, every other one kept up to 0.5, all kept from 0.5
        score = (i + 0.5) / 40
        kept = score >= 0.5 or (score >= 0.25 and i % 2 == 0)
        pred = [rect("cat", 10, 10, score=score, rid="p")]
        ann = [rect("cat", 10, 10, rid="p")] if kept else []
        tasks.append({"predictions": [{"model_version": "v1", "result": pred}], "annotations": [{"result": ann}]})
    # the observed-precision bound: with Wilson's, 20 of 20 right is no proof of 0.9 (no upper line)
    report = report_from_tasks(tasks, min_decisions=20, target_precision=0.9, bound="estimate")
    (cal,) = report["model_versions"]["v1"]["calibration"]["classes"].values()
    assert cal["lower"] < cal["upper"] and cal["target_reached"]  # the data gives both lines
    text = format_report(report)
    line = f"cat: review=({cal['lower']:.3f}, {cal['upper']:.3f}) precision {cal['precision']:.3f} over "
    assert line + f"{cal['support']} of 40" in text
    assert "review=(lower, upper): the thresholds a FiftyOne run takes as review=" in text
    assert "precision P over S of N: of the N scored predictions of that label" in text
    fig = acceptance_figure(report, plt)
    try:
        (ax,) = fig.axes
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(legend) == len(ax.get_lines()) == 4  # the curve, two thresholds, the target: all named
        assert legend[0] == "v1: share accepted per score bin (40 predictions)"
        high = f"({cal['support']} of 40 decided predictions score that high)"
        assert legend[1] == f"cat: auto-approve from score {cal['upper']:.2f} {high}"
        assert legend[2] == f"cat: discard below score {cal['lower']:.2f} (between: needs review)"
        assert legend[3] == "target precision 0.9"
    finally:
        plt.close(fig)


@pytest.fixture(scope="module")
def reviewed_project(label_studio, tmp_path_factory):
    """12 tasks: 10 annotated from version v1's predictions, 3 of them also predicted by v2,
    one annotated task without predictions, one task with predictions and no annotation."""
    client = label_studio.client()
    project = client.projects.create(title="review report", label_config=CONFIG)
    folder = tmp_path_factory.mktemp("photos")
    with label_studio.http() as http:
        files = []
        for i in range(12):
            p = folder / f"photo{i:02d}.png"
            PIL.Image.new("RGB", (640, 480), (10 * i, 80, 120)).save(p)
            files.append((f"file_{i}", (p.name, p.read_bytes(), "image/png")))
        r = http.post(f"/api/projects/{project.id}/import", files=files)
        assert r.status_code == 201, r.text
        tasks = sorted(client.tasks.list(project=project.id), key=lambda t: t.id)
        for i, t in enumerate(tasks):
            if i < 11:
                r = http.post(
                    "/api/predictions",
                    json={"task": t.id, "result": PREDICTED, "score": 0.7, "model_version": "v1"},
                )
                assert r.status_code == 201, r.text
            if i < 3:
                r = http.post(
                    "/api/predictions",
                    json={"task": t.id, "result": [rect("cat", 10, 10, score=0.95)], "model_version": "v2"},
                )
                assert r.status_code == 201, r.text
            if i < 10 or i == 11:
                r = http.post(f"/api/tasks/{t.id}/annotations", json={"result": ANNOTATED, "was_cancelled": False})
                assert r.status_code == 201, r.text
    return project


def test_review_report_against_label_studio(label_studio, reviewed_project, tmp_path):
    png = ARTIFACTS / "label-studio-review-report.png"
    report = review_report(
        label_studio.url,
        label_studio.token,
        reviewed_project.id,
        plot=png,
        min_decisions=20,
        target_precision=0.95,
        bound="estimate",  # 20 of 20 correct reach 0.95 as observed, not with confidence (the default)
    )
    assert (report["tasks"], report["reviewed_tasks"]) == (12, 11)
    v1, v2 = report["model_versions"]["v1"], report["model_versions"]["v2"]
    cat, dog = v1["by_label"]["cat"], v1["by_label"]["dog"]
    assert (cat["unchanged"], cat["edited"], cat["deleted"], cat["relabelled"]) == (10, 10, 10, 0)
    assert (dog["relabelled"], dog["added"]) == (10, 10)
    assert cat["mean_edit_iou"] == pytest.approx(340 / 460, abs=1e-6)
    assert cat["acceptance_rate"] == pytest.approx(2 / 3) and v1["total"]["predictions"] == 40
    assert v2["by_label"]["cat"]["unchanged"] == 3 and v2["by_label"]["cat"]["added"] == 6
    cal = v1["calibration"]
    # "*": the package default for classes nothing was learned for (a next run routes them with it)
    assert cal["review"] == {"cat": [0.8, 0.8], "*": [0.3, 0.8]} and cal["fallback_is_default"]
    assert cal["classes"]["cat"]["support"] == 20
    assert cal["refused"] == {"dog": "10 scored decision(s), need at least 20"}
    assert v1["curve"][3]["precision"] == 0.0 and v1["curve"][9]["precision"] == 1.0
    with PIL.Image.open(png) as im:
        assert im.size == (700, 550)
        assert len(set(im.convert("RGB").getdata())) > 50  # lines and text, not a blank image


def test_review_report_command(label_studio, reviewed_project, tmp_path, capsys):
    png = tmp_path / "curve.png"
    args = ["label-studio", "review-report", "--url", label_studio.url, "--api-key", label_studio.token]
    project = ["--project", str(reviewed_project.id), "--bound", "estimate"]
    assert main([*args, *project, "--plot", str(png), "--min-decisions", "20"]) == 0
    out = capsys.readouterr().out
    assert "model version v1" in out and "cat: review=(0.800, 0.800)" in out and png.exists()
    assert main([*args, "--project", str(reviewed_project.id), "--json", "--no-plot"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model_versions"]["v1"]["by_label"]["cat"]["deleted"] == 10 and "plot" not in data
