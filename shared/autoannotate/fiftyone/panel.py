"""What the plugin's "Review progress" panel shows, computed here so the panel stays thin.

:func:`panel_content` gives the panel its Markdown tables (review progress per run, class and
reviewer: :func:`~autoannotate.fiftyone.review.review_summary`) and a Plotly figure: the precision
of reviewed labels (approved by a person out of approved + rejected) against confidence, one line
per class, in confidence bins (:func:`autoannotate.calibrate.precision_by_confidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..calibrate import precision_by_confidence
from .convert import label_list_attr
from .decisions import REVIEWED_BY, label_path
from .summary import label_rows, review_summary

__all__ = ["review_fields", "summary_markdown", "precision_traces", "panel_content", "PLOT_LAYOUT"]

#: The panel plot's axes.
PLOT_LAYOUT = {
    "xaxis": {"title": {"text": "confidence"}, "range": [0, 1]},
    "yaxis": {"title": {"text": "precision of reviewed labels"}, "range": [0, 1.05]},
    "legend": {"x": 0.01, "y": 0.99, "bgcolor": "rgba(0,0,0,0)"},
    "showlegend": True,
    "margin": {"t": 30},
}


def review_fields(dataset: Any) -> list[str]:
    """Label-list fields of ``dataset`` that carry review statuses (``frames.<name>`` for video)."""
    schema = dict(dataset.get_field_schema() or {})
    paths = list(schema)
    if dataset.media_type == "video":
        paths += [f"frames.{k}" for k in dataset.get_frame_field_schema() or {}]
    out = []
    for p in paths:
        attr = label_list_attr(dataset, p)
        if attr and dataset.count(f"{p}.{attr}.review"):
            out.append(p)
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The review summary as Markdown tables (per run, per class, per reviewer, total)."""
    head = (
        "| {kind} | auto-approved | approved by reviewer | rejected | needs review | discarded | % reviewed "
        "| accepted |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    parts = []
    for kind, rows in (
        ("run", summary["by_run"]),
        ("class", summary["by_class"]),
        ("reviewer", summary["by_reviewer"]),
        ("all", {"total": summary["total"]}),
    ):
        if not rows:
            continue
        lines = [head.format(kind=kind)]
        for key, r in rows.items():
            lines.append(
                f"| {key} | {r['approved_auto']} | {r['approved_human']} | {r['rejected']} | {r['needs_review']} "
                f"| {r['discarded']} | {_pct(r['reviewed_share'])} | {_pct(r['acceptance_rate'])} |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def precision_traces(samples: Any, label_field: str, bins: int = 10) -> list[dict[str, Any]]:
    """Plotly scatter traces, one per class with reviewed labels: x the bin centre, y the
    precision of the labels reviewers decided in that bin, the hover text their count."""
    path = label_path(samples, label_field)
    by_class: dict[str, list[tuple[float | None, bool]]] = {}
    for r in label_rows(samples, path):
        if r.get(REVIEWED_BY) and r["review"] in ("approved", "rejected"):
            by_class.setdefault(str(r["label"]), []).append((r["confidence"], r["review"] == "approved"))
    traces = []
    for name, decisions in sorted(by_class.items()):
        rows = [b for b in precision_by_confidence(decisions, bins) if b["decisions"]]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{name} ({len(decisions)})",
                "x": [(b["lower"] + b["upper"]) / 2 for b in rows],
                "y": [b["precision"] for b in rows],
                "text": [f"{b['correct']}/{b['decisions']} accepted" for b in rows],
            }
        )
    return traces


def panel_content(samples: Any, label_field: str | None) -> dict[str, Any]:
    """``{"fields", "label_field", "markdown", "traces", "summary"}`` for the panel."""
    dataset = samples._dataset
    fields = review_fields(dataset)
    field = label_field if label_field in fields else (fields[0] if fields else None)
    if field is None:
        return {
            "fields": [],
            "label_field": None,
            "markdown": "No label field with review statuses yet: run *Auto-label with a model* with review thresholds.",
            "traces": [],
            "summary": None,
        }
    summary = review_summary(samples, field)
    return {
        "fields": fields,
        "label_field": field,
        "markdown": summary_markdown(summary),
        "traces": precision_traces(samples, field),
        "summary": summary,
    }
