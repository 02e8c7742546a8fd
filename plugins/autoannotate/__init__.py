"""FiftyOne plugin of autoannotate: thin operators over ``autoannotate.fiftyone``.

Install the core with ``pip install "autoannotate[fiftyone,onnx]"`` and put the folder that
contains this plugin on ``FIFTYONE_PLUGINS_DIR`` (or ``fiftyone plugins create``/download it).

FiftyOne loads this file as a package (``fiftyone.yml`` names the operators, :func:`register`
registers them), so the rooms beside it are imported relatively:

- ``labelling.py``: ``auto_label``, ``auto_label_shard``, ``track_labels``; the auto-label form
  and its arguments in ``forms.py``;
- ``review.py``: accept / reject, promote, assign reviewers, uncertainty order, calibration, the
  review-progress panel;
- ``runs.py``: list, delete, clean up and re-queue runs;
- ``report.py``: the App's view of a run's report; ``common.py``: progress and label fields.

Every default comes from ``autoannotate.settings``.
"""

from __future__ import annotations

from .labelling import AutoLabel, AutoLabelShard, TrackLabels
from .review import (
    AcceptLabels,
    AssignReviewers,
    CalibrateReview,
    PromoteApproved,
    RejectLabels,
    ReviewProgressPanel,
    SortByReviewUncertainty,
)
from .runs import CleanupRuns, DeleteRun, ListRuns, RequeueRun


def register(p):
    for op in (
        ReviewProgressPanel,
        SortByReviewUncertainty,
        CalibrateReview,
        AutoLabel,
        AcceptLabels,
        RejectLabels,
        PromoteApproved,
        AssignReviewers,
        ListRuns,
        DeleteRun,
        CleanupRuns,
        TrackLabels,
        AutoLabelShard,
        RequeueRun,
    ):
        p.register(op)
