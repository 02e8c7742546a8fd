"""``autoannotate label-studio serve | annotate``."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_subcommands(sub: Any) -> None:
    ls = sub.add_parser("label-studio", help="Label Studio: the ML backend service and project pre-annotation")
    ls_sub = ls.add_subparsers(dest="ls_command", required=True)

    s = ls_sub.add_parser("serve", help="serve the ML backend (settings also from AUTOANNOTATE_* variables)")
    s.add_argument("--function", "-f", default=os.environ.get("AUTOANNOTATE_FUNCTION", "yolox"),
                   help="detection function for pre-annotation ('none' to disable; default yolox)")
    s.add_argument("--interactive", default=os.environ.get("AUTOANNOTATE_INTERACTIVE", "grabcut"),
                   help="interactive function for clicks/boxes: grabcut (default), sam, or none")
    s.add_argument("--tracker", default=os.environ.get("AUTOANNOTATE_TRACKER", "opencv_tracker"),
                   help="tracking function for video tasks: opencv_tracker (default), sam_tracker, or none")
    s.add_argument("--track-frames", type=int, default=int(os.environ.get("AUTOANNOTATE_TRACK_FRAMES", "30")),
                   help="how many frames a drawn video box is tracked")
    s.add_argument("-p", "--param", action="append", default=[], metavar="NAME=TYPE:VALUE",
                   help="a parameter of the detection function")
    s.add_argument("--interactive-param", action="append", default=[], metavar="NAME=TYPE:VALUE")
    s.add_argument("--conf-threshold", type=float, default=None)
    s.add_argument("--host", default=os.environ.get("AUTOANNOTATE_HOST", "0.0.0.0"))
    s.add_argument("--port", type=int, default=int(os.environ.get("AUTOANNOTATE_PORT", "9090")))
    s.add_argument("--log-level", default="info")
    s.set_defaults(handler=cmd_serve)

    a = ls_sub.add_parser("annotate", help="pre-annotate every task of a project (immediate mode)")
    a.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL"), required=not os.environ.get("LABEL_STUDIO_URL"))
    a.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"),
                   required=not os.environ.get("LABEL_STUDIO_API_KEY"), help="personal access token (or legacy token)")
    a.add_argument("--project", type=int, required=True)
    a.add_argument("--function", "-f", default="yolox")
    a.add_argument("-p", "--param", action="append", default=[], metavar="NAME=TYPE:VALUE")
    a.add_argument("--conf-threshold", type=float, default=None)
    a.add_argument("--overwrite", action="store_true", help="replace this model version's predictions too")
    a.add_argument("--max-tasks", type=int, default=None)
    a.add_argument("--batch-size", type=int, default=4)
    a.add_argument("--upload-every", type=int, default=32, help="tasks per bulk upload")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(handler=cmd_annotate)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..loading import parse_params
    from .app import Settings, serve

    settings = Settings.from_env()
    settings.function = None if args.function in ("none", "") else args.function
    settings.interactive = None if args.interactive in ("none", "") else args.interactive
    settings.tracker = None if args.tracker in ("none", "") else args.tracker
    settings.track_frames = args.track_frames
    if args.param:
        settings.params = parse_params(args.param)
    if args.interactive_param:
        settings.interactive_params = parse_params(args.interactive_param)
    if args.conf_threshold is not None:
        settings.conf_threshold = args.conf_threshold
    serve(settings, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from ..loading import load_function, parse_params
    from .project import annotate_project

    function = load_function(args.function, **parse_params(args.param))
    report = annotate_project(
        args.url, args.api_key, args.project, function, conf_threshold=args.conf_threshold,
        overwrite=args.overwrite, max_tasks=args.max_tasks, batch_size=args.batch_size,
        upload_every=args.upload_every, progress=not args.no_progress,
    )
    print(report.summary())
    return 0 if report.success else 1
