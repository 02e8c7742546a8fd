"""``autoannotate label-studio serve | annotate``.

Building the parsers reads no environment variable: a flag left out is ``None`` and takes its
value, when the command runs, from :meth:`autoannotate.settings.Settings.from_env` (the
``AUTOANNOTATE_*`` / ``LABEL_STUDIO_*`` variables, else the package defaults). A malformed
variable is then a clear error naming it (exit status 2), and commands that do not need the
settings never look at them.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadParameterError
from ..settings import (
    DEFAULT_BOUND,
    DEFAULT_MIN_DECISIONS,
    DEFAULT_TARGET_PRECISION,
    DEFAULT_WRITE_EVERY,
    Settings,
    checked,
    named,
)
from .core import add_params, forwarded, stdout_for_json

_NONE_WORDS = ("none", "")


def add_subcommands(sub: Any) -> None:
    ls = sub.add_parser("label-studio", help="Label Studio: the ML backend service and project pre-annotation")
    ls_sub = ls.add_subparsers(dest="ls_command", required=True)

    s = ls_sub.add_parser("serve", help="serve the ML backend (settings also from AUTOANNOTATE_* variables)")
    s.add_argument(
        "--function",
        "-f",
        default=None,
        help="detection function for pre-annotation: a name (autoannotate functions), a module or a .py file "
        "(ours or one written for CVAT); 'none' to disable (default: AUTOANNOTATE_FUNCTION, else "
        f"{Settings.function})",
    )
    s.add_argument(
        "--interactive",
        default=None,
        help="interactive function for clicks/boxes: auto (the best SAM model whose weights are present, "
        "else grabcut), edgetam, sam2, sam, grabcut, a module or .py file, or none (default: AUTOANNOTATE_INTERACTIVE, else "
        f"{Settings.interactive})",
    )
    s.add_argument(
        "--tracker",
        default=None,
        help="tracking function for video tasks: opencv_tracker, sam_tracker, sam2_video, edgetam_video, or none "
        "(default: AUTOANNOTATE_TRACKER, else "
        f"{Settings.tracker})",
    )
    s.add_argument(
        "--track-frames",
        type=int,
        default=None,
        help="how many frames a drawn video box is tracked (default: AUTOANNOTATE_TRACK_FRAMES, else "
        f"{Settings.track_frames})",
    )
    add_params(s, "-p", "--param", help="a parameter of the detection function (default: AUTOANNOTATE_PARAMS)")
    add_params(
        s,
        "--interactive-param",
        help="a parameter of the interactive function (default: AUTOANNOTATE_INTERACTIVE_PARAMS)",
    )
    s.add_argument("--conf-threshold", type=float, default=None, help="default: AUTOANNOTATE_CONF_THRESHOLD")
    _add_batch_options(s)
    s.add_argument(
        "--empty-predictions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store a prediction with no regions where nothing is found (default: AUTOANNOTATE_EMPTY_PREDICTIONS, "
        "else no: those tasks get no prediction, so 'Retrieve predictions' tries them again)",
    )
    s.add_argument(
        "--encode-ahead",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="encode an opened task's image for click-to-mask in the background "
        "(default: AUTOANNOTATE_ENCODE_AHEAD, else yes)",
    )
    s.add_argument(
        "--look-ahead",
        type=int,
        default=None,
        metavar="N",
        help="also encode the project's next N tasks when a task is opened, 0 for none "
        f"(default: AUTOANNOTATE_LOOK_AHEAD, else {Settings.look_ahead})",
    )
    s.add_argument("--host", default=None, help=f"default: AUTOANNOTATE_HOST, else {Settings.host}")
    s.add_argument("--port", type=int, default=None, help=f"default: AUTOANNOTATE_PORT, else {Settings.port}")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug", "trace"])
    s.set_defaults(handler=cmd_serve)

    a = ls_sub.add_parser("annotate", help="pre-annotate every task of a project (immediate mode)")
    a.add_argument("--url", default=None, help="Label Studio's address (default: LABEL_STUDIO_URL)")
    a.add_argument(
        "--api-key", default=None, help="personal access token or legacy token (default: LABEL_STUDIO_API_KEY)"
    )
    a.add_argument("--project", type=int, required=True)
    a.add_argument(
        "--function",
        "-f",
        default=None,
        help="a name (autoannotate functions), a module or a .py file (ours or one written for CVAT); "
        f"default: AUTOANNOTATE_FUNCTION, else {Settings.function}",
    )
    add_params(
        a,
        "-p",
        "--param",
        help="a parameter of the function (default: AUTOANNOTATE_PARAMS when --function is not given)",
    )
    a.add_argument("--conf-threshold", type=float, default=None, help="default: AUTOANNOTATE_CONF_THRESHOLD")
    a.add_argument("--overwrite", action="store_true", help="replace this model version's predictions too")
    a.add_argument("--max-tasks", type=int, default=None)
    _add_batch_options(a)
    a.add_argument(
        "--write-every",
        type=int,
        default=None,
        metavar="N",
        help=f"tasks per bulk upload of predictions (default {DEFAULT_WRITE_EVERY})",
    )
    a.add_argument(
        "--empty-predictions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="upload a prediction with no regions for tasks where nothing is found "
        "(default: AUTOANNOTATE_EMPTY_PREDICTIONS, else no: a re-run tries those tasks again)",
    )
    a.add_argument("--no-progress", action="store_true")
    split = a.add_mutually_exclusive_group()
    split.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="label only shard I of N (I from 0; tasks split by a hash of their id): start N of these, e.g. "
        "as an indexed batch job, and no task is predicted twice",
    )
    split.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="split the project over N local processes (one shard each) and print one combined report",
    )
    a.set_defaults(handler=cmd_annotate)
    _add_review_report(ls_sub)


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    """``--batch-size`` and ``--num-workers``, unset unless given (the settings' values then)."""
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"images per call of the function (default: AUTOANNOTATE_BATCH_SIZE, else {Settings.batch_size})",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help=f"image fetching/decoding threads (default: AUTOANNOTATE_NUM_WORKERS, else {Settings.num_workers})",
    )


def _function_name(value: str) -> str | None:
    return None if value.strip().lower() in _NONE_WORDS else value


def _positive(name: str, value: int | None, low: int = 1) -> int | None:
    if value is not None and value < low:
        raise BadParameterError(f"{name} must be >= {low}, got {value}")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..loading import parse_params

    settings = Settings.from_env()
    overrides: dict[str, Any] = {}
    given: dict[str, str] = {}  # the settings a flag gave: errors name the flag, not the variable
    for name in ("function", "interactive", "tracker"):
        if getattr(args, name) is not None:
            overrides[name], given[name] = _function_name(getattr(args, name)), _flag(name)
    for name in ("host", "empty_predictions", "encode_ahead"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    for name in ("track_frames", "conf_threshold", "batch_size", "num_workers", "port", "look_ahead"):
        if getattr(args, name) is not None:  # the same range as the variable's
            overrides[name] = checked(name, getattr(args, name), _flag(name))
    for name, values, flag in (
        ("params", args.param, "--param"),
        ("interactive_params", args.interactive_param, "--interactive-param"),
    ):
        if values:
            overrides[name], given[name] = parse_params(values), flag
    settings = replace(settings, **overrides)

    from ..label_studio.app import log_at, serve

    log_at(args.log_level)  # our lines (the Label Studio connection, every error answer) at the server's level
    serve(settings, log_level=args.log_level, given=given)  # a wrong function fails before the server starts
    return 0


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _connection(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """Label Studio's address and token: the options, else LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY."""
    url = args.url or settings.label_studio_url
    api_key = args.api_key or settings.label_studio_api_key
    if not url:
        raise BadParameterError("--url is required (or set LABEL_STUDIO_URL)")
    if not api_key:
        raise BadParameterError("--api-key is required (or set LABEL_STUDIO_API_KEY)")
    return url, api_key


def cmd_annotate(args: argparse.Namespace) -> int:
    from ..label_studio.project import annotate_project
    from ..label_studio.service import fetch_policy
    from ..loading import expect_kind, is_open_vocabulary, is_registered, load_function, parse_params

    settings = Settings.from_env()
    url, api_key = _connection(args, settings)
    write_every = args.write_every
    _positive("--write-every", write_every)
    checked("batch_size", args.batch_size, "--batch-size")  # the ranges of the variables
    checked("num_workers", args.num_workers, "--num-workers")
    given = {"params": "--param"} if args.param else {}  # errors name the flag, else the variable
    if args.function is not None:
        name, params = _function_name(args.function), parse_params(args.param)
        given["function"] = "--function"
    else:
        name, params = settings.function, parse_params(args.param) if args.param else settings.params
    if name is None:
        raise BadParameterError("annotate needs a detection function (--function NAME)")
    with named("function", name, "params", params, given):
        if is_registered(name):
            expect_kind(name, "detection")  # before any work, workers or not
        open_vocabulary = is_open_vocabulary(name)
    if open_vocabulary and "classes" not in params:  # sam3, owlv2, grounding_dino
        from ..label_studio.config import config_vocabulary, fetch_label_config, parse_config

        classes, prompts = config_vocabulary(
            parse_config(fetch_label_config(url, api_key, args.project)), params.get("prompts")
        )
        params = {**params, "classes": classes, "prompts": prompts}
    from ..label_studio.project import annotate_project_workers
    from ..sharding import parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    _positive("--workers", args.workers)
    common = dict(
        conf_threshold=args.conf_threshold if args.conf_threshold is not None else settings.conf_threshold,
        overwrite=args.overwrite,
        max_tasks=args.max_tasks,
        batch_size=args.batch_size if args.batch_size is not None else settings.batch_size,
        num_workers=args.num_workers if args.num_workers is not None else settings.num_workers,
        write_every=write_every if write_every is not None else DEFAULT_WRITE_EVERY,
        fetch_policy=fetch_policy(settings),
        empty_predictions=settings.empty_predictions if args.empty_predictions is None else args.empty_predictions,
    )
    if args.workers and args.workers > 1:  # each process loads the function itself
        report = annotate_project_workers(url, api_key, args.project, name, params, workers=args.workers, **common)
    else:
        with named("function", name, "params", params, given):
            function = load_function(name, "detection", **params)
        report = annotate_project(
            url, api_key, args.project, function, progress=not args.no_progress, shard=shard, **common
        )
    print(report.summary())
    return 0 if report.success else 1


def _add_review_report(ls_sub: Any) -> None:
    r = ls_sub.add_parser(
        "review-report",
        help="per model version: predictions annotators kept, edited or deleted; thresholds learned from that",
    )
    r.add_argument("--url", default=None, help="Label Studio's address (default: LABEL_STUDIO_URL)")
    r.add_argument("--api-key", default=None, help="default: LABEL_STUDIO_API_KEY")
    r.add_argument("--project", type=int, required=True)
    r.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION)
    r.add_argument(
        "--bound",
        choices=["wilson", "estimate"],
        default=DEFAULT_BOUND,
        help="wilson (default): the lower end of the precision's Wilson interval must reach the target; "
        "estimate: the observed precision (optimistic)",
    )
    r.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="keep this share of the tasks (by a hash of the task id) out of the calibration and report the "
        "precision its thresholds reach on them (default 0: no check)",
    )
    r.add_argument(
        "--min-decisions",
        type=int,
        default=DEFAULT_MIN_DECISIONS,
        help=f"per label, to calibrate it (default {DEFAULT_MIN_DECISIONS})",
    )
    r.add_argument("--match-iou", type=float, default=0.5, help="a region matches a prediction at this IoU")
    r.add_argument("--unchanged-iou", type=float, default=0.98, help="at or above: accepted unchanged")
    r.add_argument(
        "--plot", default=None, metavar="PNG", help="acceptance curve image (default: review-report-<project>.png)"
    )
    r.add_argument("--no-plot", action="store_true", help="no acceptance curve image")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(handler=cmd_review_report)


def cmd_review_report(args: argparse.Namespace) -> int:
    import json

    from ..label_studio.review_report import format_report, review_report

    settings = Settings.from_env()
    url, api_key = _connection(args, settings)
    with stdout_for_json(args.json):
        report = review_report(
            url,
            api_key,
            args.project,
            plot=None if args.no_plot else (args.plot or f"review-report-{args.project}.png"),
            **forwarded(args, "target_precision", "bound", "min_decisions", "holdout", "match_iou", "unchanged_iou"),
        )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
