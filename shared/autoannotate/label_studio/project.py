"""Pre-annotate a whole Label Studio project from the command line (immediate mode).

A run of :func:`autoannotate.run.run` with a project sink: tasks are listed page by page, the
function runs in batches, and predictions are uploaded in bulk every ``write_every`` tasks (or
``write_interval`` seconds) as results arrive, so one bad task never loses the others. Tasks that
already have a prediction from this model version, or human annotations, are skipped unless
``overwrite``; with ``overwrite`` this model version's old predictions are replaced (human
annotations are never touched). Re-running continues where a previous run stopped.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

from ..driver import ImageResult, Progress, check_threshold, iter_annotations
from ..errors import AutoAnnotateError, ImageLoadError
from ..images import load_image
from ..mapping import LabelMapping
from ..report import AnnotateReport
from ..run import run, write_error
from ..settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, DEFAULT_WRITE_EVERY, DEFAULT_WRITE_INTERVAL
from .config import Control, map_controls, parse_config
from .fetch import FetchPolicy, ImageFetcher
from .regions import build_prediction

log = logging.getLogger(__name__)

__all__ = ["annotate_project"]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


class ProjectSink:
    """The run engine's sink for a Label Studio project: predictions uploaded in bulk."""

    def __init__(self, client: Any, project_id: int, version: str, controls: list[Control], overwrite: bool) -> None:
        self.client = client
        self.project_id = project_id
        self.version = version
        self.controls = controls
        self.overwrite = overwrite
        self.done: set[Hashable] = set()
        self.stale: dict[int, list[int]] = {}
        self.predictions: list[dict] = []

    def list_tasks(self) -> list[tuple[int, str | None]]:
        """``(task id, image reference)`` of every task; notes which are done and which
        predictions of this model version a re-labelled task replaces."""
        items = []
        try:
            for task in self.client.tasks.list(project=self.project_id, fields="all"):
                tid = int(_get(task, "id"))
                annotations = [a for a in (_get(task, "annotations") or []) if not _get(a, "was_cancelled", False)]
                mine = [
                    int(_get(p, "id"))
                    for p in (_get(task, "predictions") or [])
                    if _get(p, "model_version") == self.version
                ]
                if not self.overwrite and (annotations or mine):
                    self.done.add(tid)
                self.stale[tid] = mine
                data = _get(task, "data") or {}
                ref = data.get(self.controls[0].value_key) if isinstance(data, dict) else None
                items.append((tid, ref if isinstance(ref, str) else None))
        except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
            raise AutoAnnotateError(
                f"cannot list the tasks of project {self.project_id}: {type(e).__name__}: {e}"
            ) from None
        return items

    def done_keys(self, run_key: str | None) -> set[Hashable]:
        return set(self.done)

    def begin(self, run_key: str) -> None:
        pass

    def add(self, result: ImageResult) -> list[str | None]:
        parts = [(c, c.mapping.map_shapes(result.shapes or [])) for c in self.controls if c.mapping is not None]
        prediction = build_prediction(result.key, parts, result.size, self.version)  # type: ignore[arg-type]
        self.predictions.append(dict(prediction, task=result.key))
        return [None] * len(prediction["result"])

    def pending(self) -> int:
        return len(self.predictions)

    def flush(self) -> None:
        try:
            for p in self.predictions:
                for pid in self.stale.pop(p["task"], []):
                    self.client.predictions.delete(id=pid)
            self.client.projects.import_predictions(id=self.project_id, request=list(self.predictions))
        except Exception as e:  # noqa: BLE001 - the SDK raises many types
            raise write_error(f"project {self.project_id}", len(self.predictions), e) from None
        self.predictions.clear()

    def finish(self, report: AnnotateReport) -> None:
        report.extra.update({"project": self.project_id, "model_version": self.version})


def annotate_project(
    url: str,
    api_key: str,
    project_id: int,
    function: Any,
    *,
    conf_threshold: float | None = None,
    overwrite: bool = False,
    max_tasks: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = DEFAULT_NUM_WORKERS,
    write_every: int = DEFAULT_WRITE_EVERY,
    write_interval: float = DEFAULT_WRITE_INTERVAL,
    progress: Progress = True,
    fetch_policy: FetchPolicy | None = None,
    upload_every: int | None = None,
) -> AnnotateReport:
    """Pre-annotate the tasks of project ``project_id`` with ``function``; returns the report.

    ``max_tasks`` limits the tasks this call labels (after skipping); predictions are uploaded
    every ``write_every`` tasks or ``write_interval`` seconds. ``upload_every`` is the deprecated
    spelling of ``write_every``."""
    from label_studio_sdk import LabelStudio

    if upload_every is not None:
        warnings.warn(
            "annotate_project(upload_every=) is deprecated: use write_every=", DeprecationWarning, stacklevel=2
        )
        write_every = upload_every
    conf_threshold = check_threshold(conf_threshold)
    client = LabelStudio(base_url=url, api_key=api_key, timeout=60)
    try:
        project = client.projects.get(id=project_id)
    except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
        raise AutoAnnotateError(f"cannot read project {project_id} from {url}: {type(e).__name__}: {e}") from None
    controls = map_controls(function.spec, parse_config(_get(project, "label_config") or ""))
    version = str(getattr(function, "model_version", type(function).__name__))
    sink = ProjectSink(client, project_id, version, controls, overwrite)
    items = sink.list_tasks()
    fetcher = ImageFetcher(fetch_policy or FetchPolicy(), label_studio_url=url, api_key=api_key)
    identity = LabelMapping.build(function.spec)

    def load(ref: str | None) -> Any:
        if ref is None:
            raise ImageLoadError(f"no image under data.{controls[0].value_key}")
        return load_image(fetcher.fetch(ref))

    def process(todo: Sequence[tuple[Hashable, Any]], report: AnnotateReport) -> Any:
        return iter_annotations(
            function,
            todo,
            mapping=identity,
            conf_threshold=conf_threshold,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            report=report,
            total=len(todo),
            loader=load,
            desc=f"pre-annotating project {project_id}",
            item_name=lambda key, ref: f"task {key}",
        )

    try:
        return run(
            items,
            process,
            sink,
            max_items=max_tasks,
            write_every=write_every,
            write_interval=write_interval,
            key_prefix="ls",
            unit="tasks",
        )
    finally:
        fetcher.close()
