"""``autoannotate label-studio review-report``: what annotators did with the predictions.

For every task with a submitted annotation (the latest one not cancelled), each prediction region
(rectangles, and polygons by their bounding box) is matched to an annotation region of the same
control: pairs are taken greedily, same label first, then highest IoU, down to ``match_iou``.
A prediction region is then

- ``unchanged``: matched with the same label and IoU >= ``unchanged_iou`` (accepted as is);
- ``edited``: matched with the same label, moved or resized (its IoU is reported);
- ``relabelled``: matched to a region of another label;
- ``deleted``: no annotation region matches it.

Annotation regions no prediction matches are ``added`` (what the model missed). Per model version
and label the report counts these; the same decisions (unchanged and edited are correct,
relabelled and deleted are not) give the review thresholds of :func:`autoannotate.calibrate.calibrate`
and the acceptance curve (share accepted per confidence bin), drawn as a PNG.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..calibrate import (
    DEFAULT_BOUND,
    DEFAULT_MIN_DECISIONS,
    calibrate,
    held_out_lines,
    holds_out,
    precision_by_confidence,
)
from ..errors import AutoAnnotateError, BadParameterError
from ..masks import box_iou
from .project import sdk_field
from .regions import rectangle_from_value

__all__ = [
    "OUTCOMES",
    "compare_regions",
    "review_report",
    "report_from_tasks",
    "plot_acceptance",
    "acceptance_figure",
    "format_report",
]

#: What can happen to a prediction region (and ``added`` for annotation regions).
OUTCOMES = ("unchanged", "edited", "relabelled", "deleted")
_LABEL_KEYS = ("rectanglelabels", "polygonlabels", "labels")


def _region(r: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"control", "label", "box" (x1, y1, x2, y2 in percent), "score"}`` of a rectangle or
    polygon result; None for other results (brushes, choices, text). A rotated rectangle's box
    is the upright box around its turned corners (``regions.rectangle_from_value``)."""
    v = r.get("value") or {}
    label = next((v[k][0] for k in _LABEL_KEYS if v.get(k)), None)
    if r.get("type") in ("rectanglelabels", "rectangle") and "width" in v:
        size = (int(r.get("original_width") or 100), int(r.get("original_height") or 100))
        x1, y1, x2, y2 = rectangle_from_value(v, size).bbox()  # type: ignore[misc]
        box = (x1 * 100 / size[0], y1 * 100 / size[1], x2 * 100 / size[0], y2 * 100 / size[1])
    elif r.get("type") in ("polygonlabels", "polygon") and v.get("points"):
        xs = [float(p[0]) for p in v["points"]]
        ys = [float(p[1]) for p in v["points"]]
        box = (min(xs), min(ys), max(xs), max(ys))
    else:
        return None
    score = r.get("score")
    return {"control": r.get("from_name"), "label": label, "box": box, "score": None if score is None else float(score)}


def compare_regions(
    predicted: Iterable[Mapping[str, Any]],
    annotated: Iterable[Mapping[str, Any]],
    *,
    match_iou: float = 0.5,
    unchanged_iou: float = 0.98,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Match prediction results to annotation results (Label Studio result dicts). Returns
    ``(predictions, added)``: each prediction region with ``outcome`` and ``iou`` (None when
    deleted), and the annotation regions nothing predicted."""
    preds = [p for p in (_region(r) for r in predicted) if p]
    anns = [a for a in (_region(r) for r in annotated) if a]
    pairs = []
    ious = box_iou(np.array([p["box"] for p in preds]), np.array([a["box"] for a in anns]))
    for i, p in enumerate(preds):
        for j, a in enumerate(anns):
            if p["control"] != a["control"]:
                continue
            iou = float(ious[i, j])
            if iou >= match_iou:
                pairs.append((p["label"] == a["label"], iou, i, j))
    pairs.sort(key=lambda t: (not t[0], -t[1], t[2], t[3]))
    used_p: dict[int, tuple[bool, float]] = {}
    used_a: set[int] = set()
    for same, iou, i, j in pairs:
        if i not in used_p and j not in used_a:
            used_p[i] = (same, iou)
            used_a.add(j)
    out = []
    for i, p in enumerate(preds):
        if i not in used_p:
            out.append(dict(p, outcome="deleted", iou=None))
            continue
        same, iou = used_p[i]
        outcome = "relabelled" if not same else "unchanged" if iou >= unchanged_iou else "edited"
        out.append(dict(p, outcome=outcome, iou=iou))
    return out, [a for j, a in enumerate(anns) if j not in used_a]


def _latest_annotation(task: Any) -> Any:
    done = [a for a in sdk_field(task, "annotations") or [] if not sdk_field(a, "was_cancelled")]
    return max(done, key=lambda a: (str(sdk_field(a, "updated_at") or ""), sdk_field(a, "id") or 0)) if done else None


def _counts() -> dict[str, Any]:
    return {**dict.fromkeys(OUTCOMES, 0), "added": 0, "iou_sum": 0.0}


def _finish(c: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(c[k]) for k in (*OUTCOMES, "added")}
    out["predictions"] = sum(out[k] for k in OUTCOMES)
    accepted = out["unchanged"] + out["edited"]
    out["acceptance_rate"] = accepted / out["predictions"] if out["predictions"] else None
    out["mean_edit_iou"] = c["iou_sum"] / out["edited"] if out["edited"] else None
    return out


def report_from_tasks(
    tasks: Iterable[Any],
    *,
    match_iou: float = 0.5,
    unchanged_iou: float = 0.98,
    target_precision: float = 0.95,
    min_decisions: int = DEFAULT_MIN_DECISIONS,
    bound: str = DEFAULT_BOUND,
    bins: int = 10,
    holdout: float = 0.0,
) -> dict[str, Any]:
    """The review report of ``tasks`` (dicts or SDK objects with ``predictions`` and
    ``annotations``); see the module docstring. ``{"tasks", "reviewed_tasks", "model_versions":
    {version: {"total", "by_label", "calibration", "curve"}}}``. ``holdout``: share of the tasks
    (by a hash of the task id) whose decisions are kept out of the calibration; its ``held_out``
    states the precision the thresholds reach on them."""
    holds_out("", holdout)  # checks the share
    if not 0 < match_iou <= unchanged_iou <= 1:
        raise BadParameterError(f"need 0 < match_iou <= unchanged_iou <= 1, got {match_iou}, {unchanged_iou}")
    n_tasks = reviewed = 0
    counts: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(_counts))
    decisions: dict[str, dict[str, list[tuple[float | None, bool]]]] = defaultdict(lambda: defaultdict(list))
    held: dict[str, dict[str, list[tuple[float | None, bool]]]] = defaultdict(lambda: defaultdict(list))
    tasks_of: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))  # decisions' tasks
    for task in tasks:
        n_tasks += 1
        ann = _latest_annotation(task)
        if ann is None:
            continue
        reviewed += 1
        for pred in sdk_field(task, "predictions") or []:
            version = str(sdk_field(pred, "model_version") or "(none)")
            regions, added = compare_regions(
                sdk_field(pred, "result") or [],
                sdk_field(ann, "result") or [],
                match_iou=match_iou,
                unchanged_iou=unchanged_iou,
            )
            for r in regions:
                c = counts[version][str(r["label"])]
                c[r["outcome"]] += 1
                if r["outcome"] == "edited":
                    c["iou_sum"] += r["iou"]
                decision = (r["score"], r["outcome"] in ("unchanged", "edited"))
                if holds_out(sdk_field(task, "id"), holdout):
                    held[version][str(r["label"])].append(decision)
                else:
                    decisions[version][str(r["label"])].append(decision)
                    tasks_of[version][str(r["label"])].append(sdk_field(task, "id"))
            for a in added:
                counts[version][str(a["label"])]["added"] += 1
    versions = {}
    for version, by_label in sorted(counts.items()):
        total = _counts()
        for c in by_label.values():
            for k in total:
                total[k] += c[k]
        cal = calibrate(
            decisions[version],
            target_precision,
            min_decisions=min_decisions,
            bound=bound,
            source=f"Label Studio annotations (model version {version})",
            held_out=dict(held[version]) if holdout else None,
            groups=dict(tasks_of[version]),
            held_out_note=f"{holdout:.0%} of the tasks, chosen by a hash of the task id" if holdout else "",
        )
        pooled = [d for ds in decisions[version].values() for d in ds]
        versions[version] = {
            "total": _finish(total),
            "by_label": {k: _finish(v) for k, v in sorted(by_label.items())},
            "calibration": cal.to_dict(),
            "curve": precision_by_confidence(pooled, bins),
        }
    return {"tasks": n_tasks, "reviewed_tasks": reviewed, "model_versions": versions}


def plot_acceptance(report: Mapping[str, Any], path: str | Path) -> Path:
    """Draw the acceptance curve of each model version (share of predictions accepted, unchanged
    or edited, per confidence bin) into a PNG at ``path``. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AutoAnnotateError(
            "the acceptance curve PNG needs matplotlib: pip install matplotlib (or pass --no-plot)"
        ) from None
    fig = acceptance_figure(report, plt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def acceptance_figure(report: Mapping[str, Any], plt: Any) -> Any:
    """The acceptance curve's matplotlib figure (``plt``: ``matplotlib.pyplot``), with a legend
    naming every line: each version's curve, each calibrated label's thresholds, the target."""
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=100)
    versions = report["model_versions"]
    for version, v in versions.items():
        rows = [b for b in v["curve"] if b["decisions"]]
        (curve,) = ax.plot(
            [(b["lower"] + b["upper"]) / 2 for b in rows],
            [b["precision"] for b in rows],
            marker="o",
            label=f"{version}: share accepted per score bin ({sum(b['decisions'] for b in rows)} predictions)",
        )
        for name, c in v["calibration"]["classes"].items():
            if c["refused"] or not c["target_reached"]:
                continue
            who = f"{version} {name}" if len(versions) > 1 else name
            ax.axvline(
                c["upper"],
                linestyle=":",
                color=curve.get_color(),
                label=f"{who}: auto-approve from score {c['upper']:.2f} "
                f"({c['support']} of {c['decisions']} decided predictions score that high)",
            )
            if c["lower"] < c["upper"]:
                ax.axvline(
                    c["lower"],
                    linestyle="-.",
                    linewidth=0.8,
                    color=curve.get_color(),
                    label=f"{who}: discard below score {c['lower']:.2f} (between: needs review)",
                )
    target = _target(report)
    ax.axhline(target, linestyle="--", color="tab:red", linewidth=1, label=f"target precision {target:g}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("prediction score")
    ax.set_ylabel("accepted (unchanged or edited)")
    ax.set_title("Predictions accepted by annotators, by score")
    # below the plot, so it never hides a point; the thresholds are the calibration's review=(lower, upper)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7.5, frameon=False)
    fig.tight_layout()
    return fig


def _target(report: Mapping[str, Any]) -> float:
    for v in report["model_versions"].values():
        return float(v["calibration"]["target_precision"])
    return 0.95


def review_report(
    url: str,
    api_key: str,
    project_id: int,
    *,
    plot: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Read every task of project ``project_id`` (with its predictions and annotations) and
    return :func:`report_from_tasks`' report; with ``plot`` also write the acceptance curve PNG
    there (its path is in ``report["plot"]``)."""
    from label_studio_sdk import LabelStudio

    from .project import api_error_message

    client = LabelStudio(base_url=url, api_key=api_key, timeout=60)
    try:
        tasks: list[Any] = list(client.tasks.list(project=project_id, fields="all"))
    except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
        raise AutoAnnotateError(
            f"cannot read the tasks of project {project_id} from {url}: {api_error_message(e)}"
        ) from None
    # the task list may leave out predictions or annotations: ask for those tasks one by one
    tasks = [
        client.tasks.get(id=sdk_field(t, "id"))
        if sdk_field(t, "annotations") is None or sdk_field(t, "predictions") is None
        else t
        for t in tasks
    ]
    report = report_from_tasks(tasks, **options)
    report["project"] = project_id
    if plot is not None:
        report["plot"] = str(plot_acceptance(report, plot))
    return report


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text: per model version and label, then the calibration."""
    lines = [f"project {report.get('project', '?')}: {report['reviewed_tasks']} of {report['tasks']} tasks annotated"]
    head = f"  {'label':<20}{'unchanged':>10}{'edited':>8}{'relabelled':>11}{'deleted':>8}{'added':>7}{'accepted':>9}{'edit IoU':>9}"
    for version, v in report["model_versions"].items():
        lines.append(f"model version {version}")
        lines.append(head)
        for name, c in [*v["by_label"].items(), ("(all)", v["total"])]:
            acc = "-" if c["acceptance_rate"] is None else f"{100 * c['acceptance_rate']:.0f}%"
            iou = "-" if c["mean_edit_iou"] is None else f"{c['mean_edit_iou']:.2f}"
            lines.append(
                f"  {name[:19]:<20}{c['unchanged']:>10}{c['edited']:>8}{c['relabelled']:>11}{c['deleted']:>8}"
                f"{c['added']:>7}{acc:>9}{iou:>9}"
            )
        cal = v["calibration"]
        lines.append(f"  calibration (target precision {cal['target_precision']:g}, {cal['bound']}):")
        for name, c in cal["classes"].items():
            if c["refused"]:
                lines.append(f"    {name}: refused ({c['refused']})")
            else:
                lines.append(
                    f"    {name}: review=({c['lower']:.3f}, {c['upper']:.3f}) precision "
                    f"{'-' if c['precision'] is None else format(c['precision'], '.3f')} over {c['support']} "
                    f"of {c['decisions']}{'' if c['target_reached'] else ' (target not reached)'}"
                )
        lines.extend("    " + line for line in held_out_lines(cal.get("held_out"), cal["target_precision"]))
    if any(not c["refused"] for v in report["model_versions"].values() for c in v["calibration"]["classes"].values()):
        lines += CALIBRATION_LEGEND
    if report.get("plot"):
        lines.append(f"acceptance curve: {report['plot']}")
    return "\n".join(lines)


#: What a calibration line of :func:`format_report` says.
CALIBRATION_LEGEND = [
    "review=(lower, upper): the thresholds a FiftyOne run takes as review=: a label scoring at least upper is",
    "  auto-approved, below lower it is discarded, in between it needs review.",
    "precision P over S of N: of the N scored predictions of that label in annotated tasks, S score at least",
    "  upper, and annotators accepted (kept unchanged or edited) the share P of those S.",
]
