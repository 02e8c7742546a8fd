"""Benchmark: YOLOX-Nano over N FiftyOne samples (COCO128 photos repeated).

Compares, in one process and on the same images and model object:
  (a) a bare loop: decode each image, run the model, no database;
  (b) autoannotate.fiftyone.annotate_dataset (batched writes, review routing, run record);
  (c) FiftyOne's apply_model with an equivalent fo Model wrapper.
Then peak memory (max RSS) of annotate_dataset runs on 1,000 and 5,000 samples, each in a fresh
child process.

    .venv/bin/python bench/fiftyone_throughput.py [--samples 1000] [--memory-sizes 1000 5000]

Writes bench/results/fiftyone_throughput.json. Needs AUTOANNOTATE_MODELS and the COCO128 photos
(the Makefile sets both when ../shared exists).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COCO = Path(os.environ.get("AUTOANNOTATE_COCO128") or ROOT.parent / "shared" / "data" / "coco128-train")


def photo_paths(n: int) -> list[str]:
    photos = sorted(str(p) for p in (COCO / "images").glob("*.jpg"))
    return [photos[i % len(photos)] for i in range(n)]


def make_dataset(name: str, paths: list[str]):
    import fiftyone as fo

    ds = fo.Dataset(name, overwrite=True)
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    return ds


def bare_loop(fn, paths):
    import autoannotate as aa

    t = time.perf_counter()
    n = 0
    for p in paths:
        n += len(fn.detect(aa.DetectionFunctionContext(p), aa.load_image(p)))
    return time.perf_counter() - t, n


def fo_model(fn):
    import fiftyone as fo
    import fiftyone.core.models as fom
    import PIL.Image

    import autoannotate as aa

    names = {lbl.id: lbl.name for lbl in fn.spec.labels}

    class YoloxModel(fom.Model):
        """The same YOLOX function as a FiftyOne model (what a FiftyOne user would write)."""

        media_type = "image"
        has_logits = False
        has_embeddings = False
        ragged_batches = False
        transforms = None
        preprocess = False

        def predict(self, arg):
            img = PIL.Image.fromarray(arg)
            w, h = img.size
            dets = []
            for s in fn.detect(aa.DetectionFunctionContext(), img):
                x1, y1, x2, y2 = s.points
                dets.append(
                    fo.Detection(
                        label=names[s.label_id],
                        bounding_box=[x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h],
                        confidence=s.score,
                    )
                )
            return fo.Detections(detections=dets)

        def predict_all(self, args):
            return [self.predict(a) for a in args]

    return YoloxModel()


def throughput(n: int) -> dict:
    import fiftyone as fo  # noqa: F401

    from autoannotate.fiftyone import annotate_dataset
    from autoannotate.functions import yolox

    fn = yolox.create()
    paths = photo_paths(n)
    bare_loop(fn, paths[:20])  # warm-up: onnxruntime, page cache
    bare_s, bare_n = bare_loop(fn, paths)

    ds = make_dataset("bench-annotate", paths)
    t = time.perf_counter()
    report = annotate_dataset(
        ds, fn, label_field="auto", review=(0.3, 0.7), batch_size=8, num_workers=2, progress=False
    )
    ours_s = time.perf_counter() - t
    assert report.images_processed == n, report.summary()

    ds2 = make_dataset("bench-apply-model", paths)
    t = time.perf_counter()
    ds2.apply_model(fo_model(fn), label_field="auto", batch_size=8, progress=False)
    apply_s = time.perf_counter() - t
    assert ds2.count("auto.detections") == bare_n
    ds.delete()
    ds2.delete()
    return {
        "samples": n,
        "bare_loop_samples_per_s": round(n / bare_s, 2),
        "annotate_dataset_samples_per_s": round(n / ours_s, 2),
        "apply_model_samples_per_s": round(n / apply_s, 2),
        "annotate_dataset_vs_bare_loop": round(bare_s / ours_s, 3),
        "annotate_dataset_vs_apply_model": round(apply_s / ours_s, 3),
        "labels_stored": report.annotations_added,
        "labels_discarded": report.discarded,
    }


def memory_child(n: int) -> None:
    from autoannotate.fiftyone import annotate_dataset

    ds = make_dataset(f"bench-memory-{n}", photo_paths(n))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    annotate_dataset(ds, "yolox", label_field="auto", review=(0.3, 0.7), batch_size=8, progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ds.delete()
    print(
        json.dumps(
            {"samples": n, "max_rss_mb_before_run": round(before / 1024, 1), "max_rss_mb": round(after / 1024, 1)}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    if "FIFTYONE_DATABASE_DIR" not in os.environ:
        os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="aa-bench-db-")
    if args.memory_child:
        memory_child(args.memory_child)
        return
    result = {
        "command": "python bench/fiftyone_throughput.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "throughput": throughput(args.samples),
    }
    print(json.dumps(result["throughput"], indent=2), flush=True)
    result["memory"] = []
    for n in args.memory_sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(n)],
            capture_output=True,
            text=True,
            env=os.environ,
            check=True,
        ).stdout
        result["memory"].append(json.loads(out.strip().splitlines()[-1]))
        print(result["memory"][-1], flush=True)
    if len(result["memory"]) >= 2:
        lo, hi = result["memory"][0]["max_rss_mb"], result["memory"][-1]["max_rss_mb"]
        result["memory_growth"] = round(hi / lo - 1, 3)
    out = ROOT / "bench" / "results" / "fiftyone_throughput.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    if not result["memory"] and previous.get("memory"):  # keep the last measured memory figures
        result["memory"], result["memory_growth"] = previous["memory"], previous.get("memory_growth")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
