"""Review progress and order: :func:`review_summary` (per run, class and reviewer),
:func:`review_priority` and :func:`needs_review_view` (what to review first), and
:func:`label_rows`, the labels of a field as rows (shared with calibration and the panel). Part of
the review API (:mod:`autoannotate.fiftyone.review`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from fiftyone import ViewField as F

from ..errors import BadParameterError
from .convert import RUN_ATTRIBUTE
from .decisions import REVIEWED_AT, REVIEWED_BY, REVIEWER_TAG_PREFIX, label_path, list_field

#: What :func:`review_summary` counts per run, class and reviewer.
SUMMARY_COUNTS = ("approved_auto", "approved_human", "rejected", "needs_review", "unrouted", "discarded")
#: Review orders of :func:`needs_review_view`.
ORDERS = ("uncertainty",)
_ATTRS = ("id", "label", "confidence", "review", RUN_ATTRIBUTE, REVIEWED_BY, REVIEWED_AT)


def label_score(value: Any) -> float | None:
    """A label's confidence (the highest point confidence of a keypoint); None without one."""
    if isinstance(value, (list, tuple)):
        vals = [float(v) for v in value if v is not None and v == v]
        return max(vals) if vals else None
    return None if value is None else float(value)


def label_rows(samples: Any, path: str, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One dict per label of ``path`` in ``samples`` (frame labels of videos too): ``sample_id``,
    ``tags``, ``id``, ``label``, ``confidence`` (a float or None), ``review``, ``run``,
    ``reviewed_by``, ``reviewed_at`` and the ``extra`` attributes."""
    attr = list_field(samples._dataset, path)
    names = [*_ATTRS, *extra]
    vals = samples.values(["id", "tags", *[f"{path}.{attr}.{a}" for a in names]])
    sids, tags, cols = vals[0], vals[1], vals[2:]
    rows: list[dict[str, Any]] = []
    frames = path.startswith("frames.")
    for i, sid in enumerate(sids):
        per_sample = [c[i] for c in cols]
        groups = zip(*[p or [] for p in per_sample]) if frames else [per_sample]
        for group in groups:
            for values in zip(*[g or [] for g in group]):
                row = dict(zip(names, values))
                row["run"] = row.pop(RUN_ATTRIBUTE)
                row["confidence"] = label_score(row["confidence"])
                row["sample_id"], row["tags"] = sid, tags[i] or []
                rows.append(row)
    return rows


def _category(row: Mapping[str, Any]) -> str:
    review = row.get("review")
    if review == "approved":
        return "approved_human" if row.get(REVIEWED_BY) else "approved_auto"
    if review in ("rejected", "needs_review"):
        return review
    return "unrouted"


def _finish(counts: Mapping[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(counts.get(k, 0)) for k in SUMMARY_COUNTS}
    out["labels"] = sum(out[k] for k in SUMMARY_COUNTS if k != "discarded")
    reviewed = out["approved_human"] + out["rejected"]
    out["reviewed"] = reviewed
    to_review = reviewed + out["needs_review"]
    out["reviewed_share"] = reviewed / to_review if to_review else None
    out["acceptance_rate"] = out["approved_human"] / reviewed if reviewed else None
    return out


def review_summary(samples: Any, label_field: str) -> dict[str, Any]:
    """Review progress of ``label_field``: per run, per class and per reviewer, and in total.

    Each entry counts labels ``approved_auto`` (by the routing), ``approved_human`` (by a
    reviewer: they carry ``reviewed_by``), ``rejected``, ``needs_review``, ``unrouted`` (no
    review status: human labels, runs without routing) and ``discarded`` (labels a run did not
    store, from the run records: per run and in total only, for the whole run), plus ``labels``,
    ``reviewed`` (approved by a person + rejected), ``reviewed_share`` (reviewed out of reviewed +
    needs review; None when nothing needed review) and ``acceptance_rate`` (approved out of
    reviewed). Per reviewer: their decisions, and the needs-review labels of the samples assigned
    to them (``review:<name>`` tags, :func:`assign_reviewers`).

    Returns ``{"field", "total", "by_run", "by_class", "by_reviewer"}``."""
    from .runs import list_runs

    path = label_path(samples, label_field)
    rows = label_rows(samples, path)
    total: dict[str, int] = defaultdict(int)
    by: dict[str, dict[str, dict[str, int]]] = {"run": {}, "class": {}, "reviewer": {}}

    def add(kind: str, key: str, cat: str) -> None:
        by[kind].setdefault(key, defaultdict(int))[cat] += 1

    for r in rows:
        cat = _category(r)
        total[cat] += 1
        add("run", r["run"] or "(none)", cat)
        add("class", str(r["label"]), cat)
        if cat in ("approved_human", "rejected"):
            add("reviewer", str(r[REVIEWED_BY]), cat)
        if cat == "needs_review":
            for t in r["tags"]:
                if t.startswith(REVIEWER_TAG_PREFIX):
                    add("reviewer", t[len(REVIEWER_TAG_PREFIX) :], cat)
    field_name = path[len("frames.") :] if path.startswith("frames.") else path
    for rec in list_runs(samples._dataset):
        if rec.get("kind") == "sharded":  # its report combines its shard runs', counted with them
            continue
        fields = [f.removeprefix("frames.") for f in rec.get("label_fields") or []]
        if field_name not in fields and rec.get("run_key") not in by["run"]:
            continue
        discarded = int((rec.get("report") or {}).get("discarded") or 0)
        if discarded:
            by["run"].setdefault(rec["run_key"], defaultdict(int))["discarded"] += discarded
            total["discarded"] += discarded
    return {
        "field": path,
        "total": _finish(total),
        **{f"by_{kind}": {k: _finish(v) for k, v in sorted(groups.items())} for kind, groups in by.items()},
    }


def _run_thresholds(dataset: Any) -> dict[str, dict[str, tuple[float, float]]]:
    """``{run_key: {class: (lower, upper)}}`` from the run records."""
    from .runs import list_runs

    out: dict[str, dict[str, tuple[float, float]]] = {}
    for rec in list_runs(dataset):
        review = rec.get("review") or (rec.get("config") or {}).get("review") or {}
        out[str(rec.get("run_key"))] = {k: (float(v[0]), float(v[1])) for k, v in review.items()}
    return out


def _box(row: Mapping[str, Any]) -> list[float] | None:
    b = row.get("bounding_box")
    return None if not b else [b[0], b[1], b[0] + b[2], b[1] + b[3]]


def _agreement(a: list[dict[str, Any]], b: list[dict[str, Any]], iou: float) -> int:
    """Labels of ``a`` and ``b`` that match one to one: same class and, for boxes, IoU >= iou."""
    import numpy as np

    from ..masks import box_iou

    matched = 0
    for name in {r["label"] for r in a} & {r["label"] for r in b}:
        xa = [r for r in a if r["label"] == name]
        xb = [r for r in b if r["label"] == name]
        ba, bb = [_box(r) for r in xa], [_box(r) for r in xb]
        if any(x is None for x in ba + bb):
            matched += min(len(xa), len(xb))
            continue
        m = box_iou(np.asarray(ba, dtype=float), np.asarray(bb, dtype=float))
        while m.size and m.max() >= iou:
            i, j = np.unravel_index(int(m.argmax()), m.shape)
            matched += 1
            m[i, :] = -1
            m[:, j] = -1
    return matched


def expanded_keys(samples: Any, run_key: str | None) -> list[str]:
    """The run keys the labels of run ``run_key`` carry (a sharded run's: its shard runs')."""
    from .runs import expand_run_key

    return expand_run_key(samples._dataset, run_key) if run_key else []


def review_priority(
    samples: Any,
    label_field: str,
    *,
    run_key: str | None = None,
    thresholds: Any = None,
    iou: float = 0.5,
) -> list[dict[str, Any]]:
    """The samples with needs-review labels in ``label_field``, most uncertain first:
    ``[{"sample_id", "disagreement", "distance", "labels"}]``.

    ``distance``: the smallest distance of a needs-review label's confidence to its class's
    review thresholds (those of ``thresholds``, ``(lower, upper)`` or ``{class: ...}``, else of
    the run that made it, else 0.5); a label without confidence counts as distance 0.
    ``disagreement``: where two or more runs labelled the sample in this field, the share of
    their labels the runs do not agree on (same class and box IoU >= ``iou``), averaged over
    pairs of runs; 0 otherwise. Order: disagreement (highest first), then distance (lowest).
    ``run_key`` of a sharded run stands for its shard runs (whose keys its labels carry)."""
    from ..routing import parse_review

    path = label_path(samples, label_field)
    attr = list_field(samples._dataset, path)
    rows = label_rows(samples, path, extra=("bounding_box",) if attr == "detections" else ())
    given = parse_review(thresholds)
    per_run = _run_thresholds(samples._dataset)
    run_keys = set(expanded_keys(samples, run_key))

    def bounds(row: Mapping[str, Any]) -> tuple[float, ...]:
        if given is not None:
            t = given if not isinstance(given, dict) else given.get(row["label"]) or given.get("*")
            if t is not None:
                return (t.lower, t.upper)
        run = per_run.get(row["run"]) or {}
        t2 = run.get(row["label"]) or run.get("*")
        return t2 if t2 else (0.5,)

    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_sample[r["sample_id"]].append(r)
    out = []
    for sid, labels in by_sample.items():
        pending = [r for r in labels if r["review"] == "needs_review" and (not run_key or r["run"] in run_keys)]
        if not pending:
            continue
        distance = min(
            0.0 if r["confidence"] is None else min(abs(r["confidence"] - t) for t in bounds(r)) for r in pending
        )
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in labels:
            if r["run"]:
                runs[r["run"]].append(r)
        keys = sorted(runs)
        shares = []
        for i, ka in enumerate(keys):
            for kb in keys[i + 1 :]:
                n = len(runs[ka]) + len(runs[kb])
                shares.append(1 - 2 * _agreement(runs[ka], runs[kb], iou) / n if n else 0.0)
        disagreement = sum(shares) / len(shares) if shares else 0.0
        out.append({"sample_id": sid, "disagreement": disagreement, "distance": distance, "labels": len(pending)})
    out.sort(key=lambda d: (-float(d["disagreement"]), float(d["distance"]), str(d["sample_id"])))
    return out


def needs_review_view(
    samples: Any,
    label_field: str,
    run_key: str | None = None,
    *,
    order: str | None = None,
    thresholds: Any = None,
) -> Any:
    """The labels of ``label_field`` (of one run, if given) waiting for review; on video
    collections ``label_field`` may name a frame field with or without ``frames.``.

    ``order="uncertainty"``: samples sorted by :func:`review_priority` (runs that disagree
    first, then the labels whose confidence is nearest the review thresholds). ``run_key`` of a
    sharded run selects the labels of its shard runs."""
    expr = F("review") == "needs_review"
    if run_key:
        expr = expr & F(RUN_ATTRIBUTE).is_in(expanded_keys(samples, run_key))
    view = samples.filter_labels(label_path(samples, label_field), expr)
    if order is None:
        return view
    if order not in ORDERS:
        raise BadParameterError(f"order must be one of {ORDERS} or None, got {order!r}")
    ranked = review_priority(samples, label_field, run_key=run_key, thresholds=thresholds)
    return view.select([d["sample_id"] for d in ranked], ordered=True)
