"""The review API of auto labels, in three rooms:

- :mod:`~autoannotate.fiftyone.decisions`: accept / reject (:func:`set_review`), promote approved
  labels, split work among reviewers;
- :mod:`~autoannotate.fiftyone.summary`: review progress (:func:`review_summary`) and order
  (:func:`review_priority`, :func:`needs_review_view`);
- :mod:`~autoannotate.fiftyone.calibration`: thresholds learned from decisions
  (:func:`calibrate_review`) and where they are kept (:func:`save_calibration`, ...).
"""

from __future__ import annotations

from .calibration import (
    CALIBRATION_INFO_KEY,
    SavedReview,
    apply_calibration,
    calibrate_review,
    review_decisions,
    save_calibration,
    saved_calibration,
    saved_calibrations,
)
from .decisions import (
    BALANCE,
    REVIEW_STATES,
    REVIEWED_AT,
    REVIEWED_BY,
    REVIEWER_TAG_PREFIX,
    ReviewResult,
    assign_reviewers,
    default_reviewer,
    label_path,
    promote_approved,
    review_workload,
    set_review,
)
from .summary import ORDERS, SUMMARY_COUNTS, label_rows, needs_review_view, review_priority, review_summary

__all__ = [
    "REVIEW_STATES",
    "REVIEWER_TAG_PREFIX",
    "REVIEWED_BY",
    "REVIEWED_AT",
    "BALANCE",
    "ReviewResult",
    "label_path",
    "default_reviewer",
    "set_review",
    "promote_approved",
    "assign_reviewers",
    "review_workload",
    "SUMMARY_COUNTS",
    "ORDERS",
    "label_rows",
    "review_summary",
    "review_priority",
    "needs_review_view",
    "CALIBRATION_INFO_KEY",
    "review_decisions",
    "calibrate_review",
    "save_calibration",
    "SavedReview",
    "saved_calibrations",
    "saved_calibration",
    "apply_calibration",
]
