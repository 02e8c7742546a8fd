"""Review of auto labels: accept / reject, promote approved labels, split work among reviewers."""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from ..errors import BadParameterError
from .convert import RUN_ATTRIBUTE, label_list_attr

REVIEW_STATES = ("approved", "needs_review", "rejected")
REVIEWER_TAG_PREFIX = "review:"
#: Label attributes a reviewer's decision writes: who decided and when (UTC, ISO 8601).
REVIEWED_BY, REVIEWED_AT = "reviewed_by", "reviewed_at"


def _list_field(dataset: fo.Dataset, field: str) -> str:
    """``field.detections`` (etc.) for a label-list field (``frames.<name>`` for frame fields)."""
    attr = label_list_attr(dataset, field)
    if attr is None:
        raise BadParameterError(f"{field!r} is not a Detections/Polylines/Keypoints/Classifications field")
    return attr


def label_path(samples: Any, label_field: str) -> str:
    """``label_field`` as a path of ``samples``: a frame field of a video collection may be named
    with or without its ``frames.`` prefix (the App names it with it)."""
    if label_field.startswith("frames.") or samples.media_type != "video":
        return label_field
    if samples._dataset.get_field(label_field) is None and label_field in (samples.get_frame_field_schema() or {}):
        return f"frames.{label_field}"
    return label_field


@dataclasses.dataclass(frozen=True)
class ReviewResult:
    """What :func:`set_review` did.

    - ``changed``: labels whose ``review`` was set to the new status;
    - ``unchanged``: labels found that had that status already;
    - ``unknown``: the selected labels that do not exist (deleted, another dataset, a wrong id),
      as given (``label_id``, ``sample_id``, ``field``, ``frame_number``).
    """

    changed: int
    unchanged: int = 0
    unknown: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "unchanged": self.unchanged, "unknown": self.unknown}

    def __repr__(self) -> str:
        return f"ReviewResult(changed={self.changed}, unchanged={self.unchanged}, unknown={len(self.unknown)})"


def _current_reviews(dataset: fo.Dataset, path: str, sample_ids: list[str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """``{(sample_id, label_id): (sample or frame id, current review)}`` of the labels in ``path``
    (``field`` or ``frames.field``) of those samples."""
    attr = _list_field(dataset, path)
    view = dataset.select(sample_ids)
    out: dict[tuple[str, str], tuple[str, Any]] = {}
    if path.startswith("frames."):
        sids, fids, lids, reviews = view.values(["id", "frames.id", f"{path}.{attr}.id", f"{path}.{attr}.review"])
        for sid, frame_ids, per_frame_ids, per_frame_reviews in zip(sids, fids, lids, reviews):
            for fid, ls, rs in zip(frame_ids or [], per_frame_ids or [], per_frame_reviews or []):
                for lid, r in zip(ls or [], rs or []):
                    out[(sid, lid)] = (fid, r)
    else:
        sids, lids, reviews = view.values(["id", f"{path}.{attr}.id", f"{path}.{attr}.review"])
        for sid, ls, rs in zip(sids, lids, reviews):
            for lid, r in zip(ls or [], rs or []):
                out[(sid, lid)] = (sid, r)
    return out


def default_reviewer() -> str:
    """Who decides when no reviewer is named: ``AUTOANNOTATE_REVIEWER``, else the login name."""
    import getpass

    from ..settings import reviewer

    try:
        return reviewer() or getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def set_review(
    dataset: fo.Dataset, selected_labels: Sequence[Mapping[str, Any]], status: str, *, reviewer: str | None = None
) -> ReviewResult:
    """Set ``review`` on the labels selected in the App (``ctx.selected_labels`` items:
    ``label_id``, ``sample_id``, ``field`` and, for video frame labels, ``frame_number``; the
    field may be given as ``frames.<name>`` or ``<name>``).

    Every label changed to ``approved`` or ``rejected`` also records who decided and when:
    ``reviewed_by`` (``reviewer``, default :func:`default_reviewer`) and ``reviewed_at`` (UTC,
    ISO 8601); an ``approved`` label with ``reviewed_by`` was approved by a person, one without it
    by the routing. Setting a label back to ``needs_review`` clears both: it is undecided again.

    Only labels that exist and had another status are written and counted as ``changed``; ids
    that match no label are returned in ``unknown``, never counted. Returns a
    :class:`ReviewResult`."""
    from bson import ObjectId

    who = (reviewer or "").strip() or default_reviewer()
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")

    if status not in REVIEW_STATES:
        raise BadParameterError(f"review status must be one of {REVIEW_STATES}, got {status!r}")
    by_path: dict[str, list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
    unknown: list[tuple[int, dict[str, Any]]] = []
    for i, s in enumerate(selected_labels):
        field = str(s.get("field") or "")
        if s.get("frame_number") and dataset.media_type == "video" and not field.startswith("frames."):
            field = f"frames.{field}"
        if not ObjectId.is_valid(str(s.get("sample_id"))) or not field:
            unknown.append((i, dict(s)))
            continue
        by_path[field].append((i, s))
    changed = unchanged = 0
    for path, items in by_path.items():
        current = _current_reviews(dataset, path, sorted({str(s["sample_id"]) for _, s in items}))
        id_key = "frame_id" if path.startswith("frames.") else "sample_id"
        values, seen = [], set()
        for i, s in items:
            key = (str(s["sample_id"]), str(s["label_id"]))
            if key not in current:
                unknown.append((i, dict(s)))
            elif key in seen:
                continue
            elif current[key][1] == status:
                unchanged += 1
            else:
                values.append({id_key: current[key][0], "label_id": key[1], "value": status})
            seen.add(key)
        if values:
            base = f"{path}.{_list_field(dataset, path)}"
            dataset.set_label_values(f"{base}.review", values)
            decided = status != "needs_review"
            dataset.set_label_values(f"{base}.{REVIEWED_BY}", [dict(v, value=who if decided else None) for v in values])
            dataset.set_label_values(
                f"{base}.{REVIEWED_AT}", [dict(v, value=when if decided else None) for v in values]
            )
            changed += len(values)
    return ReviewResult(changed, unchanged, [s for _, s in sorted(unknown, key=lambda u: u[0])])


def promote_approved(samples: Any, label_field: str, gt_field: str = "ground_truth") -> int:
    """Copy the approved labels of ``label_field`` into ``gt_field``, appending to what is there.

    Human labels already in ``gt_field`` are kept; each copy records ``promoted_from`` (the auto
    label's id), so a label promoted before is not added twice. Returns how many labels were added.
    """
    dataset = samples._dataset
    if gt_field == label_field:
        raise BadParameterError("gt_field must differ from label_field")
    attr = _list_field(dataset, label_field)
    gt = dataset.get_field(gt_field)
    if gt is not None and getattr(gt, "document_type", None) is not dataset.get_field(label_field).document_type:
        raise BadParameterError(f"{gt_field!r} holds another label type than {label_field!r}")
    cls = dataset.get_field(label_field).document_type
    approved = samples.filter_labels(label_field, F("review") == "approved")
    values = approved.values(["id", label_field] + ([gt_field] if gt is not None else []))
    ids, auto = values[0], values[1]
    existing = values[2] if gt is not None else [None] * len(ids)
    updates, added = {}, 0
    for sid, container, current in zip(ids, auto, existing):
        have = {getattr(lbl, "promoted_from", None) for lbl in getattr(current, attr, None) or []}
        new = []
        for lbl in getattr(container, attr):
            if lbl.id not in have:
                promoted = lbl.copy()
                promoted["promoted_from"] = lbl.id
                new.append(promoted)
        if not new:
            continue
        merged = list(getattr(current, attr, None) or []) + new
        updates[sid] = cls(**{attr: merged})
        added += len(new)
    if updates:
        dataset.set_values(gt_field, updates, key_field="id")
    return added


#: How :func:`assign_reviewers` splits the work: equal numbers of samples (default) or of labels.
BALANCE = ("samples", "labels")


def _pending_labels(samples: Any, path: str) -> dict[str, int]:
    """``{sample_id: number of needs-review labels in path}`` for samples with at least one."""
    attr = _list_field(samples._dataset, path)
    ids, reviews = samples.values(["id", f"{path}.{attr}.review"])
    out = {}
    for sid, rs in zip(ids, reviews):
        per_frame = rs if path.startswith("frames.") else [rs]
        n = sum(1 for frame in per_frame or [] for r in frame or [] if r == "needs_review")
        if n:
            out[sid] = n
    return out


def assign_reviewers(
    samples: Any, label_field: str, reviewers: Iterable[str], *, balance: str = "samples"
) -> dict[str, int]:
    """Split the samples with needs-review labels in ``label_field`` (a frame field of videos, too)
    among ``reviewers``: each sample gets one ``review:<name>`` tag; no sample is assigned twice (a
    new assignment replaces every earlier ``review:*`` tag on those samples). Returns
    ``{reviewer: number of samples}`` (:func:`review_workload` also counts their labels).

    ``balance="samples"`` (the default, as before: every reviewer opens the same number of
    samples, within one, in sample-id order) or ``"labels"``: samples go, largest first, to the
    reviewer with the fewest needs-review labels so far, so label workloads differ by at most the
    largest single sample's labels.
    """
    names = [r.strip() for r in reviewers if r and r.strip()]
    if not names or len(set(names)) != len(names):
        raise BadParameterError(f"give one or more distinct reviewer names, got {list(reviewers)}")
    if balance not in BALANCE:
        raise BadParameterError(f"balance must be one of {BALANCE}, got {balance!r}")
    path = label_path(samples, label_field)
    pending_counts = _pending_labels(samples, path)
    ids = sorted(pending_counts)
    pending = samples._dataset.select(ids)
    tags = [REVIEWER_TAG_PREFIX + n for n in names]
    earlier = [t for t in pending.distinct("tags") if t.startswith(REVIEWER_TAG_PREFIX)]
    if earlier:
        pending.untag_samples(earlier)
    if balance == "samples":
        groups = [ids[k :: len(names)] for k in range(len(names))]
    else:
        groups = [[] for _ in names]
        load = [0] * len(names)
        for sid in sorted(ids, key=lambda i: (-pending_counts[i], i)):
            k = min(range(len(names)), key=lambda j: (load[j], len(groups[j]), j))
            groups[k].append(sid)
            load[k] += pending_counts[sid]
    counts = {}
    for name, tag, mine in zip(names, tags, groups):
        if mine:
            samples._dataset.select(mine).tag_samples(tag)
        counts[name] = len(mine)
    return counts


def review_workload(samples: Any, label_field: str) -> dict[str, dict[str, int]]:
    """``{reviewer: {"samples": n, "labels": m}}``: the samples tagged ``review:<name>`` and their
    needs-review labels in ``label_field``, per reviewer."""
    path = label_path(samples, label_field)
    pending = _pending_labels(samples, path)
    ids, tags = samples.values(["id", "tags"])
    out: dict[str, dict[str, int]] = {}
    for sid, ts in zip(ids, tags):
        for t in ts or []:
            if t.startswith(REVIEWER_TAG_PREFIX):
                w = out.setdefault(t[len(REVIEWER_TAG_PREFIX) :], {"samples": 0, "labels": 0})
                w["samples"] += 1
                w["labels"] += pending.get(sid, 0)
    return out


# -- review progress, review order, thresholds from decisions --------------------------------------

#: What :func:`review_summary` counts per run, class and reviewer.
SUMMARY_COUNTS = ("approved_auto", "approved_human", "rejected", "needs_review", "unrouted", "discarded")
#: Review orders of :func:`needs_review_view`.
ORDERS = ("uncertainty",)
#: Where :func:`save_calibration` keeps calibrated thresholds: ``dataset.info[CALIBRATION_INFO_KEY][field]``.
CALIBRATION_INFO_KEY = "autoannotate_calibrations"
_ATTRS = ("id", "label", "confidence", "review", RUN_ATTRIBUTE, REVIEWED_BY, REVIEWED_AT)


def _score(value: Any) -> float | None:
    """A label's confidence (the highest point confidence of a keypoint); None without one."""
    if isinstance(value, (list, tuple)):
        vals = [float(v) for v in value if v is not None and v == v]
        return max(vals) if vals else None
    return None if value is None else float(value)


def label_rows(samples: Any, path: str, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One dict per label of ``path`` in ``samples`` (frame labels of videos too): ``sample_id``,
    ``tags``, ``id``, ``label``, ``confidence`` (a float or None), ``review``, ``run``,
    ``reviewed_by``, ``reviewed_at`` and the ``extra`` attributes."""
    attr = _list_field(samples._dataset, path)
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
                row["confidence"] = _score(row["confidence"])
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


def _run_keys(samples: Any, run_key: str | None) -> list[str]:
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
    attr = _list_field(samples._dataset, path)
    rows = label_rows(samples, path, extra=("bounding_box",) if attr == "detections" else ())
    given = parse_review(thresholds)
    per_run = _run_thresholds(samples._dataset)
    run_keys = set(_run_keys(samples, run_key))

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
        expr = expr & F(RUN_ATTRIBUTE).is_in(_run_keys(samples, run_key))
    view = samples.filter_labels(label_path(samples, label_field), expr)
    if order is None:
        return view
    if order not in ORDERS:
        raise BadParameterError(f"order must be one of {ORDERS} or None, got {order!r}")
    ranked = review_priority(samples, label_field, run_key=run_key, thresholds=thresholds)
    return view.select([d["sample_id"] for d in ranked], ordered=True)


def review_decisions(
    samples: Any, label_field: str, *, source: str = "review", iou: float = 0.5, run_key: str | None = None
) -> tuple[dict[str, list[tuple[float | None, bool]]], dict[str, list[float | None]]]:
    """``({class: [(confidence, correct)]}, {class: [confidence of every label]})`` for
    :func:`calibrate_review`.

    ``source="review"``: the reviewers' decisions (labels with ``reviewed_by``: approved is
    correct, rejected is not). Any other ``source`` names a ground-truth field: every label is
    decided by FiftyOne's detection evaluation against it (a true positive at IoU ``iou``, same
    class, is correct), run under a temporary evaluation key that is deleted afterwards."""
    decisions: dict[str, list[tuple[float | None, bool]]] = defaultdict(list)
    scores: dict[str, list[float | None]] = defaultdict(list)
    for name, _, score, correct in _decision_rows(samples, label_field, source=source, iou=iou, run_key=run_key):
        scores[name].append(score)
        if correct is not None:
            decisions[name].append((score, correct))
    return dict(decisions), dict(scores)


def _decision_rows(
    samples: Any, label_field: str, *, source: str, iou: float, run_key: str | None
) -> list[tuple[str, str, float | None, bool | None]]:
    """``(class, sample id, confidence, correct or None when undecided)`` per label (see
    :func:`review_decisions`)."""
    path = label_path(samples, label_field)
    if run_key:  # a sharded run's labels carry its shard runs' keys
        samples = samples.filter_labels(path, F(RUN_ATTRIBUTE).is_in(_run_keys(samples, run_key)))
    if source == "review":
        return [
            (
                r["label"],
                r["sample_id"],
                r["confidence"],
                r["review"] == "approved" if r.get(REVIEWED_BY) and r["review"] in ("approved", "rejected") else None,
            )
            for r in label_rows(samples, path)
        ]
    import uuid

    dataset = samples._dataset
    gt = label_path(samples, source)
    if gt == path:
        raise BadParameterError("the ground-truth field must differ from label_field")
    if label_list_attr(dataset, gt) not in ("detections", "polylines"):
        raise BadParameterError(f"source must be 'review' or a Detections/Polylines ground-truth field, got {source!r}")
    key = f"aa_calibrate_{uuid.uuid4().hex[:8]}"
    samples.evaluate_detections(path, gt_field=gt, eval_key=key, iou=iou, classwise=True, progress=False)
    try:
        return [
            (r["label"], r["sample_id"], r["confidence"], r[key] == "tp")
            for r in label_rows(samples, path, extra=(key,))
        ]
    finally:
        dataset.delete_evaluation(key)


def calibrate_review(
    samples: Any,
    label_field: str,
    target_precision: float = 0.95,
    *,
    source: str = "review",
    iou: float = 0.5,
    run_key: str | None = None,
    min_decisions: int | None = None,
    bound: str | None = None,
    confidence: float = 0.95,
    fallback: tuple[float, float] | None = None,
    holdout: float = 0.0,
    min_support: int | None = None,
) -> Any:
    """Review thresholds per class learned from decisions (:func:`autoannotate.calibrate.calibrate`):
    the result maps ``{class: (lower, upper)}`` (plus ``"*": fallback``) and is the ``review=``
    argument of the next run; ``to_dict()`` / ``summary()`` give per class the count it rests on,
    the precision at ``upper`` with its Wilson interval, refusals (fewer than ``min_decisions``
    decisions, default 30) and the share of labels that would be auto-approved. ``bound``:
    ``"wilson"`` (default: the lower end of the Wilson interval reaches the target) or
    ``"estimate"``; ``min_support``: decided labels ``upper`` rests on (default 10).

    ``holdout``: share of the samples (0 to below 1, by a stable hash of their file name, so the
    same photos in every dataset and process) whose decisions are kept out of the thresholds; the result's ``held_out`` (also in ``to_dict()``
    and ``summary()``) states the precision the thresholds reach on them.

    ``source``: ``"review"`` (reviewers' decisions) or a ground-truth field name (see
    :func:`review_decisions`)."""
    from ..calibrate import DEFAULT_BOUND, DEFAULT_MIN_DECISIONS, DEFAULT_MIN_SUPPORT, calibrate, holds_out

    holds_out("", holdout)  # checks the share before any work
    rows = _decision_rows(samples, label_field, source=source, iou=iou, run_key=run_key)
    decisions: dict[str, list[tuple[float | None, bool]]] = defaultdict(list)
    held: dict[str, list[tuple[float | None, bool]]] = defaultdict(list)
    scores: dict[str, list[float | None]] = defaultdict(list)
    names = dict(zip(*samples.values(["id", "filepath"])))
    groups: dict[str, list[str]] = defaultdict(list)  # the photo of each decision: its labels go together
    for name, sid, score, correct in rows:
        scores[name].append(score)
        if correct is not None:
            photo = os.path.basename(names.get(sid) or sid)
            if holdout and holds_out(photo, holdout):
                held[name].append((score, correct))
            else:
                decisions[name].append((score, correct))
                groups[name].append(sid)
    return calibrate(
        dict(decisions),
        target_precision,
        scores=dict(scores),
        min_decisions=DEFAULT_MIN_DECISIONS if min_decisions is None else min_decisions,
        bound=DEFAULT_BOUND if bound is None else bound,
        confidence=confidence,
        fallback=fallback,
        source=source if source == "review" else f"ground truth {source!r}",
        min_support=DEFAULT_MIN_SUPPORT if min_support is None else min_support,
        held_out=dict(held) if holdout else None,
        groups=dict(groups),
        held_out_note=f"{holdout:.0%} of the samples, chosen by a hash of their file name" if holdout else "",
    )


def save_calibration(dataset: Any, label_field: str, calibration: Any) -> None:
    """Keep ``calibration``'s thresholds on the dataset (``dataset.info``), for
    :func:`saved_calibration` and the next run's ``review=``."""
    dataset.reload()
    info = dict(dataset.info or {})
    saved = dict(info.get(CALIBRATION_INFO_KEY) or {})
    saved[label_field] = {
        "review": {k: list(v) for k, v in _calibrated(calibration).items()},
        "target_precision": calibration.target_precision,
        "source": calibration.source,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    info[CALIBRATION_INFO_KEY] = saved
    dataset.info = info
    dataset.save()


class SavedReview(dict):
    """Saved review thresholds ``{class: (lower, upper)}``; as a run's ``review=``, classes the run
    does not have are ignored and the rest route with ``"*"`` (the package's default review
    thresholds when the saved calibration has none)."""

    def review(self, classes: Iterable[str]) -> dict[str, tuple[float, float]]:
        from ..calibrate import DEFAULT_FALLBACK

        keep = set(classes)
        return {"*": DEFAULT_FALLBACK, **{k: v for k, v in self.items() if k in keep or k == "*"}}


def saved_calibrations(dataset: Any) -> list[str]:
    """The label fields with thresholds kept by :func:`save_calibration`."""
    dataset.reload()
    return sorted((dataset.info or {}).get(CALIBRATION_INFO_KEY) or {})


def saved_calibration(dataset: Any, label_field: str) -> SavedReview | None:
    """The thresholds :func:`save_calibration` kept for ``label_field`` (a ``review=`` value,
    :class:`SavedReview`), or None."""
    dataset.reload()
    entry = ((dataset.info or {}).get(CALIBRATION_INFO_KEY) or {}).get(label_field)
    return SavedReview({k: (float(v[0]), float(v[1])) for k, v in entry["review"].items()}) if entry else None


def _calibrated(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """``calibration``'s thresholds without a ``"*"`` that only stands for the package default
    (:func:`autoannotate.calibrate.calibrate` with no ``fallback``): that one routes the next run's
    other classes, it never approves labels of classes nothing was learned for."""
    out = dict(calibration)
    if (getattr(calibration, "extra", None) or {}).get("fallback_is_default"):
        out.pop("*", None)
    return out


def apply_calibration(samples: Any, label_field: str, calibration: Mapping[str, Any]) -> int:
    """Approve the needs-review labels of ``label_field`` that ``calibration`` (``{class: (lower,
    upper)}``, ``"*"`` for the rest) would auto-approve: ``review="approved"`` without
    ``reviewed_by`` / ``reviewed_at`` (approved by the routing: any earlier reviewer is cleared, so
    the approval never counts as a person's). Labels below ``lower`` are left for review (never
    deleted). Returns how many were approved."""
    from ..routing import parse_review

    parsed = parse_review(_calibrated(calibration))
    path = label_path(samples, label_field)
    attr = _list_field(samples._dataset, path)
    id_key = "frame_id" if path.startswith("frames.") else "sample_id"
    frames = path.startswith("frames.")
    values = []
    view = samples.filter_labels(path, F("review") == "needs_review")
    cols = view.values(
        [
            "id",
            *(["frames.id"] if frames else []),
            f"{path}.{attr}.id",
            f"{path}.{attr}.label",
            f"{path}.{attr}.confidence",
        ]
    )
    for i, sid in enumerate(cols[0]):
        groups = (
            zip(cols[1][i] or [], *[c[i] or [] for c in cols[2:]])
            if frames
            else [(sid, cols[1][i], cols[2][i], cols[3][i])]
        )
        for owner, ids, labels, confs in groups:
            for lid, name, conf in zip(ids or [], labels or [], confs or []):
                t = parsed if not isinstance(parsed, dict) else parsed.get(name) or parsed.get("*")
                score = _score(conf)
                if t is not None and score is not None and score >= t.upper:
                    values.append({id_key: owner, "label_id": lid, "value": "approved"})
    if values:
        base = f"{path}.{attr}"
        samples._dataset.set_label_values(f"{base}.review", values)
        for name in (REVIEWED_BY, REVIEWED_AT):
            samples._dataset.set_label_values(f"{base}.{name}", [dict(v, value=None) for v in values])
    return len(values)
