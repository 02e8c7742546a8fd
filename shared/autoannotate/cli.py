"""The ``autoannotate`` command.

    autoannotate functions
    autoannotate annotate IMAGES_DIR --function yolox [-p NAME=TYPE:VALUE ...] --output coco.json
    autoannotate weights list
    autoannotate weights download NAME [NAME ...]

Exit status: 0 when every image was annotated, 1 when the run completed with failed images,
2 for bad arguments, a bad function or a label mapping error.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .errors import AutoAnnotateError
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, DEFAULT_WRITE_EVERY

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def list_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by extension), sorted. A file given as root is returned alone."""
    if root.is_file():
        return [root]
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _add_function_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--function", "-f", help="a predefined function (see `autoannotate functions`)")
    g.add_argument("--function-module", help="an importable module with create() or spec/detect")
    g.add_argument("--function-file", help="a .py file with create() or spec/detect")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=TYPE:VALUE",
        help="a parameter for the function's create(); TYPE is str, int, float or bool (repeatable)",
    )


def function_from_args(args: argparse.Namespace):
    from .loading import load_function, parse_params

    source = args.function or args.function_module or args.function_file or "yolox"
    return load_function(source, **parse_params(args.param))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoannotate", description="Label images with models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("functions", help="list predefined functions and their parameters")

    a = sub.add_parser("annotate", help="annotate a folder of images into a COCO file")
    a.add_argument("images", type=Path, help="a folder of images (searched recursively) or one image")
    _add_function_args(a)
    a.add_argument("--conf-threshold", type=float, default=None, help="drop shapes scoring below this (0-1)")
    a.add_argument("--conv-mask-to-poly", action="store_true", help="ask for polygons instead of masks")
    a.add_argument("--output", "-o", type=Path, required=True, help="COCO JSON file to write")
    a.add_argument("--overlays", type=Path, default=None, help="also write PNGs with the shapes drawn here")
    a.add_argument(
        "--label-map",
        default="",
        metavar="FUNCTION_NAME=NAME,...",
        help="rename the function's labels in the output, e.g. car=vehicle,person=pedestrian",
    )
    a.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per model call")
    a.add_argument("--num-workers", type=int, default=DEFAULT_NUM_WORKERS, help="image decoding threads")
    a.add_argument(
        "--write-every",
        type=int,
        default=DEFAULT_WRITE_EVERY,
        help="rewrite the output file after this many images (an interrupted run keeps them)",
    )
    a.add_argument("--no-progress", action="store_true", help="no progress bar")

    wp = sub.add_parser("weights", help="model weights: what is on this machine, fetch ahead of time")
    wsub = wp.add_subparsers(dest="weights_command", required=True)
    wsub.add_parser("list", help="every known model and where its weights are (or that they are missing)")
    dl = wsub.add_parser("download", help="download weights into the cache (for Docker images, air-gapped installs)")
    dl.add_argument("names", nargs="+", metavar="NAME", help="a name from `autoannotate weights list`")

    try:
        from .label_studio.cli import add_subcommands as add_ls
    except ImportError:  # the integration is not part of this build
        pass
    else:
        add_ls(sub)
    from .fiftyone_cli import add_subcommands as add_fo

    add_fo(sub)
    return parser


def cmd_functions(args: argparse.Namespace) -> int:
    from .loading import REGISTRY, describe_parameters

    for name, (module_name, kind) in REGISTRY.items():
        module = importlib.import_module(module_name)
        doc = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
        print(f"{name}\n    [{kind}] {doc}\n    {describe_parameters(module.create)}\n")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from .weights import REGISTRY, cache_dir, offline, present, resolve, search_dirs

    if args.weights_command == "list":
        where = present()
        width = max(len(n) for n in REGISTRY)
        for name, entry in REGISTRY.items():
            source = entry.repo_id or entry.url
            print(f"{name:<{width}}  {str(where[name]) if where[name] else 'missing':<60}  {source}")
        print(f"\nsearched: {', '.join(str(d) for d in search_dirs())} and the Hugging Face cache")
        print(f"downloads go to {cache_dir()}" + (" (disabled: AUTOANNOTATE_OFFLINE=1)" if offline() else ""))
        return 0
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        raise AutoAnnotateError(f"unknown weights {unknown}; known: {sorted(REGISTRY)}")
    for name in args.names:
        print(f"{name}: {resolve(name)}")
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from .driver import iter_annotations
    from .export import CocoSink
    from .loading import parse_label_map
    from .run import run

    if not args.images.exists():
        raise AutoAnnotateError(f"{args.images} does not exist")
    paths = list_images(args.images)
    if not paths:
        raise AutoAnnotateError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {args.images}")
    function = function_from_args(args)
    label_map = parse_label_map(args.label_map)
    unknown = sorted(set(label_map) - set(function.spec.label_names))
    if unknown:
        raise AutoAnnotateError(f"--label-map names labels the function does not have: {unknown}")
    labels = [replace(lbl, name=label_map.get(lbl.name, lbl.name)) for lbl in function.spec.labels]
    root = args.images if args.images.is_dir() else args.images.parent
    sink = CocoSink(
        args.output,
        labels,
        root=root,
        overlays=args.overlays,
        info={"description": "autoannotate", "model_version": getattr(function, "model_version", "")},
    )

    def process(todo, report):
        return iter_annotations(
            function,
            todo,
            conf_threshold=args.conf_threshold,
            conv_mask_to_poly=args.conv_mask_to_poly,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            progress=not args.no_progress,
            report=report,
            total=len(todo),
        )

    report = run([(str(p), p) for p in paths], process, sink, write_every=args.write_every, key_prefix="coco")
    print(report.summary())
    coco = sink.builder.coco()
    print(f"wrote {args.output} ({len(coco['images'])} images, {len(coco['annotations'])} annotations)")
    if args.overlays:
        print(f"overlays in {args.overlays}")
    return 0 if report.success else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    handlers = {"functions": cmd_functions, "annotate": cmd_annotate, "weights": cmd_weights}
    handler = handlers.get(args.command) or getattr(args, "handler", None)
    if handler is None:  # calling it would fail the same way
        raise TypeError(f"no handler for command {args.command!r}")
    try:
        return handler(args)
    except AutoAnnotateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
