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
from collections.abc import Hashable
from typing import Any

from ..driver import ImageResult, Progress, check_threshold, iter_annotations
from ..errors import AutoAnnotateError, ImageLoadError
from ..images import load_image
from ..interface import DetectionFunction
from ..report import AnnotateReport
from ..run import processor, run, write_error
from ..settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, DEFAULT_WRITE_EVERY, DEFAULT_WRITE_INTERVAL
from ..sharding import check_shard, check_shards, select_shard
from .config import Control, map_controls, parse_config
from .fetch import FetchPolicy, ImageFetcher
from .predictions import control_mappings, image_prediction
from .responses import prediction_version

#: What a Label Studio run's ``annotations_added`` counts: regions of the predictions it uploads
#: (Label Studio predictions, never annotations), as the report's summary names them.
REGIONS_PREDICTED = "regions predicted"

log = logging.getLogger(__name__)

__all__ = ["annotate_project", "annotate_project_workers"]


def sdk_field(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Label Studio SDK object or of its plain-dict form."""
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def api_error_message(error: BaseException) -> str:
    """One line for an error of the Label Studio SDK: the HTTP status and the server's message
    (``HTTP 401: Invalid token.``). Never the response headers: they carry session cookies."""
    status = getattr(error, "status_code", None)
    if status is None:
        return f"{type(error).__name__}: {error}"
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("message") or body
    else:
        detail = body
    text = " ".join(str(detail if detail not in (None, "") else "no message").split())
    return f"HTTP {status}: {text[:500]}"


class ProjectSink:
    """The run engine's sink for a Label Studio project: predictions uploaded in bulk."""

    def __init__(
        self,
        client: Any,
        project_id: int,
        version: str,
        controls: list[Control],
        overwrite: bool,
        empty_predictions: bool = False,
    ) -> None:
        self.client = client
        self.empty_predictions = empty_predictions
        self.nothing_found = 0
        self.uploaded = 0
        self.project_id = project_id
        self.version = version
        self.controls = controls
        self.overwrite = overwrite
        self.done: set[Hashable] = set()
        self.stale: dict[int, list[int]] = {}
        self.predictions: list[dict] = []
        self.orphans: list[int] = []  # replaced predictions of tasks where nothing is found now

    def list_tasks(self) -> list[tuple[int, str | None]]:
        """``(task id, image reference)`` of every task; notes which are done and which
        predictions of this model version a re-labelled task replaces."""
        items = []
        try:
            for task in self.client.tasks.list(project=self.project_id, fields="all"):
                tid = int(sdk_field(task, "id"))
                annotations = [
                    a for a in (sdk_field(task, "annotations") or []) if not sdk_field(a, "was_cancelled", False)
                ]
                mine = [
                    int(sdk_field(p, "id"))
                    for p in (sdk_field(task, "predictions") or [])
                    if sdk_field(p, "model_version") == self.version
                ]
                if not self.overwrite and (annotations or mine):
                    self.done.add(tid)
                self.stale[tid] = mine
                data = sdk_field(task, "data") or {}
                ref = data.get(self.controls[0].value_key) if isinstance(data, dict) else None
                items.append((tid, ref if isinstance(ref, str) else None))
        except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
            raise AutoAnnotateError(
                f"cannot list the tasks of project {self.project_id}: {api_error_message(e)}"
            ) from None
        return items

    def done_keys(self, run_key: str | None) -> set[Hashable]:
        return set(self.done)

    def begin(self, run_key: str) -> None:
        pass

    def add(self, result: ImageResult) -> list[str | None]:
        prediction = image_prediction(result.key, result, self.controls, self.version)
        if not prediction["result"]:
            self.nothing_found += 1
            if not self.empty_predictions:
                # no prediction: a later run (or "Retrieve predictions") tries the task again; an
                # old prediction of this version that --overwrite replaces goes all the same
                self.orphans += self.stale.pop(result.key, [])  # type: ignore[call-overload]
                return []
        self.predictions.append(dict(prediction, task=result.key))
        return [None] * len(prediction["result"])

    def pending(self) -> int:
        return len(self.predictions) + len(self.orphans)

    def flush(self) -> None:
        try:
            for pid in self.orphans:
                self.client.predictions.delete(id=pid)
            self.orphans.clear()
            for p in self.predictions:
                for pid in self.stale.pop(p["task"], []):
                    self.client.predictions.delete(id=pid)
            if self.predictions:
                self.client.projects.import_predictions(id=self.project_id, request=list(self.predictions))
        except Exception as e:  # noqa: BLE001 - the SDK raises many types
            raise write_error(f"project {self.project_id}", len(self.predictions), api_error_message(e)) from None
        self.uploaded += len(self.predictions)
        self.predictions.clear()

    def finish(self, report: AnnotateReport) -> None:
        report.added = REGIONS_PREDICTED
        report.extra.update(
            {
                "project": self.project_id,
                "model_version": self.version,
                "predictions_uploaded": self.uploaded,
                # without empty predictions these tasks get none, and a re-run tries them again
                "tasks_with_nothing_found": self.nothing_found,
            }
        )


def annotate_project(
    url: str,
    api_key: str,
    project_id: int,
    function: DetectionFunction,
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
    empty_predictions: bool = False,
    shard: tuple[int, int] | None = None,
) -> AnnotateReport:
    """Pre-annotate the tasks of project ``project_id`` with ``function``; returns the report.

    ``max_tasks`` limits the tasks this call labels (after skipping); predictions are uploaded
    every ``write_every`` tasks or ``write_interval`` seconds. Tasks where nothing is found get
    no prediction (so a re-run or Label Studio's "Retrieve predictions" tries them again) unless
    ``empty_predictions``. The predictions' ``model_version`` is
    :func:`~autoannotate.label_studio.responses.prediction_version`, the same as the backend
    (``serve``) gives them, so the two never predict a task twice.

    ``shard=(i, n)``: label only the tasks whose id hashes to shard ``i`` of ``n``
    (:func:`autoannotate.sharding.shard_of`): ``n`` processes or machines started with
    ``i = 0 .. n-1`` split the project without overlap, and each can be re-run on its own
    (``max_tasks`` then counts within the shard)."""

    conf_threshold = check_threshold(conf_threshold)
    fetcher = ImageFetcher(fetch_policy or FetchPolicy(), label_studio_url=url, api_key=api_key)
    try:
        return _annotate_project(
            fetcher,
            url,
            api_key,
            project_id,
            function,
            conf_threshold=conf_threshold,
            overwrite=overwrite,
            max_tasks=max_tasks,
            batch_size=batch_size,
            num_workers=num_workers,
            write_every=write_every,
            write_interval=write_interval,
            progress=progress,
            empty_predictions=empty_predictions,
            shard=None if shard is None else check_shard(*shard),
        )
    finally:
        fetcher.close()


def _annotate_project(
    fetcher: ImageFetcher,
    url: str,
    api_key: str,
    project_id: int,
    function: DetectionFunction,
    *,
    conf_threshold: float | None,
    overwrite: bool,
    max_tasks: int | None,
    batch_size: int,
    num_workers: int,
    write_every: int,
    write_interval: float,
    progress: Progress,
    empty_predictions: bool,
    shard: tuple[int, int] | None = None,
) -> AnnotateReport:
    from label_studio_sdk import LabelStudio

    check = fetcher.check_label_studio()
    if check.state != "ok":  # one line that says what to fix, before any API call
        raise AutoAnnotateError(check.message)
    client = LabelStudio(base_url=url, api_key=api_key, timeout=60)
    try:
        project = client.projects.get(id=project_id)
    except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
        raise AutoAnnotateError(f"cannot read project {project_id} from {url}: {api_error_message(e)}") from None
    controls = map_controls(function.spec, parse_config(sdk_field(project, "label_config") or ""))
    version = prediction_version(function, conf_threshold=conf_threshold)
    sink = ProjectSink(client, project_id, version, controls, overwrite, empty_predictions)
    items = sink.list_tasks()
    if shard is not None:
        items = select_shard(items, *shard)
    mapping = control_mappings(controls)  # labels are mapped in the driver, one mapping per control

    def load(ref: str | None) -> Any:
        if ref is None:
            raise ImageLoadError(f"no image under data.{controls[0].value_key}")
        return load_image(fetcher.fetch(ref))

    process = processor(
        iter_annotations,
        function,
        mapping=mapping,
        conf_threshold=conf_threshold,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        loader=load,
        desc=f"pre-annotating project {project_id}",
        item_name=lambda key, ref: f"task {key}",
    )

    report = run(
        items,
        process,
        sink,
        max_items=max_tasks,
        write_every=write_every,
        write_interval=write_interval,
        key_prefix="ls",
        unit="tasks",
    )
    if shard is not None:
        report.extra["shard"] = f"{shard[0]}/{shard[1]}"
    return report


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    """One ``--workers`` process: load the function, label one shard, return its report."""
    from ..loading import load_function

    function = load_function(job.pop("function_name"), "detection", **job.pop("function_params"))
    return annotate_project(function=function, progress=False, **job).to_dict()


def annotate_project_workers(
    url: str,
    api_key: str,
    project_id: int,
    function_name: str,
    function_params: dict[str, Any] | None = None,
    *,
    workers: int,
    **kwargs: Any,
) -> AnnotateReport:
    """Pre-annotate project ``project_id`` with ``workers`` local processes, worker ``i`` taking
    ``shard=(i, workers)`` (each loads ``function_name`` with ``function_params`` itself); returns
    one combined report (``extra``: ``workers``, summed ``predictions_uploaded`` and
    ``tasks_with_nothing_found``, and ``shard_counts``: ``{"i/N": {"tasks_processed",
    "tasks_skipped", "predictions_uploaded"}}`` per worker that finished). A worker that fails is one failure
    of the combined report; the others finish. ``kwargs``: as for :func:`annotate_project`
    (``max_tasks`` counts per worker)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    check_shards(workers, "workers")
    fetcher = ImageFetcher(kwargs.get("fetch_policy") or FetchPolicy(), label_studio_url=url, api_key=api_key)
    try:
        check = fetcher.check_label_studio()
    finally:
        fetcher.close()
    if check.state != "ok":  # once, before N processes each load the model to find out
        raise AutoAnnotateError(check.message)
    jobs = [
        dict(
            kwargs,
            url=url,
            api_key=api_key,
            project_id=project_id,
            function_name=function_name,
            function_params=dict(function_params or {}),
            shard=(i, workers),
        )
        for i in range(workers)
    ]
    combined = AnnotateReport(unit="tasks", added=REGIONS_PREDICTED)
    extra: dict[str, Any] = {"project": project_id, "workers": workers, "predictions_uploaded": 0}
    extra["tasks_with_nothing_found"] = 0
    shard_counts: dict[str, dict[str, int]] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, job) for job in jobs]
        for i, future in enumerate(futures):
            try:
                part = AnnotateReport.from_dict(future.result())
            except Exception as e:  # noqa: BLE001 - one worker's failure is reported, the others count
                combined.add_failure(f"worker {i}/{workers}", f"{type(e).__name__}: {e}")
                continue
            combined.merge(part)
            for key in ("predictions_uploaded", "tasks_with_nothing_found"):
                extra[key] += int(part.extra.get(key) or 0)
            extra.setdefault("model_version", part.extra.get("model_version"))
            shard_counts[f"{i}/{workers}"] = {
                "tasks_processed": part.images_processed,
                "tasks_skipped": part.images_skipped,
                "predictions_uploaded": int(part.extra.get("predictions_uploaded") or 0),
            }
    combined.extra.update(extra, shard_counts=shard_counts)
    return combined
