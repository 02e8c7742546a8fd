"""Benchmark: what the ``ultralytics`` and ``transformers`` functions add per image over calling
the library directly, in the same run, on the same photos, at the same threshold.

    AUTOANNOTATE_COCO128=/path/to/coco128-train .venv/bin/python bench/byom.py [--images 4] [--repeats 5]

Models are real-size architectures with random weights (the compute does not depend on the
weights): YOLO11n for each Ultralytics task, built from its YAML; RT-DETR v2 (ResNet-50),
SegFormer-B0, Mask2Former (its default Swin backbone), ViT-Base and CLIP ViT-B/32 for
transformers. "direct" is what a user would write without autoannotate: Ultralytics'
``model.predict(images, conf=...)`` (the same arguments, masks at image size for ``segment``);
for transformers the checkpoint's processor, the model and the processor's post-processing, one
image per call. "function" is ``detect_batch`` of the function over the same images (Ultralytics:
all images in one call, like the direct call; transformers: one image per call). The two are
interleaved (the order alternating) ``repeats`` times after a warm-up; seconds per image are the
fastest run and the median (wall and CPU seconds of this process). Random weights find many things at threshold 0: the number of shapes per image is
recorded (converting them is the added cost). Writes bench/results/byom.json with the load
average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")


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


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of ``run()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - t0, time.process_time() - c0


def compare(direct: Callable[[], Any], function: Callable[[], Any], n_images: int, repeats: int) -> dict:
    """Per image: the fastest and the median of ``repeats`` runs of each (wall seconds; CPU
    seconds of this process over all threads), and what the function adds in percent. The order
    alternates (direct first, then function first) so a machine getting busier or quieter does
    not favour either; on a shared machine the fastest run is the one least disturbed."""
    direct(), function()  # warm-up
    d: list[tuple[float, float]] = []
    f: list[tuple[float, float]] = []
    for r in range(repeats):
        if r % 2:
            f.append(timed(function))
            d.append(timed(direct))
        else:
            d.append(timed(direct))
            f.append(timed(function))
    row = {}
    for stat, pick in (("min", min), ("median", statistics.median)):
        for i, kind in enumerate(("wall", "cpu")):
            md = pick(x[i] for x in d) / n_images
            mf = pick(x[i] for x in f) / n_images
            row[f"direct_{kind}_{stat}_s"] = round(md, 4)
            row[f"function_{kind}_{stat}_s"] = round(mf, 4)
            row[f"added_{kind}_{stat}_pct"] = round(100 * (mf / md - 1), 1)
    return row


def ultralytics_cases(images: list, folder: Path, repeats: int, device: str) -> dict:
    import torch
    from ultralytics import YOLO

    from autoannotate.interface import DetectionFunctionContext
    from autoannotate.loading import load_function
    from tests.functions import yolo_tiny

    models = yolo_tiny.build(folder)
    conf = 0.0
    out = {}
    for task, path in models.items():
        torch.manual_seed(0)
        extra: dict[str, Any] = {"retina_masks": True} if task == "segment" else {}
        # OBB: rotated NMS over every anchor at threshold 0 outlasts Ultralytics' NMS time limit at
        # 640 px on a shared CPU (a cut NMS returns fewer boxes, by timing): 320 px there
        size = 320 if task == "obb" else 640
        direct_model = YOLO(str(path), verbose=False)
        fn = load_function("ultralytics", model=str(path), max_det=100, imgsz=size, device=device)
        ctxs = [DetectionFunctionContext(conf_threshold=conf) for _ in images]

        def direct(m: Any = direct_model, extra: dict = extra, size: int = size) -> Any:
            return m.predict(images, conf=conf, max_det=100, imgsz=size, device=device, verbose=False, **extra)

        def function(fn: Any = fn, ctxs: list = ctxs) -> Any:
            return fn.detect_batch(ctxs, images)

        row = compare(direct, function, len(images), repeats)
        row["shapes_per_image"] = sum(map(len, function())) / len(images)
        out[f"ultralytics {task} (yolo11n, {size} px)"] = row
        print(f"ultralytics {task}: {row}", flush=True)
    return out


def hf_models() -> dict[str, tuple[Callable[[], tuple[Any, Any]], dict]]:
    """``{task: (build model and processor, function params)}``: real-size random-weight models."""
    import transformers as tf

    from autoannotate.functions.open_vocab import char_clip_tokenizer, clip_token_ids

    def detector() -> tuple[Any, Any]:
        return tf.RTDetrV2ForObjectDetection(tf.RTDetrV2Config()), tf.RTDetrImageProcessor()

    def semantic() -> tuple[Any, Any]:
        return tf.SegformerForSemanticSegmentation(tf.SegformerConfig()), tf.SegformerImageProcessor()

    def instance() -> tuple[Any, Any]:
        return tf.Mask2FormerForUniversalSegmentation(tf.Mask2FormerConfig()), tf.Mask2FormerImageProcessor()

    def classifier() -> tuple[Any, Any]:
        return tf.ViTForImageClassification(tf.ViTConfig()), tf.ViTImageProcessor()

    def zero_shot() -> tuple[Any, Any]:
        tok = char_clip_tokenizer(77)
        cfg = tf.CLIPConfig(text_config={"vocab_size": len(tok), **clip_token_ids(tok)})
        return tf.CLIPModel(cfg), tf.CLIPProcessor(image_processor=tf.CLIPImageProcessor(), tokenizer=tok)

    return {
        "object-detection (RT-DETR v2 R50)": (detector, {}),
        "semantic-segmentation (SegFormer-B0)": (semantic, {}),
        "instance-segmentation (Mask2Former)": (instance, {"task": "instance-segmentation"}),
        "image-classification (ViT-Base)": (classifier, {}),
        "zero-shot-image-classification (CLIP B/32, 5 classes)": (zero_shot, {"classes": CLASSES}),
    }


CLASSES = ["cat", "dog", "car", "person", "bicycle"]


def transformers_cases(images: list, folder: Path, repeats: int, device: str, only: str | None) -> dict:
    import torch

    from autoannotate.devices import place, to_cpu_float, to_model
    from autoannotate.interface import DetectionFunctionContext
    from autoannotate.loading import load_function

    ctx = DetectionFunctionContext(conf_threshold=0.0)
    texts = [f"This is a photo of {c}." for c in CLASSES]
    out = {}
    for name, (build, params) in hf_models().items():
        if only and only not in name:
            continue
        torch.manual_seed(0)
        model, proc = build()
        path = folder / name.split()[0]
        model.save_pretrained(path)
        proc.save_pretrained(path)
        fn = load_function("transformers", model=str(path), device=device, **params)
        task = fn.task if hasattr(fn, "task") else ""
        model = place(model, device)

        def direct(model: Any = model, proc: Any = proc, task: str = task) -> list:
            results = []
            for im in images:
                if task.startswith("zero-shot"):
                    inputs = proc(images=[im], text=texts, padding=True, return_tensors="pt")
                else:
                    inputs = proc(images=[im], return_tensors="pt")
                with torch.inference_mode():
                    o = to_cpu_float(model(**to_model(inputs, model)))
                size = [(im.height, im.width)]
                if task == "object-detection":
                    results.append(proc.post_process_object_detection(o, threshold=0.0, target_sizes=size))
                elif task == "semantic-segmentation":
                    results.append(proc.post_process_semantic_segmentation(o, target_sizes=size))
                elif task == "instance-segmentation":
                    results.append(proc.post_process_instance_segmentation(o, threshold=0.0, target_sizes=size,
                                                                           return_binary_maps=True))  # fmt: skip
                elif task.startswith("zero-shot"):
                    results.append(o.logits_per_image.softmax(-1))
                else:
                    results.append(o.logits.softmax(-1))
            return results

        def function(fn: Any = fn) -> list:
            return [fn.detect_batch([ctx], [im]) for im in images]

        row = compare(direct, function, len(images), repeats)
        row["shapes_per_image"] = sum(len(r[0]) for r in function()) / len(images)
        out[f"transformers {name}"] = row
        print(f"transformers {name}: {row}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=["ultralytics", "transformers"], default=None)
    ap.add_argument("--hf-only", default=None, help="run only the transformers models whose name has this text")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "byom.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    images, source = photos(args.images)
    load_before = os.getloadavg()
    cases: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "ultralytics"):
            cases.update(ultralytics_cases(images, Path(tmp) / "yolo", args.repeats, args.device))
        if args.only in (None, "transformers"):
            cases.update(transformers_cases(images, Path(tmp) / "hf", args.repeats, args.device, args.hf_only))
    report = {
        "what": "seconds per image (wall, and CPU of this process over all threads), the library called "
        "directly vs the autoannotate function, interleaved; added_*_pct = function / direct - 1 "
        "(fastest run and median)",
        "images": source,
        "repeats": args.repeats,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
