"""What one run has stored in its label fields: the counts a resumed or requeued run reports.

A run that is killed and resumed (or a shard that is requeued) goes on under the same run key;
its report must count every label the run stored, not only this process's. The field is the
truth: :func:`stored_counts` counts the samples and labels that carry the run key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fiftyone import ViewField as F

from .convert import RUN_ATTRIBUTE, label_list_attr

__all__ = ["stored_counts"]


def stored_counts(samples: Any, fields: Sequence[str], run_key: str, *, frames: bool = False) -> dict[str, int]:
    """``{"items", "labels", "auto_approved", "needs_review"}`` of run ``run_key`` in ``fields``
    of ``samples`` (``frames``: frame fields of videos, named without ``frames.``): ``items``
    are the samples the run labelled (a container of the first field carries its key), the
    labels are counted in every field. A label approved without a reviewer was approved by the
    routing; any other routed label was sent to review (a reviewer may have decided it since)."""
    dataset = samples._dataset
    counts = {"items": 0, "labels": 0, "auto_approved": 0, "needs_review": 0}
    prefix = "frames." if frames else ""
    schema = dataset.get_frame_field_schema() if frames else dataset.get_field_schema()
    present = [f for f in fields if f in (schema or {})]
    if not present or fields[0] not in present:
        return counts
    mine = F(f"{fields[0]}.{RUN_ATTRIBUTE}") == run_key
    counts["items"] = (samples.match_frames(mine) if frames else samples.match(mine)).count()
    for field in present:
        path = prefix + field
        attr = label_list_attr(dataset, path)
        if attr is None:
            continue
        view = samples.filter_labels(path, F(RUN_ATTRIBUTE) == run_key, only_matches=True)
        reviews, reviewers = view.values([f"{path}.{attr}.review", f"{path}.{attr}.reviewed_by"], unwind=True)
        counts["labels"] += len(reviews)
        for review, who in zip(reviews, reviewers):
            if review == "approved" and not who:
                counts["auto_approved"] += 1
            elif review is not None:
                counts["needs_review"] += 1
    return counts
