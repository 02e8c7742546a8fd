"""Benchmark: GrabCut (the weight-free interactive default) on real objects, against the box itself.

    .venv/bin/python bench/grabcut_quality.py [--min-area 2000] [--limit N]

Every non-crowd COCO128 instance of at least ``--min-area`` px2 (its polygons rasterized as the
truth) is prompted twice: with its box, and with one click at the point of the object farthest
from its border. Printed per prompt kind: mean IoU against the truth and the number of empty
masks, for GrabCut before the fallback (``fallback=False``), GrabCut as shipped (the degenerate
results replaced, :func:`autoannotate.functions.grabcut.fallback_mask`), the box filled as a
mask (the baseline) and the ellipse inscribed in the box. Writes bench/results/grabcut_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))


def main() -> None:
    import cv2

    import autoannotate as aa
    from autoannotate.functions import grabcut
    from autoannotate.masks import polygon_to_mask

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-area", type=float, default=2000.0)
    parser.add_argument("--limit", type=int, default=None, help="at most this many instances (by id)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "grabcut_quality.json")
    args = parser.parse_args()

    coco = Path(os.environ.get("AUTOANNOTATE_COCO128", ROOT.parent / "shared" / "data" / "coco128-train"))
    data = json.loads((coco / "instances.json").read_text())
    files = {im["id"]: im for im in data["images"]}
    anns = sorted(
        (a for a in data["annotations"] if not a["iscrowd"] and a["area"] >= args.min_area), key=lambda a: a["id"]
    )[: args.limit]
    raw_fn = grabcut.create(fallback=False)  # GrabCut alone; the shipped result is fallback_mask() of it
    shipped_fn = grabcut.create()
    ctx = aa.InteractiveFunctionContext("bench")
    rows = []
    started = time.perf_counter()
    current: tuple[int, object, object] | None = None
    for a in anns:
        if current is None or current[0] != a["image_id"]:
            image = aa.load_image(coco / "images" / files[a["image_id"]]["file_name"])
            current = (a["image_id"], image, raw_fn.encode(ctx, image))
        _, image, enc = current
        truth = np.zeros((image.height, image.width), bool)
        for poly in a["segmentation"]:
            truth |= polygon_to_mask(poly, image.size)
        x, y, w, h = a["bbox"]
        box = (x, y, x + w, y + h)
        filled = np.zeros_like(truth)
        filled[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = True
        ellipse = grabcut.box_estimate(box, truth.shape)
        (raw,) = raw_fn.segment(ctx, enc, aa.InteractivePrompt(boxes=[box]))
        shipped = grabcut.fallback_mask(raw.mask, box)
        dist = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 5)
        cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
        (click,) = shipped_fn.segment(ctx, enc, aa.InteractivePrompt(positive_points=[(cx + 0.5, cy + 0.5)]))
        rows.append(
            {
                "id": a["id"],
                "box_raw": iou(raw.mask, truth),
                "box_shipped": iou(shipped, truth),
                "box_fill": iou(filled, truth),
                "ellipse": iou(ellipse, truth),
                "click": iou(click.mask, truth),
                "empty_box_raw": not raw.mask.any(),
                "empty_box_shipped": not shipped.any(),
                "empty_click": not click.mask.any(),
                "fell_back": bool(shipped is not raw.mask),
            }
        )
    seconds = time.perf_counter() - started
    mean = lambda k: round(float(np.mean([r[k] for r in rows])), 4)  # noqa: E731
    count = lambda k: int(sum(r[k] for r in rows))  # noqa: E731
    summary = {
        "instances": len(rows),
        "min_area_px2": args.min_area,
        "box_prompt": {
            "grabcut_before_fallback": {"mean_iou": mean("box_raw"), "empty": count("empty_box_raw")},
            "grabcut_shipped": {
                "mean_iou": mean("box_shipped"),
                "empty": count("empty_box_shipped"),
                "fell_back": count("fell_back"),
            },
            "box_fill_baseline": {"mean_iou": mean("box_fill")},
            "inscribed_ellipse": {"mean_iou": mean("ellipse")},
        },
        "click_prompt": {"grabcut_shipped": {"mean_iou": mean("click"), "empty": count("empty_click")}},
        "seconds": round(seconds, 1),
    }
    b = summary["box_prompt"]
    print(f"{len(rows)} COCO128 instances >= {args.min_area:g} px2 ({seconds:.0f} s)")
    print(
        f"box prompts: GrabCut before fallback {b['grabcut_before_fallback']['mean_iou']:.3f} "
        f"({b['grabcut_before_fallback']['empty']} empty); shipped {b['grabcut_shipped']['mean_iou']:.3f} "
        f"({b['grabcut_shipped']['empty']} empty, {b['grabcut_shipped']['fell_back']} fell back); "
        f"box fill {b['box_fill_baseline']['mean_iou']:.3f}; inscribed ellipse {b['inscribed_ellipse']['mean_iou']:.3f}"
    )
    c = summary["click_prompt"]["grabcut_shipped"]
    print(f"single-click prompts: GrabCut {c['mean_iou']:.3f} ({c['empty']} empty)")
    out = {"command": "python bench/grabcut_quality.py " + " ".join(sys.argv[1:]), **summary, "per_instance": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
