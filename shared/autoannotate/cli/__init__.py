"""The ``autoannotate`` command: one parser, one room per group of subcommands.

    autoannotate functions | annotate | weights ...   core.py (COCO files, no integration needed)
    autoannotate fiftyone ...                         fiftyone.py (runs, shards, review on datasets)
    autoannotate label-studio ...                     label_studio.py (the ML backend, project runs)

Each room adds its subparsers with ``add_subcommands(sub)`` and sets ``handler`` on them; building
the parser imports neither FiftyOne nor Label Studio (handlers import what they need when they run).

Exit status: 0 when every image was annotated, 1 when the run completed with failed images,
2 for bad arguments, a bad function or a label mapping error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import AutoAnnotateError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from . import core, fiftyone, label_studio

    parser = argparse.ArgumentParser(prog="autoannotate", description="Label images with models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for room in (core, label_studio, fiftyone):
        room.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:  # every subcommand sets one; calling nothing would hide the mistake
        raise TypeError(f"no handler for command {args.command!r}")
    try:
        return handler(args)
    except AutoAnnotateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
