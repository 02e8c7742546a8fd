"""What every request handler of the ML backend shares: :class:`BadRequest`, the per-task
failure record, the empty prediction and the task's data reference (image or video URL)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import AutoAnnotateError
from ..interface import DetectionFunction, TrackingFunction, model_version
from .config import Control

log = logging.getLogger(__name__)


class BadRequest(AutoAnnotateError):
    """The request is malformed (the message says what is wrong)."""


def failure(message: str) -> dict:
    """The prediction of a task that failed: ``error`` and ``error_id``, no ``result`` (Label Studio
    then stores nothing for the task, so it can be retried). The message is logged under the id."""
    error_id = uuid.uuid4().hex[:12]
    log.warning("task failed [%s]: %s", error_id, message)
    return {"error": message, "error_id": error_id}


def empty_prediction(model_version: str) -> dict:
    """A prediction with no regions."""
    return {"result": [], "score": 0.0, "model_version": model_version}


NOTHING_FOUND = (
    "nothing found; no prediction stored, so 'Retrieve predictions' tries this task again "
    "(AUTOANNOTATE_EMPTY_PREDICTIONS=true stores empty predictions instead)"
)


def nothing_found(model_version: str) -> dict:
    """The answer for a task where the model found nothing and empty predictions are not kept:
    no ``result``, so Label Studio stores no prediction (its log shows this record)."""
    return {"model_version": model_version, "status": NOTHING_FOUND}


def prediction_version(
    function: DetectionFunction | None,
    *,
    conf_threshold: float | None = None,
    tracker: TrackingFunction | None = None,
) -> str:
    """The ``model_version`` of pre-annotation predictions: the detection function's version, the
    confidence threshold when one is set (it changes the predictions) and, for videos, the tracker.
    ``serve`` and ``label-studio annotate`` both use this, so their predictions are one version and
    Label Studio never stores the same task's prediction twice. Interactive models are not part of
    it: switching the click-to-mask model does not change pre-annotations."""
    parts = []
    if function is not None:
        version = model_version(function)
        parts.append(version if conf_threshold is None else f"{version}@conf{conf_threshold:g}")
    if tracker is not None:
        parts.append(model_version(tracker))
    return "+".join(parts) or "none"


def task_ref(task: Mapping[str, Any], control: Control, what: str = "image") -> str:
    """The URL (or data URI, path) under ``task["data"][control.value_key]``; :class:`BadRequest`
    when it is missing."""
    data = task.get("data")
    if not isinstance(data, Mapping):
        raise BadRequest(f"task {task.get('id')!r} has no 'data' object")
    ref = data.get(control.value_key)
    if not isinstance(ref, str):
        raise BadRequest(f"task {task.get('id')!r} has no {what} under data.{control.value_key}")
    return ref
