"""Review thresholds learned from decisions, and where they are kept: :func:`calibrate_review`
(from reviewers' decisions or a ground-truth field), :func:`save_calibration` /
:func:`saved_calibration` (``dataset.info``), :func:`apply_calibration` (approve what the
thresholds would). Part of the review API (:mod:`autoannotate.fiftyone.review`)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from fiftyone import ViewField as F

from ..errors import BadParameterError
from .convert import RUN_ATTRIBUTE, label_list_attr
from .decisions import REVIEWED_AT, REVIEWED_BY, label_path, list_field
from .summary import expanded_keys, label_rows, label_score

#: Where :func:`save_calibration` keeps calibrated thresholds: ``dataset.info[CALIBRATION_INFO_KEY][field]``.
CALIBRATION_INFO_KEY = "autoannotate_calibrations"


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
        samples = samples.filter_labels(path, F(RUN_ATTRIBUTE).is_in(expanded_keys(samples, run_key)))
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
    attr = list_field(samples._dataset, path)
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
                score = label_score(conf)
                if t is not None and score is not None and score >= t.upper:
                    values.append({id_key: owner, "label_id": lid, "value": "approved"})
    if values:
        base = f"{path}.{attr}"
        samples._dataset.set_label_values(f"{base}.review", values)
        for name in (REVIEWED_BY, REVIEWED_AT):
            samples._dataset.set_label_values(f"{base}.{name}", [dict(v, value=None) for v in values])
    return len(values)
