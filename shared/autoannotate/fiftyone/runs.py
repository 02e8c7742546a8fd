"""Run records kept on the dataset (``dataset.info["autoannotate_runs"]``), so a user can list past
runs and see which run produced a label (every label carries ``autoannotate_run``)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any

INFO_KEY = "autoannotate_runs"
UNFINISHED = ("running", "interrupted", "failed")


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def list_runs(dataset: Any) -> list[dict[str, Any]]:
    """Every run recorded on ``dataset``, oldest first."""
    dataset.reload()
    runs = (dataset.info or {}).get(INFO_KEY, {})
    return sorted(runs.values(), key=lambda r: r.get("started_at", ""))


def get_run(dataset: Any, run_key: str) -> dict[str, Any]:
    dataset.reload()
    runs = (dataset.info or {}).get(INFO_KEY, {})
    if run_key not in runs:
        raise KeyError(f"dataset {dataset.name!r} has no autoannotate run {run_key!r}; runs: {sorted(runs)}")
    return runs[run_key]


def save_run(dataset: Any, record: dict[str, Any]) -> None:
    dataset.reload()
    info = dict(dataset.info or {})
    runs = dict(info.get(INFO_KEY, {}))
    runs[record["run_key"]] = record
    info[INFO_KEY] = runs
    dataset.info = info
    dataset.save()


def find_resumable(dataset: Any, config: str) -> dict[str, Any] | None:
    """The latest unfinished run with the same configuration, if any."""
    for record in reversed(list_runs(dataset)):
        if record.get("config_hash") == config and record.get("status") in UNFINISHED:
            return record
    return None


def new_run_key(dataset: Any) -> str:
    existing = {r["run_key"] for r in list_runs(dataset)}
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d_%H%M%S")
    key, n = f"autolabel_{stamp}", 1
    while key in existing:
        n += 1
        key = f"autolabel_{stamp}_{n}"
    return key
