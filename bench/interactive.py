"""Benchmark: interactive segmentation models at their real sizes with random weights (the compute
does not depend on the weights), per model: build time, cold first click (encode + first decode
in a fresh process), encode time, decode time per click, peak memory (max RSS of that process).

    .venv/bin/python bench/interactive.py [--models sam2_tiny,edgetam,sam_vit_b] [--repeats 3] [--clicks 10]
    .venv/bin/python bench/interactive.py --mask-output-only

Mask output (``--mask-output-only``, also part of a full run): what one mask costs on its way to
Label Studio (brush RLE, polygon, the JSON of both) for smooth masks (every COCO128 instance of
2,000 px2 or more, rasterized from its polygons onto its 640 x 480-ish photo), against a speckled
random-weights mask of the same size.

Each model runs in its own fresh process (so the cold click and the peak memory are its own), one
after the other, on the same COCO128 photo (640 x 480; a synthetic one without COCO128). Ratios
are against SAM 1 vit_b measured in the same run. Writes bench/results/interactive.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "sam2_tiny": ("sam2", {"size": "tiny", "pretrained": False}),
    "sam2_small": ("sam2", {"size": "small", "pretrained": False}),
    "sam2_base_plus": ("sam2", {"size": "base-plus", "pretrained": False}),
    "sam2_large": ("sam2", {"size": "large", "pretrained": False}),
    "edgetam": ("edgetam", {"pretrained": False}),
    "sam_vit_b": ("sam", {"model_type": "vit_b", "pretrained": False}),
}
BASELINE = "sam_vit_b"


def photo():
    import numpy as np
    import PIL.Image

    coco = Path(os.environ.get("AUTOANNOTATE_COCO128", ROOT.parent / "shared" / "data" / "coco128-train"))
    path = coco / "images" / "000000000009.jpg"
    if path.is_file():
        from autoannotate.images import load_image

        return load_image(path), str(path.name)
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)), "synthetic 640x480"


def one(model: str, repeats: int, clicks: int) -> dict:
    """Measure one model in this (fresh) process."""
    import torch

    import autoannotate as aa
    from autoannotate.loading import load_function

    torch.manual_seed(0)
    name, params = MODELS[model]
    image, image_name = photo()
    ctx = aa.InteractiveFunctionContext("bench")
    t = time.perf_counter()
    fn = load_function(name, **params)
    build_s = time.perf_counter() - t
    W, H = image.size
    click = aa.InteractivePrompt(positive_points=[(W * 0.5, H * 0.5)])

    t = time.perf_counter()
    enc = fn.encode(ctx, image)
    fn.segment(ctx, enc, click)
    cold_s = time.perf_counter() - t

    encodes = []
    for _ in range(repeats):
        t = time.perf_counter()
        enc = fn.encode(ctx, image)
        encodes.append(time.perf_counter() - t)
    decodes, box_decodes = [], []
    for k in range(clicks):
        p = aa.InteractivePrompt(positive_points=[(W * (0.2 + 0.06 * k), H * (0.3 + 0.04 * k))])
        t = time.perf_counter()
        fn.segment(ctx, enc, p)
        decodes.append(time.perf_counter() - t)
        b = aa.InteractivePrompt(boxes=[(W * 0.1, H * 0.1, W * (0.4 + 0.05 * k), H * (0.5 + 0.04 * k))])
        t = time.perf_counter()
        fn.segment(ctx, enc, b)
        box_decodes.append(time.perf_counter() - t)
    return {
        "model": model,
        "function": name,
        "params": params,
        "model_version": fn.model_version,
        "parameters_millions": round(sum(p.numel() for p in fn.model.parameters()) / 1e6, 2),
        "image": image_name,
        "build_s": round(build_s, 3),
        "cold_first_click_s": round(cold_s, 3),
        "encode_s_median": round(statistics.median(encodes), 3),
        "encode_s_all": [round(x, 3) for x in encodes],
        "decode_click_ms_median": round(1000 * statistics.median(decodes), 1),
        "decode_box_ms_median": round(1000 * statistics.median(box_decodes), 1),
        "encoding_mb": round(enc.nbytes / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }


def mask_output() -> dict:
    """Milliseconds per mask for brush RLE, polygons and their JSON, smooth vs speckled masks."""
    import numpy as np

    from autoannotate.label_studio.regions import brush_rle
    from autoannotate.masks import mask_to_polygon, polygon_to_mask

    coco = Path(os.environ.get("AUTOANNOTATE_COCO128", ROOT.parent / "shared" / "data" / "coco128-train"))
    data = json.loads((coco / "instances.json").read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    masks = []
    for a in sorted(data["annotations"], key=lambda a: a["id"]):
        if a["iscrowd"] or a["area"] < 2000:
            continue
        m = np.zeros(sizes[a["image_id"]][::-1], bool)
        for poly in a["segmentation"]:
            m |= polygon_to_mask(poly, sizes[a["image_id"]])
        masks.append(m)
    rng = np.random.default_rng(0)
    speckled = rng.random((480, 640)) < 0.5

    def cost(ms: list) -> dict:
        rle_t, poly_t, json_t, rle_len, poly_len = [], [], [], [], []
        for m in ms:
            t = time.perf_counter()
            rle = brush_rle(m)
            rle_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            poly = mask_to_polygon(m)
            poly_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            json.dumps({"rle": rle, "points": poly})
            json_t.append(time.perf_counter() - t)
            rle_len.append(len(rle))
            poly_len.append(len(poly or ()) // 2)
        pct = lambda xs, q: round(1000 * float(np.percentile(xs, q)), 2)  # noqa: E731
        return {
            "masks": len(ms),
            "brush_rle_ms_median": pct(rle_t, 50),
            "brush_rle_ms_p95": pct(rle_t, 95),
            "polygon_ms_median": pct(poly_t, 50),
            "polygon_ms_p95": pct(poly_t, 95),
            "json_ms_median": pct(json_t, 50),
            "brush_rle_bytes_median": int(np.median(rle_len)),
            "polygon_vertices_median": int(np.median(poly_len)),
        }

    out = {"smooth_coco_instances": cost(masks), "speckled_random_640x480": cost([speckled] * 5)}
    for k, v in out.items():
        print(
            f"mask output, {k} ({v['masks']}): brush RLE {v['brush_rle_ms_median']} ms "
            f"(p95 {v['brush_rle_ms_p95']}), {v['brush_rle_bytes_median']} bytes; polygon "
            f"{v['polygon_ms_median']} ms (p95 {v['polygon_ms_p95']}), {v['polygon_vertices_median']} vertices; "
            f"JSON {v['json_ms_median']} ms"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="sam2_tiny,edgetam,sam_vit_b")
    parser.add_argument("--repeats", type=int, default=3, help="encodes after the cold click")
    parser.add_argument("--clicks", type=int, default=10, help="decoder calls per prompt kind")
    parser.add_argument("--mask-output-only", action="store_true", help="only the mask output costs")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "interactive.json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.repeats, args.clicks)))
        return

    if args.mask_output_only:
        path = args.output.with_name("mask_output.json")
        result = {"command": "python bench/interactive.py --mask-output-only", **mask_output()}
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
        return
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    load_before = os.getloadavg()
    results = {}
    for m in models:
        cmd = [sys.executable, __file__, "--one", m, "--repeats", str(args.repeats), "--clicks", str(args.clicks)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            results[m] = {"model": m, "error": proc.stderr.strip().splitlines()[-1:]}
            print(f"{m}: failed: {proc.stderr.strip()[-500:]}")
            continue
        results[m] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[m]
        print(
            f"{m:>14}: cold first click {r['cold_first_click_s']:.2f} s, encode {r['encode_s_median']:.2f} s, "
            f"decode {r['decode_click_ms_median']:.0f} ms/click ({r['decode_box_ms_median']:.0f} ms/box), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['parameters_millions']} M params"
        )
    base = results.get(BASELINE)
    if base and "error" not in base:
        for m, r in results.items():
            if "error" in r or m == BASELINE:
                continue
            r["vs_sam_vit_b"] = {
                "cold_first_click": round(r["cold_first_click_s"] / base["cold_first_click_s"], 3),
                "encode": round(r["encode_s_median"] / base["encode_s_median"], 3),
                "decode_click": round(r["decode_click_ms_median"] / base["decode_click_ms_median"], 3),
                "peak_rss": round(r["peak_rss_mb"] / base["peak_rss_mb"], 3),
            }
            print(f"{m:>14} / {BASELINE}: {r['vs_sam_vit_b']}")
    out = {
        "command": "python bench/interactive.py " + " ".join(sys.argv[1:]),
        "conditions": {
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "gpu": "not measured (no GPU on this machine)",
            "weights": "random (real-size architectures)",
        },
        "results": results,
        "mask_output": mask_output(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
