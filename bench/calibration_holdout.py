"""Does a calibrated review threshold hold on photos it has not seen? Measured on synthetic photos.

The photos: scikit-image's sample photos (shipped in its wheel; never used to tune the project),
cut to their object (person: ``astronaut`` and ``camera``; cat: ``chelsea``; cup: ``coffee``;
motorcycle: ``stereo_motorcycle``; the crops are fixed below) and pasted, 1 to 4 per photo, at
random sizes, places, flips, brightness, contrast, blur and JPEG quality onto backgrounds from
scikit-image's textures and object-free photos (brick, grass, gravel, rocket, hubble deep field,
immunohistochemistry) or plain noise. The ground truth of each pasted object is its rectangle.

YOLOX-Nano labels every photo down to confidence 0.05; :func:`calibrate_review` learns thresholds
from the ground truth of the photos outside the held-out half (a hash of the file name) and
reports the precision the thresholds reach on the held-out half. Every seed is another set of
photos::

    PYTHONPATH=shared AUTOANNOTATE_MODELS=../shared/models python bench/calibration_holdout.py \
        --photos 240 --seeds 0 1 2 3 4 --out bench/results/calibration-holdout.json
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageEnhance
import PIL.ImageFilter

#: (class, scikit-image photo, crop box x0, y0, x1, y1 in its pixels)
OBJECTS = [
    ("person", "astronaut", (11, 20, 369, 507)),
    ("person", "camera", (5, 64, 301, 502)),
    ("cat", "chelsea", (0, 0, 451, 300)),
    ("cup", "coffee", (162, 16, 421, 295)),
    ("motorcycle", "stereo_motorcycle", (110, 90, 709, 446)),
]
BACKGROUNDS = ["brick", "grass", "gravel", "rocket", "hubble_deep_field", "immunohistochemistry", "noise"]
SIZE = (640, 480)


def _photo(name: str) -> PIL.Image.Image:
    import skimage.data

    x = getattr(skimage.data, name)()
    x = x[0] if isinstance(x, tuple) else x
    if x.ndim == 2:
        x = np.stack([x] * 3, -1)
    return PIL.Image.fromarray(np.asarray(x, dtype=np.uint8)[..., :3])


def synthesise(folder: Path, n: int, seed: int) -> list[tuple[Path, list[tuple[str, list[float]]]]]:
    """``n`` photos in ``folder`` with their ground truth ``[(class, [x, y, w, h] relative)]``."""
    rng = np.random.default_rng(seed)
    crops = [(c, _photo(p).crop(box)) for c, p, box in OBJECTS]
    backs = {b: None if b == "noise" else _photo(b) for b in BACKGROUNDS}
    out = []
    for i in range(n):
        b = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        if backs[b] is None:
            canvas = PIL.Image.fromarray(rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)).filter(
                PIL.ImageFilter.GaussianBlur(float(rng.uniform(1, 6)))
            )
        else:
            canvas = backs[b].resize(SIZE)
        boxes: list[list[float]] = []
        gt = []
        for _ in range(int(rng.integers(1, 5))):
            cls, crop = crops[int(rng.integers(len(crops)))]
            h = int(rng.uniform(60, 400))
            w = max(8, int(crop.width * h / crop.height * rng.uniform(0.85, 1.15)))
            if w > SIZE[0] - 2:
                continue
            patch = crop.resize((w, h))
            if rng.random() < 0.5:
                patch = patch.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
            patch = PIL.ImageEnhance.Brightness(patch).enhance(float(rng.uniform(0.5, 1.4)))
            patch = PIL.ImageEnhance.Contrast(patch).enhance(float(rng.uniform(0.5, 1.4)))
            if rng.random() < 0.3:
                patch = patch.filter(PIL.ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
            for _try in range(20):  # a place where it covers no earlier object by more than a third
                x, y = int(rng.integers(0, SIZE[0] - w)), int(rng.integers(0, SIZE[1] - h))
                if all(_overlap((x, y, w, h), o) < 1 / 3 for o in boxes):
                    break
            else:
                continue
            canvas.paste(patch, (x, y))
            boxes.append([x, y, w, h])
            gt.append((cls, [x / SIZE[0], y / SIZE[1], w / SIZE[0], h / SIZE[1]]))
        buf = io.BytesIO()
        canvas.save(buf, format="JPEG", quality=int(rng.integers(30, 95)))
        path = folder / f"synth_{seed}_{i:04d}.jpg"
        path.write_bytes(buf.getvalue())
        out.append((path, gt))
    return out


def _overlap(a: tuple[int, int, int, int], b: list[float]) -> float:
    """Share of ``b`` that ``a`` covers."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return max(0, x1 - x0) * max(0, y1 - y0) / (b[2] * b[3])


def measure(photos: int, seed: int, targets: list[float], holdout: float) -> dict[str, Any]:
    import fiftyone as fo

    from autoannotate.fiftyone import annotate_dataset
    from autoannotate.fiftyone.review import calibrate_review

    with tempfile.TemporaryDirectory() as tmp:
        made = synthesise(Path(tmp), photos, seed)
        ds = fo.Dataset(f"aa-calibration-holdout-{seed}", overwrite=True)
        ds.add_samples(
            [
                fo.Sample(
                    filepath=str(p),
                    ground_truth=fo.Detections(detections=[fo.Detection(label=c, bounding_box=b) for c, b in gt]),
                )
                for p, gt in made
            ]
        )
        annotate_dataset(ds, "yolox", label_field="auto", conf_threshold=0.05, progress=False)
        out: dict[str, Any] = {"seed": seed, "photos": photos, "objects": ds.count("ground_truth.detections")}
        for target in targets:
            for bound in ("wilson", "estimate"):
                cal = calibrate_review(ds, "auto", target, source="ground_truth", bound=bound, holdout=holdout)
                check = cal.held_out or {}
                out[f"{target}/{bound}"] = {
                    "thresholds": {k: [round(v[0], 3), round(v[1], 3)] for k, v in cal.thresholds.items()},
                    "calibration": {
                        k: [c.precision, c.support, c.interval] for k, c in cal.classes.items() if not c.refused
                    },
                    "held_out_total": check.get("total"),
                    "held_out": {k: [e["precision"], e["correct"], e["labels"]] for k, e in check["classes"].items()},
                }
        ds.delete()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=240)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.8, 0.9])
    ap.add_argument("--holdout", type=float, default=0.5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    results = [measure(args.photos, s, args.targets, args.holdout) for s in args.seeds]
    for r in results:
        for k, v in r.items():
            if isinstance(v, dict) and v.get("held_out_total"):
                t = v["held_out_total"]
                prec = "-" if t["precision"] is None else f"{t['precision']:.3f}"
                print(
                    f"seed {r['seed']} {k:<14} held-out precision {prec} ({t['correct']}/{t['labels']}) {v['held_out']}"
                )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
