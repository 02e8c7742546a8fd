"""Where autoannotate keeps its own documents in FiftyOne's database: the run records'
collection and a dataset's key in it (read by the run store and by the schema declarations, which
must not import each other)."""

from __future__ import annotations

from typing import Any

COLLECTION = "autoannotate_runs"


def runs_collection() -> Any:
    from fiftyone.core.odm import get_db_conn

    coll = get_db_conn()[COLLECTION]
    coll.create_index([("dataset_id", 1), ("started_at", 1)])
    return coll


def dataset_key(dataset: Any) -> str:
    return str(dataset._doc.id)
