"""Pre-annotate a whole Label Studio project from the command line (immediate mode).

Tasks are read page by page, the function runs in batches, and predictions are uploaded in bulk
every ``upload_every`` tasks as results arrive (one bad task never loses the others). Tasks that
already have a prediction from this model version, or human annotations, are skipped unless
``overwrite``; with ``overwrite`` this model version's old predictions are replaced (human
annotations are never touched). Re-running continues where a previous run stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from ..driver import Progress, check_threshold, iter_annotations
from ..errors import AutoAnnotateError
from ..images import load_image
from ..mapping import LabelMapping
from ..report import AnnotateReport
from .config import map_controls, parse_config
from .fetch import FetchPolicy, ImageFetcher
from .regions import prediction_score, region_id, to_regions

log = logging.getLogger(__name__)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def annotate_project(
    url: str,
    api_key: str,
    project_id: int,
    function: Any,
    *,
    conf_threshold: float | None = None,
    overwrite: bool = False,
    max_tasks: int | None = None,
    batch_size: int = 4,
    num_workers: int = 4,
    upload_every: int = 32,
    progress: Progress = True,
    fetch_policy: FetchPolicy | None = None,
) -> AnnotateReport:
    from label_studio_sdk import LabelStudio

    conf_threshold = check_threshold(conf_threshold)
    client = LabelStudio(base_url=url, api_key=api_key, timeout=60)
    try:
        project = client.projects.get(id=project_id)
    except Exception as e:  # noqa: BLE001 - connection errors, 401, 404 from the SDK
        raise AutoAnnotateError(f"cannot read project {project_id} from {url}: {type(e).__name__}: {e}") from None
    controls = map_controls(function.spec, parse_config(_get(project, "label_config") or ""))
    version = str(getattr(function, "model_version", type(function).__name__))
    fetcher = ImageFetcher(fetch_policy or FetchPolicy(), label_studio_url=url, api_key=api_key)
    report = AnnotateReport()

    todo: list[tuple[int, str]] = []
    stale: dict[int, list[int]] = {}
    task_data: dict[int, Any] = {}
    try:
        for task in client.tasks.list(project=project_id, fields="all"):
            tid = int(_get(task, "id"))
            annotations = [a for a in (_get(task, "annotations") or []) if not _get(a, "was_cancelled", False)]
            mine = [p for p in (_get(task, "predictions") or []) if _get(p, "model_version") == version]
            if not overwrite and (annotations or mine):
                report.images_attempted += 1
                report.images_skipped += 1
                continue
            stale[tid] = [int(_get(p, "id")) for p in mine]
            data = _get(task, "data") or {}
            ref = data.get(controls[0].value_key) if isinstance(data, dict) else None
            if not isinstance(ref, str):
                report.images_attempted += 1
                report.add_failure(f"task {tid}", f"no image under data.{controls[0].value_key}")
                continue
            task_data[tid] = ref
            todo.append((tid, ref))
            if max_tasks is not None and len(todo) >= max_tasks:
                break
    except AutoAnnotateError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AutoAnnotateError(f"cannot list the tasks of project {project_id}: {type(e).__name__}: {e}") from None

    pending: list[dict] = []

    def upload() -> None:
        if not pending:
            return
        for p in pending:
            for pid in stale.get(p["task"], []):
                client.predictions.delete(id=pid)
        try:
            client.projects.import_predictions(id=project_id, request=list(pending))
        except Exception as e:  # noqa: BLE001
            raise AutoAnnotateError(
                f"uploading {len(pending)} predictions failed ({type(e).__name__}: {e}); "
                "tasks uploaded before are kept: run the same command again to continue"
            ) from None
        pending.clear()

    identity = LabelMapping.build(function.spec)
    try:
        for r in iter_annotations(
            function, todo, mapping=identity, conf_threshold=conf_threshold, batch_size=batch_size,
            num_workers=num_workers, progress=progress, report=report, total=len(todo),
            loader=lambda ref: load_image(fetcher.fetch(ref)), desc=f"pre-annotating project {project_id}",
        ):
            if not r.ok:
                continue
            regions: list[dict] = []
            for c in controls:
                regions += to_regions(r.key, c.mapping.map_shapes(r.shapes or []), c, r.size)  # type: ignore[union-attr,arg-type]
            for i, region in enumerate(regions):
                region["id"] = region_id(r.key, region["from_name"], i)
            report.annotations_added += len(regions)
            pending.append({"task": r.key, "result": regions, "score": prediction_score(regions), "model_version": version})
            if len(pending) >= upload_every:
                upload()
        upload()
    finally:
        fetcher.close()
    report.extra.update({"project": project_id, "model_version": version})
    return report
