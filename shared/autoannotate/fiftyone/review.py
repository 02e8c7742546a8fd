"""Review of auto labels: accept / reject, promote approved labels, split work among reviewers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from ..errors import BadParameterError
from .convert import CONTAINER_TYPES

REVIEW_STATES = ("approved", "needs_review", "rejected")
REVIEWER_TAG_PREFIX = "review:"


def _list_field(dataset: fo.Dataset, field: str) -> str:
    """``field.detections`` (etc.) for a label-list field."""
    doc = getattr(dataset.get_field(field), "document_type", None)
    for cls, attr in CONTAINER_TYPES.values():
        if doc is cls:
            return attr
    raise BadParameterError(f"{field!r} is not a Detections/Polylines/Keypoints/Classifications field")


def set_review(dataset: fo.Dataset, selected_labels: Sequence[Mapping[str, Any]], status: str) -> int:
    """Set ``review`` on the labels selected in the App (``ctx.selected_labels`` items:
    ``label_id``, ``sample_id``, ``field``). Returns how many labels changed."""
    if status not in REVIEW_STATES:
        raise BadParameterError(f"review status must be one of {REVIEW_STATES}, got {status!r}")
    by_field: dict[str, list[dict]] = defaultdict(list)
    for s in selected_labels:
        if s.get("frame_number"):
            raise BadParameterError("video frame labels are not supported by review operators yet")
        by_field[s["field"]].append({"sample_id": s["sample_id"], "label_id": s["label_id"], "value": status})
    n = 0
    for field, values in by_field.items():
        attr = _list_field(dataset, field)
        dataset.set_label_values(f"{field}.{attr}.review", values)
        n += len(values)
    return n


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


def assign_reviewers(samples: Any, label_field: str, reviewers: Iterable[str]) -> dict[str, int]:
    """Split the samples with needs-review labels in ``label_field`` evenly among ``reviewers``:
    each gets a ``review:<name>`` tag; no sample is assigned twice (a new assignment replaces every
    earlier ``review:*`` tag on those samples). Returns ``{reviewer: number of samples}``."""
    names = [r.strip() for r in reviewers if r and r.strip()]
    if not names or len(set(names)) != len(names):
        raise BadParameterError(f"give one or more distinct reviewer names, got {list(reviewers)}")
    attr = _list_field(samples._dataset, label_field)
    pending = samples.match(F(f"{label_field}.{attr}").filter(F("review") == "needs_review").length() > 0)
    ids = sorted(pending.values("id"))
    tags = [REVIEWER_TAG_PREFIX + n for n in names]
    earlier = [t for t in pending.distinct("tags") if t.startswith(REVIEWER_TAG_PREFIX)]
    if earlier:
        pending.untag_samples(earlier)
    counts = {}
    for k, (name, tag) in enumerate(zip(names, tags)):
        mine = ids[k :: len(names)]
        if mine:
            samples._dataset.select(mine).tag_samples(tag)
        counts[name] = len(mine)
    return counts


def needs_review_view(samples: Any, label_field: str, run_key: str | None = None) -> Any:
    """The labels of ``label_field`` (of one run, if given) waiting for review."""
    expr = F("review") == "needs_review"
    if run_key:
        expr = expr & (F("autoannotate_run") == run_key)
    return samples.filter_labels(label_field, expr)
