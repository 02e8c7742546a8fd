"""Review decisions on auto labels: accept / reject (:func:`set_review`), promote approved labels,
split work among reviewers. Part of the review API (:mod:`autoannotate.fiftyone.review`)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from ..errors import BadParameterError
from .convert import label_list_attr

REVIEW_STATES = ("approved", "needs_review", "rejected")
REVIEWER_TAG_PREFIX = "review:"
#: Label attributes a reviewer's decision writes: who decided and when (UTC, ISO 8601).
REVIEWED_BY, REVIEWED_AT = "reviewed_by", "reviewed_at"


def list_field(dataset: fo.Dataset, field: str) -> str:
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
    attr = list_field(dataset, path)
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
            base = f"{path}.{list_field(dataset, path)}"
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
    attr = list_field(dataset, label_field)
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
    attr = list_field(samples._dataset, path)
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
