"""Accuracy harness for the open-vocabulary functions with their real weights: COCO128's 80 class
names as the prompts (``traffic light``, ``hair drier``, ...), box mAP through the same evaluator
as the YOLOX figures (``tests/coco_eval.evaluate_boxes``, pycocotools), YOLOX-Nano in the same run
as the closed-vocabulary reference. SAM 3's masks are scored by their boxes.

    .venv/bin/python bench/open_vocab_accuracy.py [--functions owlv2,grounding_dino,sam3] \\
        [--device cuda] [--limit 128] [--conf-threshold 0.05] [--batch-size 4]

It needs the weights (``autoannotate weights download owlv2-base grounding-dino-tiny sam3`` on a
machine with internet access, or the folders in ``AUTOANNOTATE_MODELS``) and COCO128
(``AUTOANNOTATE_COCO128``). A function whose weights are missing is refused with how to get them
(exit status 2 when none can run); nothing is estimated. Writes bench/results/open_vocab_accuracy.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT))

WEIGHTS = {"owlv2": "owlv2-base", "grounding_dino": "grounding-dino-tiny", "sam3": "sam3"}


def coco128() -> Path:
    p = Path(os.environ.get("AUTOANNOTATE_COCO128", ROOT.parent / "shared" / "data" / "coco128-train"))
    if not (p / "detections.json").is_file():
        sys.exit(f"COCO128 not found at {p}: set AUTOANNOTATE_COCO128 to the folder with images/ and detections.json")
    return p


def evaluate(fn, data: Path, limit: int, conf_threshold: float, batch_size: int) -> dict:
    """Run ``fn`` over COCO128 (labels mapped by name onto its categories) and score the boxes."""
    from autoannotate.mapping import TargetLabel
    from autoannotate.masks import mask_bbox
    from autoannotate.run import annotate_images
    from tests.coco_eval import evaluate_boxes, load_gt

    gt = load_gt(data / "detections.json")
    images = gt["images"][:limit]
    targets = [TargetLabel(c["name"], c["id"]) for c in gt["categories"]]
    items = [(im["id"], data / "images" / im["file_name"]) for im in images]
    t0 = time.perf_counter()
    results, report = annotate_images(
        fn, items, target_labels=targets, conf_threshold=conf_threshold, batch_size=batch_size, progress=True
    )
    seconds = time.perf_counter() - t0
    dets = []
    for r in results:
        for s in r.shapes or []:
            box = mask_bbox(s.bitmap) if s.type == "mask" else s.points
            if box is None:
                continue
            x1, y1, x2, y2 = box
            dets.append(
                {"image_id": r.key, "category_id": s.label_id, "score": s.score, "bbox": [x1, y1, x2 - x1, y2 - y1]}
            )
    gt_sub = data / "detections.json"
    if limit < len(gt["images"]):  # score only the images that ran
        keep = {im["id"] for im in images}
        sub = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
        gt_sub = Path(os.environ.get("TMPDIR", "/tmp")) / "open_vocab_accuracy_gt.json"
        gt_sub.write_text(json.dumps(sub))
    scores = evaluate_boxes(gt_sub, dets)
    return {
        "images": len(images),
        "failed_images": len(report.failures),
        "detections": len(dets),
        "mAP": round(scores["map"], 4),
        "mAP50": round(scores["map50"], 4),
        "seconds_per_image": round(seconds / max(1, len(images)), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--functions", default="owlv2,grounding_dino,sam3")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--limit", type=int, default=128, help="the first N COCO128 images")
    ap.add_argument("--conf-threshold", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "open_vocab_accuracy.json")
    args = ap.parse_args()
    data = coco128()
    names = [c["name"] for c in json.loads((data / "detections.json").read_text())["categories"]]
    wanted = args.functions.split(",")
    unknown = [f for f in wanted if f not in WEIGHTS]
    if unknown:
        sys.exit(f"unknown functions {unknown}; choose from {list(WEIGHTS)}")
    missing = {}
    for f in wanted:
        if not importlib.import_module(f"autoannotate.functions.{f}").weights_available():
            missing[f] = WEIGHTS[f]
    for f, w in missing.items():
        print(
            f"refusing {f}: its weights {w!r} are not on this machine. Run `autoannotate weights download {w}` "
            f"where there is internet access and copy the folder {w}/ into AUTOANNOTATE_MODELS "
            "(`autoannotate weights list` shows where weights are looked for). No figure is estimated.",
            file=sys.stderr,
        )
    runnable = [f for f in wanted if f not in missing]
    if not runnable:
        return 2
    results: dict = {}
    from autoannotate.functions import yolox
    from autoannotate.weights import is_present

    if is_present("yolox_nano"):
        results["yolox_nano (reference)"] = evaluate(
            yolox.create("yolox_nano"), data, args.limit, 0.01, args.batch_size
        )
    for f in runnable:
        fn = importlib.import_module(f"autoannotate.functions.{f}").create(classes=names, device=args.device)
        results[f] = {
            "weights": fn.model_version,
            **evaluate(fn, data, args.limit, args.conf_threshold, args.batch_size),
        }
        print(f, results[f], flush=True)
    out = {
        "what": "box mAP on COCO128 with its 80 class names as prompts (pycocotools, tests/coco_eval.py)",
        "conf_threshold": args.conf_threshold,
        "device": args.device,
        "refused_missing_weights": missing,
        "results": results,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
