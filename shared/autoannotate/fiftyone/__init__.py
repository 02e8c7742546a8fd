"""FiftyOne integration: auto-label datasets with review routing (the plugin's Python API).

Importing this package imports FiftyOne (``pip install autoannotate[fiftyone]``).
"""

from .admin import cleanup_runs, delete_run
from .annotate import annotate_dataset, annotate_video_dataset, default_refiner
from .classes import OUTPUT_TYPES, ClassSpec, ReviewThresholds, parse_classes
from .convert import RUN_ATTRIBUTE, shape_to_label
from .function_model import FunctionModel, as_model
from .models import ModelFunction, from_model
from .propagation import track_labels
from .review import (
    BALANCE,
    ReviewResult,
    apply_calibration,
    assign_reviewers,
    calibrate_review,
    needs_review_view,
    promote_approved,
    review_priority,
    review_summary,
    review_workload,
    save_calibration,
    saved_calibration,
    set_review,
)
from .runs import eval_key_for, get_run, list_runs, review_view_name

__all__ = [
    "annotate_dataset",
    "default_refiner",
    "ClassSpec",
    "ReviewThresholds",
    "OUTPUT_TYPES",
    "parse_classes",
    "RUN_ATTRIBUTE",
    "shape_to_label",
    "as_model",
    "from_model",
    "FunctionModel",
    "ModelFunction",
    "set_review",
    "review_summary",
    "review_priority",
    "calibrate_review",
    "save_calibration",
    "saved_calibration",
    "apply_calibration",
    "promote_approved",
    "assign_reviewers",
    "BALANCE",
    "review_workload",
    "ReviewResult",
    "needs_review_view",
    "list_runs",
    "get_run",
    "delete_run",
    "cleanup_runs",
    "eval_key_for",
    "review_view_name",
    "annotate_video_dataset",
    "track_labels",
]
