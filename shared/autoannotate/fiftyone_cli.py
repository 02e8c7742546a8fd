"""``autoannotate fiftyone ...``: commands on FiftyOne datasets from a shell.

Each command connects to the database FiftyOne is configured for (``FIFTYONE_DATABASE_URI``),
so it also works from a machine that only shares that database. This module sits outside the
``fiftyone`` package so that building the parser does not import FiftyOne (seconds); handlers
import ``autoannotate.fiftyone`` when they run.
"""

from __future__ import annotations

from typing import Any


def add_subcommands(sub: Any) -> None:
    fo = sub.add_parser("fiftyone", help="FiftyOne datasets: runs, shards, review")
    fo_sub = fo.add_subparsers(dest="fo_command", required=True)
    # Each command adds its parser here and sets `handler` with set_defaults.
    _ = fo_sub
