"""Benchmark: every torch family on one GPU, at real size with random weights (the compute does not
depend on the weights), in float32 and half precision.

    .venv/bin/python bench/gpu.py --device cuda            # on a GPU, under 8 minutes
    .venv/bin/python bench/gpu.py --device cpu --quick     # dry run of every code path (tiny models)

Per family (``--families``, default all):

- throughput at batch sizes 1 / 8 / 32: images per second of ``detect_batch`` (open-vocabulary
  and torchvision functions, ``32`` images of 640 x 480), masks per second of ``segment_boxes``
  with 1 / 8 / 32 boxes on one encoded image (interactive models; plus the image encoder's
  images per second and the first click: encode + one click on a new image), frames per second
  of one video session following 1 / 8 / 32 objects (video models);
- peak GPU memory of each measure (``torch.cuda.max_memory_allocated``; null on the CPU);
- float32 against half precision (``bfloat16``; ``float16`` too on CUDA): the speed ratio at
  batch 8 and the largest differences on the same inputs (scores, box corners in pixels, the
  smallest mask IoU). Grounding DINO runs in float32 only (its half precision is refused, see
  ``autoannotate.functions.grounding_dino.float32_only``);
- FiftyOne ``annotate_dataset`` against a bare loop (decode + ``detect_batch``) with OWLv2 on the
  device, batch size 8.

Time: ``--budget`` seconds (default 420) shared by the sections in order; a section that runs out
of time stops where it is and says so (``"cut": true``); the JSON is written after every section,
so a run that is killed keeps what it measured. ``--quick`` uses the tiny test configurations
(tests/functions), batch sizes 1 / 2 and two frames: it checks the script, its figures mean nothing.

Writes bench/results/gpu.json (``--out``; a ``--quick`` run writes to the temporary folder: a dry
run is no result) and prints a Markdown table for docs/benchmarks.md's GPU section (also written
next to the JSON as ``gpu.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared"))

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from gpu_models import FAMILIES, INTERACTIVE, VIDEO, build  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gpu.json"


# --------------------------------------------------------------------------------------------
# measuring


class Clock:
    """The run's time budget: each section gets an equal share of what is left."""

    def __init__(self, budget: float, sections: int) -> None:
        self.end = time.perf_counter() + budget
        self.left = sections

    def section(self) -> float:
        now = time.perf_counter()
        share = max(0.0, (self.end - now) / max(self.left, 1))
        self.left -= 1
        return now + share


class Cut(Exception):
    """The section's time is over."""


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def rate(work, items: int, deadline: float, *, min_s: float, reps: int) -> dict:
    """Items per second of ``work()`` (one warm-up call, then up to ``reps`` timed calls or
    ``min_s`` seconds), and the peak GPU memory."""
    import torch

    if time.perf_counter() > deadline:
        raise Cut
    peak_reset()
    try:
        work()
        sync()
        n, t0 = 0, time.perf_counter()
        while n < reps and (n == 0 or time.perf_counter() - t0 < min_s) and time.perf_counter() < deadline:
            work()
            sync()
            n += 1
        elapsed = time.perf_counter() - t0
    except torch.cuda.OutOfMemoryError:
        peak_reset()
        return {"error": "out of memory"}
    return {"per_s": round(items * n / elapsed, 2), "calls": n, "peak_gpu_mb": peak_mb()}


def images(n: int, size: tuple[int, int], seed: int = 0) -> list[PIL.Image.Image]:
    """Photo-like synthetic images: smooth gradients, a few bright disks, noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for k in range(n):
        img = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy + 7 * k) % 255], -1).astype(np.float64)
        for _ in range(3):
            cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0.08, 0.2) * h
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        out.append(PIL.Image.fromarray(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)))
    return out


def grid_boxes(n: int, size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    w, h = size
    side = int(np.ceil(np.sqrt(n)))
    bw, bh = w / side, h / side
    return [
        ((i % side) * bw + 2, (i // side) * bh + 2, (i % side + 1) * bw - 2, (i // side + 1) * bh - 2) for i in range(n)
    ]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else float((a & b).sum() / union)


# --------------------------------------------------------------------------------------------
# one family: throughput at 1/8/32, then what half precision changes


def outputs(name: str, fn: Any, cfg: dict) -> dict:
    """What the family returns on fixed inputs, for comparing precisions: ``scores``, ``boxes``
    (pixels, aligned query by query) and ``masks``."""
    import autoannotate as aa
    from autoannotate.interface import TrackableShape, TrackingFunctionContext

    ims = cfg["images"]
    if name in INTERACTIVE:
        ctx = aa.InteractiveFunctionContext("im")
        enc = fn.encode(ctx, ims[0])
        res = fn.segment_boxes(ctx, enc, grid_boxes(4, ims[0].size))
        return {"scores": np.array([r.score for r in res]), "masks": [r.mask for r in res]}
    if name in VIDEO:
        frames = [fn.preprocess_image(TrackingFunctionContext(k), im) for k, im in enumerate(ims[:3])]
        session = fn.video_session()
        for i, b in enumerate(grid_boxes(4, ims[0].size)):
            session.add(i, 0, frames[0], TrackableShape("rectangle", b))
        runs = [session.flush()] + [session.propagate(k, frames[k]) for k in range(1, len(frames))]
        return {
            "scores": np.array([s for r in runs for _, s in r.values()]),
            "masks": [m for r in runs for m, _ in r.values()],
        }
    if name in ("owlv2", "grounding_dino", "sam3"):
        d = fn.predict(ims[:2], 0.0)
        return {
            "scores": np.concatenate([x.scores for x in d]),
            "boxes": np.concatenate([x.boxes for x in d]),
            "masks": None if d[0].masks is None else [m for x in d for m in x.masks],
        }
    out = fn.run_model(ims[:2])
    if name == "torchvision_classification":
        return {"scores": np.concatenate([o["probs"].numpy() for o in out])}
    # detectors: the float32 run's top boxes, matched by label and IoU in the other run
    return {"detections": [{k: v.numpy() for k, v in o.items()} for o in out]}


def compare(a: dict, b: dict) -> dict:
    out: dict[str, Any] = {}
    if "detections" in a:
        from autoannotate.masks import box_iou

        diffs, boxes = [], []
        for x, y in zip(a["detections"], b["detections"]):
            for i in range(min(10, len(x["scores"]))):
                same = np.flatnonzero(y["labels"] == x["labels"][i])
                if same.size == 0:
                    continue
                ious = box_iou(x["boxes"][i : i + 1], y["boxes"][same])[0]
                j = same[int(ious.argmax())]
                diffs.append(abs(float(x["scores"][i] - y["scores"][j])))
                boxes.append(float(np.abs(x["boxes"][i] - y["boxes"][j]).max()))
        return {"max_score_diff": max(diffs, default=None), "max_box_diff_px": max(boxes, default=None)}
    if len(a["scores"]) == len(b["scores"]):
        out["max_score_diff"] = round(float(np.abs(a["scores"] - b["scores"]).max()), 5) if len(a["scores"]) else None
    else:
        out["count_differs"] = [len(a["scores"]), len(b["scores"])]
    if a.get("boxes") is not None and len(a["boxes"]) == len(b["boxes"]):
        out["max_box_diff_px"] = round(float(np.abs(a["boxes"] - b["boxes"]).max()), 3) if len(a["boxes"]) else None
    if a.get("masks") is not None and b.get("masks") is not None:
        ious = [iou(x, y) for x, y in zip(a["masks"], b["masks"]) if x.any() or y.any()]
        out["min_mask_iou"] = round(min(ious), 4) if ious else None
    return out


def throughput(name: str, fn: Any, cfg: dict, deadline: float) -> dict:
    import autoannotate as aa
    from autoannotate.interface import TrackableShape, TrackingFunctionContext

    ims, batches, timing = cfg["images"], cfg["batches"], cfg["timing"]
    res: dict[str, Any] = {}
    if name in INTERACTIVE:
        ctx = aa.InteractiveFunctionContext("im")
        click = aa.InteractivePrompt(positive_points=[(ims[0].width / 2, ims[0].height / 2)])
        fn.segment(ctx, fn.encode(ctx, ims[-1]), click)  # warm-up (kernels, allocator)
        sync()
        t = time.perf_counter()
        fn.segment(ctx, fn.encode(ctx, ims[0]), click)
        sync()
        res["first_click_s"] = round(time.perf_counter() - t, 4)
        k = iter(range(10**9))
        res["encode"] = rate(lambda: fn.encode(ctx, ims[next(k) % len(ims)]), 1, deadline, **timing)
        enc = fn.encode(ctx, ims[0])
        for b in batches:
            boxes = grid_boxes(b, ims[0].size)
            res[f"masks_batch_{b}"] = rate(lambda boxes=boxes: fn.segment_boxes(ctx, enc, boxes), b, deadline, **timing)
        return res
    if name in VIDEO:
        frames = [fn.preprocess_image(TrackingFunctionContext(k), im) for k, im in enumerate(ims[: cfg["frames"] + 1])]
        for b in batches:
            if time.perf_counter() > deadline:
                raise Cut
            peak_reset()
            session = fn.video_session()
            for i, box in enumerate(grid_boxes(b, ims[0].size)):
                session.add(i, 0, frames[0], TrackableShape("rectangle", box))
            session.flush()
            sync()
            t = time.perf_counter()
            n = 0
            for k in range(1, len(frames)):
                session.propagate(k, frames[k])
                sync()
                n += 1
                if time.perf_counter() > deadline:
                    break
            res[f"frames_objects_{b}"] = {
                "per_s": round(n / (time.perf_counter() - t), 3),
                "frames": n,
                "peak_gpu_mb": peak_mb(),
            }
        return res
    for b in batches:
        batch = [ims[i % len(ims)] for i in range(b)]
        ctxs = [aa.DetectionFunctionContext(f"im{i}", conf_threshold=0.3) for i in range(b)]
        res[f"images_batch_{b}"] = rate(
            lambda ctxs=ctxs, batch=batch: fn.detect_batch(ctxs, batch), b, deadline, **timing
        )
    return res


def family(name: str, args: argparse.Namespace, cfg: dict, deadline: float) -> dict:
    import torch

    out: dict[str, Any] = {"cut": False}
    halves = ["bfloat16"] + (["float16"] if torch.cuda.is_available() else [])
    if name == "grounding_dino":
        halves = []
        out["half"] = "refused: Grounding DINO runs in float32 only"
    reference = None
    for dtype in ["float32"] + halves:
        try:
            torch.manual_seed(0)
            t = time.perf_counter()
            fn = build(name, args.device, dtype, args.quick)
            sync()
            entry: dict[str, Any] = {"build_s": round(time.perf_counter() - t, 2)}
            out[dtype] = entry
            got = outputs(name, fn, cfg)
            if reference is None:
                reference = got
            else:
                entry["vs_float32"] = compare(reference, got)
            entry.update(throughput(name, fn, cfg, deadline))
        except Cut:
            out["cut"] = True
            break
        except Exception as e:  # noqa: BLE001  (one family's failure is recorded, the others still run)
            out.setdefault(dtype, {})["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            fn = None
            peak_reset()
    return out


# --------------------------------------------------------------------------------------------
# FiftyOne: annotate_dataset against the bare loop


def fiftyone_section(args: argparse.Namespace, cfg: dict, deadline: float) -> dict:
    import fiftyone as fo

    import autoannotate as aa
    from autoannotate.fiftyone import annotate_dataset

    fn = build("owlv2", args.device, "float32", args.quick)
    n = cfg["fiftyone_samples"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, im in enumerate(images(n, cfg["size"], seed=1)):
            p = str(Path(tmp) / f"{i:05d}.jpg")
            im.save(p, quality=92)
            paths.append(p)
        bs = 8

        def bare() -> float:
            t = time.perf_counter()
            for s in range(0, n, bs):
                chunk = paths[s : s + bs]
                fn.detect_batch([aa.DetectionFunctionContext(p) for p in chunk], [aa.load_image(p) for p in chunk])
            sync()
            return time.perf_counter() - t

        bare()  # warm-up
        if time.perf_counter() > deadline:
            return {"cut": True}
        bare_s = bare()
        ds = fo.Dataset("bench-gpu", overwrite=True)
        ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
        t = time.perf_counter()
        report = annotate_dataset(ds, fn, label_field="auto", batch_size=bs, num_workers=4, progress=False)
        ours_s = time.perf_counter() - t
        ds.delete()
    return {
        "function": "owlv2 (float32)",
        "samples": n,
        "batch_size": bs,
        "bare_loop_samples_per_s": round(n / bare_s, 2),
        "annotate_dataset_samples_per_s": round(n / ours_s, 2),
        "annotate_dataset_vs_bare_loop": round(bare_s / ours_s, 3),
        "images_processed": report.images_processed,
        "cut": False,
    }


# --------------------------------------------------------------------------------------------
# report


def table(result: dict) -> str:
    """Markdown rows: family, precision, throughput at each batch size, peak GPU memory, first
    click, differences against float32."""
    rows = [
        "| family | precision | per s at 1 / 8 / 32 | peak GPU MB (largest batch) | first click s | vs float32 |",
        "|---|---|---|---|---|---|",
    ]
    for name, fam in result["families"].items():
        for dtype in ("float32", "bfloat16", "float16"):
            e = fam.get(dtype)
            if not isinstance(e, dict):
                continue
            if "error" in e and len(e) <= 2:
                rows.append(f"| {name} | {dtype} | {e['error'][:80]} | | | |")
                continue
            keys = [k for k in e if k.startswith(("masks_batch_", "frames_objects_", "images_batch_"))]
            rates = " / ".join(str(e[k].get("per_s", e[k].get("error"))) for k in keys) or "-"
            peaks = [e[k].get("peak_gpu_mb") for k in keys]
            peak = peaks[-1] if peaks else None
            diff = e.get("vs_float32") or {}
            vs = ", ".join(f"{k} {v}" for k, v in diff.items())
            if fam.get("cut") and dtype == "float32":
                rates += " (cut: time budget)"
            rows.append(
                f"| {name} | {dtype} | {rates} | {'-' if peak is None else peak} | {e.get('first_click_s', '-')} | {vs} |"
            )
    fo_ = result.get("fiftyone") or {}
    if "bare_loop_samples_per_s" in fo_:
        rows.append("")
        rows.append(
            f"FiftyOne `annotate_dataset` ({fo_['function']}, {fo_['samples']} samples, batch {fo_['batch_size']}): "
            f"{fo_['annotate_dataset_samples_per_s']} samples/s against {fo_['bare_loop_samples_per_s']} for the "
            f"bare loop ({fo_['annotate_dataset_vs_bare_loop']}x)."
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--quick", action="store_true", help="tiny models, batches 1 / 2: a dry run of the script")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 420; quick 900)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated, default all")
    ap.add_argument("--no-fiftyone", action="store_true", help="skip the FiftyOne section")
    ap.add_argument("--out", help="default bench/results/gpu.json; --quick: a temporary file (a dry run is no result)")
    args = ap.parse_args()

    import torch

    from autoannotate import devices

    dev = devices.resolve_device(args.device)  # a clear error for cuda without CUDA
    names = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in names:
        if f not in FAMILIES:
            raise SystemExit(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")
    size = (96, 72) if args.quick else (640, 480)
    cfg = {
        "size": size,
        "images": images(4 if args.quick else 32, size),
        "batches": (1, 2) if args.quick else (1, 8, 32),
        "frames": 2 if args.quick else 16,
        "timing": {"min_s": 0.0, "reps": 1} if args.quick else {"min_s": 1.0, "reps": 10},
        "fiftyone_samples": 8 if args.quick else 256,
    }
    budget = args.budget or (900.0 if args.quick else 420.0)  # a dry run runs every path: no cut
    sections = names + ([] if args.no_fiftyone else ["fiftyone"])
    clock = Clock(budget, len(sections))
    result: dict[str, Any] = {
        "command": " ".join(["bench/gpu.py"] + sys.argv[1:]),
        "quick": args.quick,
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "budget_s": budget,
        "image_size": list(size),
        "families": {},
    }
    default = Path(tempfile.gettempdir()) / "autoannotate-gpu-dry-run.json" if args.quick else RESULTS
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def write() -> None:
        result["elapsed_s"] = round(time.perf_counter() - start, 1)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(table(result) + "\n")

    for name in names:
        deadline = clock.section()
        t = time.perf_counter()
        result["families"][name] = family(name, args, cfg, deadline)
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)
        write()
    if not args.no_fiftyone:
        deadline = clock.section()
        try:
            result["fiftyone"] = fiftyone_section(args, cfg, deadline)
        except Exception as e:  # noqa: BLE001  (recorded in the results)
            result["fiftyone"] = {"error": f"{type(e).__name__}: {e}"}
            traceback.print_exc()
        write()
    print(table(result))
    print(f"wrote {out} in {result['elapsed_s']} s")


if __name__ == "__main__":
    main()
