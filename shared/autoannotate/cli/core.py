"""``autoannotate functions | annotate | weights``: the core commands (no integration needed).

autoannotate functions
autoannotate annotate IMAGES_DIR --function yolox [-p NAME=TYPE:VALUE ...] --output coco.json
autoannotate annotate IMAGES_DIR --function owlv2 --classes "stop sign:bbox,yield:polygon" -o coco.json
autoannotate weights list
autoannotate weights download NAME [NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import AutoAnnotateError
from ..settings import DEFAULT_BATCH_SIZE, DEFAULT_FUNCTION, DEFAULT_NUM_WORKERS, DEFAULT_WRITE_EVERY

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def list_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by extension), sorted. A file given as root is returned alone."""
    if root.is_file():
        return [root]
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def add_params(p: argparse.ArgumentParser, *flags: str, help: str) -> None:
    """A repeatable ``NAME=TYPE:VALUE`` option (CVAT's syntax, :func:`autoannotate.loading.parse_params`)."""
    p.add_argument(*flags, action="append", default=[], metavar="NAME=TYPE:VALUE", help=help)


def forwarded(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options ``names`` as keyword arguments of the function a command calls (each option's
    ``dest`` is that function's parameter name)."""
    return {name: getattr(args, name) for name in names}


@contextlib.contextmanager
def stdout_for_json(json_output: bool) -> Iterator[None]:
    """With ``--json``, stdout must be exactly the JSON a command prints after this block: what
    libraries print or log to stdout meanwhile (FiftyOne's "Evaluating detections...", whose
    logging handler holds the stdout of the time it was imported) goes to stderr instead."""
    if not json_output:
        yield
        return
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    moved = [
        (h, h.stream)
        for lg in loggers
        if isinstance(lg, logging.Logger)
        for h in lg.handlers
        if isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.__stdout__)
    ]
    for h, _ in moved:
        h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h, stream in moved:
            h.setStream(stream)


def _add_function_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--function", "-f", help="a predefined or installed function (see `autoannotate functions`)")
    g.add_argument("--function-module", help="an importable module with create() or spec/detect")
    g.add_argument("--function-file", help="a .py file with create() or spec/detect")
    add_params(
        p, "-p", "--param", help="a parameter for the function's create(); TYPE is str, int, float or bool (repeatable)"
    )


def function_from_args(args: argparse.Namespace, class_names: Sequence[str] | None = None):
    """The function the arguments name; an open-vocabulary one is built to find ``class_names``
    (``--classes``) unless ``-p classes=...`` names its own."""
    from ..loading import import_module_or_file, load_function, parse_params, with_classes

    given = args.function_module or args.function_file
    source = import_module_or_file(given) if given else args.function or DEFAULT_FUNCTION
    return load_function(source, "detection", **with_classes(source, parse_params(args.param), class_names))


#: ``--classes`` output types of the COCO file: boxes, polygons, masks (RLE).
CLI_OUTPUTS = ("bbox", "polygon", "mask")


def parse_cli_classes(text: str | None) -> dict[str, str | None]:
    """``"stop sign:bbox, yield:polygon"`` -> ``{"stop sign": "bbox", "yield": "polygon"}`` (a
    missing type is None: the function's own shapes)."""
    from ..loading import split_list

    out: dict[str, str | None] = {}
    for part in split_list(text):
        name, _, kind = part.rpartition(":") if ":" in part else (part, "", "")
        name, kind = name.strip(), kind.strip().lower()
        if kind and kind not in CLI_OUTPUTS:
            raise AutoAnnotateError(f"--classes {part!r}: output type {kind!r} is not one of {list(CLI_OUTPUTS)}")
        if not name:
            raise AutoAnnotateError(f"--classes {part!r}: no class name")
        if name in out:
            raise AutoAnnotateError(f"--classes names {name!r} twice")
        out[name] = kind or None
    return out


def apply_class_outputs(function, outputs: dict[str, str | None]):
    """``(function, conv_mask_to_poly)`` giving each ``--classes`` entry its output type: box-only
    labels asked as polygon/mask are refined by the interactive default (``auto``); mask labels
    become polygons when all ask polygon. Refuses what a COCO file cannot express per class."""
    from ..refine import refined

    labels = {lbl.name: lbl for lbl in function.spec.labels}
    unknown = [n for n in outputs if n not in labels]
    if unknown:
        raise AutoAnnotateError(
            f"--classes names labels the function does not have: {unknown}; its labels: {list(labels)}"
        )
    refine = {n: k for n, k in outputs.items() if k in ("polygon", "mask") and labels[n].type == "rectangle"}
    mask_kinds = {k for n, k in outputs.items() if k and labels[n].type in ("mask", "any")}
    if "bbox" in mask_kinds or len(mask_kinds) > 1:
        raise AutoAnnotateError(
            f"--classes: {function.spec.label_names} give masks; ask all of them as mask or all as polygon "
            "(a COCO annotation carries its box either way)"
        )
    return refined(function, refine), mask_kinds == {"polygon"}


def add_subcommands(sub: Any) -> None:
    from ..registry import FUNCTION_KINDS

    f = sub.add_parser("functions", help="list the predefined and installed functions and their parameters")
    f.add_argument(
        "--kind",
        choices=FUNCTION_KINDS,
        default=None,
        help="only functions of this kind: detection (pre-annotation), interactive (clicks and boxes), "
        "tracking (videos)",
    )
    f.set_defaults(handler=cmd_functions)

    a = sub.add_parser("annotate", help="annotate a folder of images into a COCO file")
    a.add_argument("images", type=Path, help="a folder of images (searched recursively) or one image")
    _add_function_args(a)
    a.add_argument("--conf-threshold", type=float, default=None, help="drop shapes scoring below this (0-1)")
    a.add_argument("--conv-mask-to-poly", action="store_true", help="ask for polygons instead of masks")
    a.add_argument(
        "--classes",
        default="",
        metavar="NAME[:TYPE],...",
        help="classes to find and their output (bbox, polygon, mask), e.g. 'stop sign:bbox,yield:polygon'; "
        "open-vocabulary functions (sam3, owlv2, grounding_dino) search these names",
    )
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
    a.set_defaults(handler=cmd_annotate)

    wp = sub.add_parser("weights", help="model weights: what is on this machine, fetch ahead of time")
    wsub = wp.add_subparsers(dest="weights_command", required=True)
    wsub.add_parser("list", help="every known model and where its weights are (or that they are missing)")
    dl = wsub.add_parser("download", help="download weights into the cache (for Docker images, air-gapped installs)")
    dl.add_argument("names", nargs="+", metavar="NAME", help="a name from `autoannotate weights list`")
    wp.set_defaults(handler=cmd_weights)


def cmd_functions(args: argparse.Namespace) -> int:
    from ..loading import describe_parameters
    from ..registry import BrokenFunction, all_functions

    for name, fn in all_functions().items():
        if args.kind and (isinstance(fn, BrokenFunction) or fn.record.kind != args.kind):
            continue  # a broken one's kind is unknown: the full listing shows it
        if isinstance(fn, BrokenFunction):
            print(f"{name}\n    [broken] {fn.exception()}\n")
            continue
        rec = fn.record
        needs = f"    needs: pip install 'autoannotate[{','.join(rec.extras)}]'\n" if rec.extras else ""
        origin = "" if fn.origin.startswith("autoannotate.") else f" (from {fn.origin})"
        license = f"    license: {rec.license}\n" if rec.license else ""
        print(f"{name}{origin}\n    [{rec.kind}] {rec.summary}\n{needs}{license}    {describe_parameters(fn.create)}\n")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from ..weights import cache_dir, offline, present, registry, resolve, search_dirs

    known = registry()
    if args.weights_command == "list":
        where = present()
        width = max(len(n) for n in known)
        for name, entry in known.items():
            source = entry.repo_id or entry.url
            print(f"{name:<{width}}  {str(where[name]) if where[name] else 'missing':<60}  {source}")
        print(f"\nsearched: {', '.join(str(d) for d in search_dirs())} and the Hugging Face cache")
        print(f"downloads go to {cache_dir()}" + (" (disabled: AUTOANNOTATE_OFFLINE=1)" if offline() else ""))
        return 0
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise AutoAnnotateError(f"unknown weights {unknown}; known: {sorted(known)}")
    for name in args.names:
        print(f"{name}: {resolve(name)}")
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from ..driver import iter_annotations
    from ..export import CocoSink
    from ..interface import model_version
    from ..loading import parse_label_map
    from ..mapping import LabelMapping, target_labels_from_spec
    from ..run import processor, run

    if not args.images.exists():
        raise AutoAnnotateError(f"{args.images} does not exist")
    paths = list_images(args.images)
    if not paths:
        raise AutoAnnotateError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {args.images}")
    outputs = parse_cli_classes(args.classes)
    function = function_from_args(args, list(outputs))
    function, to_polygons = apply_class_outputs(function, outputs)
    label_map = parse_label_map(args.label_map)
    unknown = sorted(set(label_map) - set(function.spec.label_names))
    if unknown:
        raise AutoAnnotateError(f"--label-map names labels the function does not have: {unknown}")
    # --classes with a function that knows more labels (yolox's 80): only the listed ones are kept
    kept = [lbl for lbl in function.spec.labels if not outputs or lbl.name in outputs]
    mapping = None
    if len(kept) < len(function.spec.labels):
        names = {lbl.name for lbl in kept}
        targets = [t for t in target_labels_from_spec(function.spec) if t.name in names]
        mapping = LabelMapping.build(function.spec, targets, allow_unmatched=True)
    labels = [replace(lbl, name=label_map.get(lbl.name, lbl.name)) for lbl in kept]
    root = args.images if args.images.is_dir() else args.images.parent
    sink = CocoSink(
        args.output,
        labels,
        root=root,
        overlays=args.overlays,
        info={"description": "autoannotate", "model_version": model_version(function, "")},
    )

    process = processor(
        iter_annotations,
        function,
        mapping=mapping,
        conf_threshold=args.conf_threshold,
        conv_mask_to_poly=args.conv_mask_to_poly or to_polygons,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=not args.no_progress,
    )

    report = run([(str(p), p) for p in paths], process, sink, write_every=args.write_every, key_prefix="coco")
    print(report.summary())
    coco = sink.builder.coco()
    print(f"wrote {args.output} ({len(coco['images'])} images, {len(coco['annotations'])} annotations)")
    if args.overlays:
        print(f"overlays in {args.overlays}")
    return 0 if report.success else 1
