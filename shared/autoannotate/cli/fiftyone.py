"""``autoannotate fiftyone ...``: commands on FiftyOne datasets from a shell.

Each command connects to the database FiftyOne is configured for (``FIFTYONE_DATABASE_URI``),
so it also works from a machine that only shares that database. This module sits outside the
``autoannotate.fiftyone`` package so that building the parser does not import FiftyOne (seconds); handlers
import ``autoannotate.fiftyone`` when they run.
"""

from __future__ import annotations

from typing import Any

from ..settings import (
    DEFAULT_BOUND,
    DEFAULT_MIN_DECISIONS,
    DEFAULT_MIN_SUPPORT,
    DEFAULT_REVIEW,
    DEFAULT_TARGET_PRECISION,
)
from .core import forwarded, stdout_for_json


def add_subcommands(sub: Any) -> None:
    fo = sub.add_parser("fiftyone", help="FiftyOne datasets: runs, shards, review")
    fo_sub = fo.add_subparsers(dest="fo_command", required=True)
    # Each command adds its parser here and sets `handler` with set_defaults.
    _ = fo_sub
    rq = fo_sub.add_parser(
        "requeue",
        help="put the dead and failed shards of a sharded run back in the queue (they continue where they stopped)",
    )
    rq.add_argument("run_key", metavar="RUN", help="the sharded run's key (sharded_...)")
    rq.add_argument("--dataset", default=None, help="its dataset (default: found from the run key)")
    rq.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=None,
        help="a running shard silent this many seconds is dead (default 900; a shard whose process on "
        "this machine is gone is dead at once)",
    )
    rq.set_defaults(handler=cmd_requeue)
    _add_review_commands(fo_sub)


def load_dataset(name: str) -> Any:
    """The dataset ``name``; a missing one is a one-line error (exit status 2), not a traceback."""
    import fiftyone as fo

    from ..errors import AutoAnnotateError

    if not fo.dataset_exists(name):
        raise AutoAnnotateError(f"no FiftyOne dataset {name!r} in this database (fiftyone datasets list)")
    return fo.load_dataset(name)


def cmd_requeue(args: Any) -> int:

    from ..fiftyone.shards import find_run_dataset, requeue

    name = args.dataset or find_run_dataset(args.run_key)
    out = requeue(load_dataset(name), args.run_key, heartbeat_timeout=args.heartbeat_timeout)
    for s in out["states"]:
        total = "?" if s["total"] is None else s["total"]
        print(f"shard {s['shard']}: {s['state']:<10} {s['done']}/{total} samples  operation {s['operation']}")
    print(f"re-queued shards: {out['requeued'] or 'none'}")
    return 0


# -- review progress and calibration (autoannotate.fiftyone.review) --


def _add_review_commands(fo_sub: Any) -> None:
    rs = fo_sub.add_parser("review-summary", help="review progress of a label field: per run, class and reviewer")
    rs.add_argument("dataset", metavar="DATASET")
    rs.add_argument("field", metavar="FIELD", help="the auto label field (frames.<name> or <name> for video)")
    rs.add_argument("--json", action="store_true", help="print the summary as JSON")
    rs.set_defaults(handler=cmd_review_summary)
    cr = fo_sub.add_parser(
        "calibrate-review", help="review thresholds per class learned from reviewers' decisions or ground truth"
    )
    cr.add_argument("dataset", metavar="DATASET")
    cr.add_argument("field", metavar="FIELD")
    cr.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION)
    cr.add_argument("--source", default="review", help="'review' (default) or a ground-truth field")
    cr.add_argument(
        "--bound",
        choices=["wilson", "estimate"],
        default=DEFAULT_BOUND,
        help="wilson (default): the lower end of the precision's Wilson interval must reach the target; "
        "estimate: the observed precision (optimistic on new photos)",
    )
    cr.add_argument("--min-decisions", type=int, default=None, help=f"per class (default {DEFAULT_MIN_DECISIONS})")
    cr.add_argument(
        "--min-support",
        type=int,
        default=None,
        help=f"decided labels at or above upper it must rest on (default {DEFAULT_MIN_SUPPORT})",
    )
    cr.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="keep this share of the samples (by a hash of their file name) out of the thresholds and report "
        "the precision reached on them (default 0: no check)",
    )
    cr.add_argument(
        "--fallback",
        type=_pair,
        default=None,
        metavar="LOWER,UPPER",
        help="thresholds of refused and unseen classes (default: the package's default review thresholds, "
        f"{DEFAULT_REVIEW[0]},{DEFAULT_REVIEW[1]})",
    )
    cr.add_argument("--save", action="store_true", help="keep the thresholds on the dataset (dataset.info)")
    cr.add_argument("--json", action="store_true")
    cr.set_defaults(handler=cmd_calibrate_review)


def _pair(text: str) -> tuple[float, float]:
    import argparse

    try:
        lower, upper = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOWER,UPPER (two numbers), got {text!r}") from None
    return lower, upper


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def format_summary(summary: dict[str, Any]) -> str:
    """The review summary as a table: one row per run, class and reviewer, then the total."""
    cols = ("approved_auto", "approved_human", "rejected", "needs_review", "discarded")
    rows_named = [
        f"{k} {key}"
        for k, rows in (
            ("run", summary["by_run"]),
            ("class", summary["by_class"]),
            ("reviewer", summary["by_reviewer"]),
        )
        for key in rows
    ]
    width = max([28, *(len(n) + 2 for n in rows_named)])  # whole run keys: shard runs differ at the end
    head = f"{'':<{width}}{'auto ok':>9}{'human ok':>9}{'rejected':>9}{'to review':>10}{'discarded':>10}{'reviewed':>9}{'accepted':>9}"
    lines = [f"review of {summary['field']}", head]
    sections = [("run", summary["by_run"]), ("class", summary["by_class"]), ("reviewer", summary["by_reviewer"])]
    for kind, rows in [*sections, ("", {"total": summary["total"]})]:
        for key, r in rows.items():
            name = f"{kind} {key}" if kind else key
            nums = "".join(f"{r[c]:>{9 if i < 3 else 10}}" for i, c in enumerate(cols))
            lines.append(f"{name:<{width}}{nums}{_pct(r['reviewed_share']):>9}{_pct(r['acceptance_rate']):>9}")
    return "\n".join(lines)


def cmd_review_summary(args: Any) -> int:
    import json

    from ..fiftyone.review import review_summary

    with stdout_for_json(args.json):
        summary = review_summary(load_dataset(args.dataset), args.field)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def cmd_calibrate_review(args: Any) -> int:
    import json

    from ..fiftyone.review import calibrate_review, save_calibration

    with stdout_for_json(args.json):  # FiftyOne says "Evaluating detections..." on stdout
        ds = load_dataset(args.dataset)
        options = forwarded(args, "source", "bound", "min_decisions", "fallback", "holdout", "min_support")
        cal = calibrate_review(ds, args.field, args.target_precision, **options)
        if args.save:
            save_calibration(ds, args.field, cal)
    print(json.dumps(cal.to_dict(), indent=2) if args.json else cal.summary())
    return 0
