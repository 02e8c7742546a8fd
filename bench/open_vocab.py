"""Benchmark: cost per image of the open-vocabulary functions (SAM 3, OWLv2, Grounding DINO) at
their real sizes with random weights (the compute does not depend on the weights; the tokenizer is
character-level, so prompts are a few tokens longer than with the real one), on COCO128 photos
(640 x 480-ish), by number of classes (1, 5, 20: COCO class names as prompts, batch 1) and batch size
(1 vs 8 images per ``detect_batch`` call, 5 classes).

    .venv/bin/python bench/open_vocab.py [--models owlv2,grounding_dino,sam3] [--repeats 1]

Each case runs ``repeats`` times after one warm-up call; seconds per image are the median. SAM 3
takes tens of seconds per image on 2 CPU cores, so it runs with fewer images: batch 1 and batch 2
instead of 8 (said so in the JSON). The baseline is YOLOX-Nano (ONNX, 80 fixed COCO classes) on
the same photos in the same run, when its weights are in ``AUTOANNOTATE_MODELS``. Writes
bench/results/open_vocab.json, with the load average: the machine may be shared with other jobs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

CLASS_COUNTS = (1, 5, 20)
#: Batch sizes per model: SAM 3 is a GPU model (tens of seconds per image here), so it gets 2, not 8.
BATCHES = {"owlv2": (1, 8), "grounding_dino": (1, 8), "sam3": (1, 2)}
#: The batched case runs with this many classes only (keeps a run within minutes on 2 shared cores).
BATCHED_CLASSES = 5


def photos(n: int) -> tuple[list, str]:
    import numpy as np
    import PIL.Image

    from autoannotate.images import load_image

    coco = Path(os.environ.get("AUTOANNOTATE_COCO128", ROOT.parent / "shared" / "data" / "coco128-train"))
    paths = sorted((coco / "images").glob("*.jpg"))[:n]
    if len(paths) == n:
        return [load_image(p) for p in paths], f"COCO128 ({n} photos)"
    rng = np.random.default_rng(0)
    return [PIL.Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) for _ in range(n)], "synthetic"


def per_image(fn, images, batch: int, repeats: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds of this process, all threads) per image."""
    from autoannotate.interface import DetectionFunctionContext

    ims = images[:batch]
    ctx = [DetectionFunctionContext(conf_threshold=0.3) for _ in ims]
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn.detect_batch(ctx, ims) if batch > 1 else fn.detect(ctx[0], ims[0])
        walls.append((time.perf_counter() - t0) / len(ims))
        cpus.append((time.process_time() - c0) / len(ims))
    return statistics.median(walls), statistics.median(cpus)


def bench_model(name: str, images, repeats: int) -> dict:
    import importlib

    from autoannotate.functions._coco import COCO_CLASSES

    module = importlib.import_module(f"autoannotate.functions.{name}")
    t0 = time.perf_counter()
    base = module.create(classes=["person"], pretrained=False)
    build = time.perf_counter() - t0
    cases = []
    warmed = False
    for n in CLASS_COUNTS:
        fn = base.for_classes([c.replace(" ", "_") for c in COCO_CLASSES[:n]])
        for batch in BATCHES[name]:
            if batch > 1 and n != BATCHED_CLASSES:
                continue
            if not warmed:  # first call: lazy initialisations, allocator warm-up
                fn.detect_batch([__import__("autoannotate").DetectionFunctionContext()], images[:1])
                warmed = True
            s, cpu = per_image(fn, images, batch, repeats)
            cases.append(
                {"classes": n, "batch": batch, "seconds_per_image": round(s, 3), "cpu_seconds_per_image": round(cpu, 3)}
            )
            print(f"{name:15s} classes={n:2d} batch={batch}: {s:.2f} s/image ({cpu:.2f} CPU s)", flush=True)
    del base
    gc.collect()
    out = {"build_seconds": round(build, 1), "cases": cases}
    one = next(c for c in cases if c["classes"] == BATCHED_CLASSES and c["batch"] == 1)
    many = next(c for c in cases if c["classes"] == BATCHED_CLASSES and c["batch"] > 1)
    out["batch_speedup_cpu"] = round(one["cpu_seconds_per_image"] / many["cpu_seconds_per_image"], 2)
    return out


def yolox_baseline(images, repeats: int) -> dict | None:
    from autoannotate.functions import yolox
    from autoannotate.weights import is_present

    if not is_present("yolox_nano"):
        return None
    fn = yolox.create("yolox_nano")
    per_image(fn, images, 1, 1)
    wall, cpu = per_image(fn, images, 1, repeats)
    return {
        "function": "yolox (yolox_nano, ONNX)",
        "seconds_per_image": round(wall, 4),
        "cpu_seconds_per_image": round(cpu, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="owlv2,grounding_dino,sam3")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip YOLOX-Nano")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "open_vocab.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    images, source = photos(8)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    baseline = yolox_baseline(images, max(3, args.repeats)) if args.baseline else None
    results: dict = {}
    for name in args.models.split(","):
        results[name] = bench_model(name, images, args.repeats)
        write(args.out, baseline, results, source, args.repeats, load_before, t0, done=False)
    if baseline:
        for r in results.values():
            for c in r["cases"]:
                c["cpu_x_yolox_nano"] = round(c["cpu_seconds_per_image"] / baseline["cpu_seconds_per_image"], 1)
    write(args.out, baseline, results, source, args.repeats, load_before, t0, done=True)


def write(out: Path, baseline, results: dict, source: str, repeats: int, load_before, t0: float, done: bool) -> None:
    """Write the JSON (after each model too, so a run stopped early keeps what it measured)."""
    import torch

    report = {
        "complete": done,
        "what": "seconds per image, real-size architectures with random weights, conf_threshold 0.3",
        "images": source,
        "repeats": repeats,
        "note": (
            "one warm-up call per model, then the median of `repeats` timed calls per case; batch 1 for 1, 5 "
            "and 20 classes, the batched case for 5 classes only; SAM 3 uses batch 2 instead of 8 (tens of "
            "seconds per image on this CPU). The machine was shared with other jobs while this ran (see "
            "loadavg): wall seconds are inflated; CPU seconds (this process, all threads) are the fairer "
            "cost, about 2x the wall time of an idle 2-core machine"
        ),
        "baseline": baseline,
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
