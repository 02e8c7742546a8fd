"""Click-to-mask for Label Studio's editor: the interactive ``context`` of a request (every click
and box, in percent) becomes an :class:`~autoannotate.interface.InteractivePrompt` in pixels,
the interactive function segments the task's image from its cached encoding
(:class:`autoannotate.encodings.Encoder`), its results are validated
(:func:`autoannotate.validation.validate_segmentation`) and come back as BrushLabels and/or
PolygonLabels regions (:func:`~autoannotate.label_studio.predictions.mask_prediction`).

Encode-ahead: the images of opened tasks, and of the project's next tasks (listed through
Label Studio's API), are encoded in the background so the first click costs only the decoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import PIL.Image

from ..encodings import Encoded, Encoder, EncodingCache
from ..images import load_image
from ..interface import InteractiveFunction, InteractiveFunctionContext, InteractivePrompt, model_version
from ..validation import validate_segmentation
from .config import Control
from .fetch import ImageFetcher
from .predictions import mask_prediction
from .regions import rectangle_from_value
from .responses import BadRequest, task_ref

log = logging.getLogger(__name__)

__all__ = ["InteractiveSession", "PromptInPercent", "parse_context"]


class InteractiveSession:
    """``interactive`` answering clicks on the images ``fetcher`` downloads, with its encodings
    in ``cache`` (computed once per image, or ahead in one background thread)."""

    def __init__(self, interactive: InteractiveFunction, fetcher: ImageFetcher, cache: EncodingCache) -> None:
        self.interactive = interactive
        self.fetcher = fetcher
        self.encoder = Encoder(interactive, cache)
        self._lock = threading.Lock()
        self._looked: dict[tuple[int, int], bool] = {}  # tasks whose next tasks were queued

    def prediction(self, task: Mapping[str, Any], context: Any, controls: list[Control]) -> dict:
        """The prediction for one interactive request: the masks of every click and box of
        ``context`` on ``task``'s image, on every control. :class:`BadRequest` for a malformed
        context; :class:`~autoannotate.errors.BadFunctionError` when the function's results
        break the protocol (wrong count, mask size or type, score)."""
        if not controls:
            raise BadRequest("the labeling config has no BrushLabels or PolygonLabels control for interactive masks")
        percent = parse_context(context)
        ref = task_ref(task, controls[0], "image")
        ictx = InteractiveFunctionContext(frame_name=str(task.get("id", "")))
        encoded = self.encoding(ref, ictx)
        prompt = percent.to_prompt(encoded.size)
        results = validate_segmentation(
            self.interactive.segment(ictx, encoded.encoding, prompt),
            encoded.size,
            expected=len(prompt.boxes) or 1,
            frame_name=f"task {task.get('id')}",
        )
        points = repr((prompt.positive_points, prompt.negative_points, prompt.boxes))
        salt = hashlib.sha1(points.encode()).hexdigest()[:8]
        version = model_version(self.interactive)
        return mask_prediction(f"{task.get('id')}:{salt}", results, prompt.label, controls, encoded.size, version)

    def encoding(self, ref: str, ictx: InteractiveFunctionContext, image: PIL.Image.Image | None = None) -> Encoded:
        """The encoding of the image at ``ref``, from the cache or computed once (concurrent
        callers wait for the one computation); ``image`` if already decoded."""
        return self.encoder.encoding(ref, lambda: image if image is not None else self._load(ref), ictx)

    def _load(self, ref: str) -> PIL.Image.Image:
        return load_image(self.fetcher.fetch(ref))

    def encode_later(self, task: Mapping[str, Any], controls: list[Control], loaded: Mapping[str, Any]) -> None:
        """Queue the encoding of ``task``'s image (``loaded``: images already decoded, by reference)."""
        if not controls:
            return
        try:
            ref = task_ref(task, controls[0], "image")
        except BadRequest:
            return
        image = loaded.get(ref)
        ictx = InteractiveFunctionContext(frame_name=str(task.get("id", "")))
        self.encoder.encode_later(
            ref, lambda: image if image is not None else self._load(ref), ictx, what=f"task {task.get('id')}"
        )

    def encode_next(self, project: Any, task: Mapping[str, Any], controls: list[Control], count: int) -> None:
        """Queue the encodings of the ``count`` tasks after ``task`` in its project (listed from
        Label Studio in the background thread; a failure is only logged). Once per task."""
        try:
            project_id, task_id = int(str(project).split(".")[0]), int(task.get("id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        with self._lock:  # once per task (every click of a task would list the same next tasks)
            if (project_id, task_id) in self._looked:
                return
            self._looked[(project_id, task_id)] = True
            while len(self._looked) > 1024:
                self._looked.pop(next(iter(self._looked)))
        query = {
            "filters": {
                "conjunction": "and",
                "items": [{"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": task_id}],
            },
            "ordering": ["tasks:id"],
        }

        def job() -> None:
            try:
                page = self.fetcher.label_studio_api(
                    "/api/tasks",
                    {"project": project_id, "page_size": count, "fields": "task_only", "query": json.dumps(query)},
                )
            except Exception as e:  # noqa: BLE001 - look-ahead is an optimisation
                log.info("look-ahead: cannot list the tasks after task %s: %s", task_id, e)
                return
            for nxt in (page.get("tasks") or [])[:count]:
                if isinstance(nxt, Mapping):
                    self.encode_later(nxt, controls, {})

        self.encoder.submit(job)

    def close(self) -> None:
        """Drop queued encodings and stop the background thread (the server is stopping)."""
        self.encoder.close()

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until queued encodings are done (tests, benchmarks); False on timeout."""
        return self.encoder.wait(timeout)


@dataclass
class PromptInPercent:
    """Prompt coordinates in percent (Label Studio's unit) until the image size is known."""

    pos: list[tuple[float, float]]
    neg: list[tuple[float, float]]
    boxes: list[tuple[float, float, float, float]]
    label: str | None
    #: each box's rotation in degrees (Label Studio's: clockwise about its top-left corner); the
    #: prompt gets the upright box around a rotated one
    rotations: list[float] = field(default_factory=list)

    def to_prompt(self, size: tuple[int, int]) -> InteractivePrompt:
        """The prompt in pixels of an image of ``size`` = (width, height)."""
        w, h = size

        def px(x: float, y: float) -> tuple[float, float]:
            return x * w / 100.0, y * h / 100.0

        def box(i: int, b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
            r = self.rotations[i] if i < len(self.rotations) else 0.0
            if not r:
                return (*px(b[0], b[1]), *px(b[2], b[3]))
            value = {"x": b[0], "y": b[1], "width": b[2] - b[0], "height": b[3] - b[1], "rotation": r}
            x1, y1, x2, y2 = rectangle_from_value(value, size).bbox() or (0.0, 0.0, 0.0, 0.0)
            return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)

        return InteractivePrompt(
            positive_points=tuple(px(*p) for p in self.pos),
            negative_points=tuple(px(*p) for p in self.neg),
            boxes=tuple(box(i, b) for i, b in enumerate(self.boxes)),
            label=self.label,
        )


def parse_context(context: Any) -> PromptInPercent:
    """Label Studio's interactive ``context``: every keypoint (``is_positive`` true/false) and
    every rectangle of ``context["result"]`` is used; the label is the last one named."""
    items = context.get("result") if isinstance(context, Mapping) else None
    if not isinstance(items, list) or not items:
        raise BadRequest("the interactive context has no 'result' list of clicks or boxes")
    pos: list[tuple[float, float]] = []
    neg: list[tuple[float, float]] = []
    boxes: list[tuple[float, float, float, float]] = []
    rotations: list[float] = []
    label: str | None = None
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), Mapping):
            raise BadRequest(f"malformed context item {str(item)[:200]}")
        kind, v = item.get("type"), item["value"]
        try:
            if kind in ("keypointlabels", "keypoint"):
                point = (float(v["x"]), float(v["y"]))
                positive = item.get("is_positive", True)
                (pos if positive not in (False, 0, "false", "False") else neg).append(point)
            elif kind in ("rectanglelabels", "rectangle"):
                x, y, w, h = float(v["x"]), float(v["y"]), float(v["width"]), float(v["height"])
                boxes.append((x, y, x + w, y + h))
                rotations.append(float(v.get("rotation") or 0.0))
            else:
                continue
        except (KeyError, TypeError, ValueError):
            raise BadRequest(
                f"context item of type {kind!r} needs numeric x, y (and width, height for boxes)"
            ) from None
        names = v.get(kind) if isinstance(v.get(kind), list) else None
        if names:
            label = str(names[0])
    coords = [c for p in pos + neg for c in p] + [c for b in boxes for c in b]
    if not all(-1e-6 <= c <= 100 + 1e-6 for c in coords):
        raise BadRequest("context coordinates are percentages and must be within 0-100")
    if not pos and not boxes:
        raise BadRequest("the interactive context needs at least one positive click or one box")
    return PromptInPercent(pos, neg, boxes, label, rotations)
