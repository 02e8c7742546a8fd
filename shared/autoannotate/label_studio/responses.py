"""What every request handler of the ML backend shares: :class:`BadRequest`, the per-task
failure record, the empty prediction and the task's data reference (image or video URL)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import AutoAnnotateError
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
