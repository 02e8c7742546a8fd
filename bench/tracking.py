"""Benchmark: tracking propagation, frames/s, against a bare loop over the same frames, and how the
cost grows with the number of tracked objects.

    .venv/bin/python bench/tracking.py [--frames 120] [--sam-frames 3]

The bare loop decodes the same video frames and does nothing else. ``opencv_tracker`` (template
matching, deterministic) runs with 1, 2, 4 and 8 objects, and reports its mean IoU against the
clip's ground truth, against OpenCV's MIL tracker (what it replaced) on the same frames in the
same run (CPU time per frame too: on a shared machine it moves less than wall time); sam_tracker (SAM vit_b, random weights: the real compute) with 1 and 4 objects on
a few frames (its per-frame image encoding dominates on a CPU). Writes bench/results/tracking.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--sam-frames", type=int, default=3)
    args = parser.parse_args()

    from autoannotate.functions import opencv_tracker
    from autoannotate.interface import TrackableShape
    from autoannotate.tracking import track_shapes
    from autoannotate.video import read_frames
    from tests.tracking.synthetic import iou, make_frames, write_video

    frames, truth = make_frames(args.frames, objects=1)
    video = write_video(frames, Path(tempfile.mkdtemp()) / "bench.mp4")
    t = time.perf_counter()
    n = sum(1 for _ in read_frames(video))
    bare = n / (time.perf_counter() - t)
    result = {
        "command": "python bench/tracking.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_start": [round(v, 1) for v in os.getloadavg()],
        "frames": n,
        "frame_size": list(frames[0].size),
        "bare_decode_frames_per_s": round(bare, 1),
        "opencv_tracker": [],
        "sam_tracker": [],
    }
    box = truth[0][0]
    for objects in (1, 2, 4, 8):
        shapes = [TrackableShape("rectangle", box)] * objects
        t, cpu = time.perf_counter(), time.process_time()
        tracks = track_shapes(opencv_tracker.create(min_similarity=-1.0), read_frames(video), shapes)
        dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
        ious = [iou(t_.box(i), truth[0][i]) if i in t_.shapes else 0.0 for t_ in tracks for i in range(n)]
        result["opencv_tracker"].append(
            {
                "objects": objects,
                "frames_per_s": round(n / dt, 1),
                "ms_per_object_frame": round(dt / n / objects * 1000, 2),
                "cpu_ms_per_object_frame": round(dcpu / n / objects * 1000, 2),
                "vs_bare_decode": round((n / dt) / bare, 3),
                "frames_tracked": min(len(t_.shapes) for t_ in tracks),
                "mean_iou": round(sum(ious) / len(ious), 3),
            }
        )
        print(result["opencv_tracker"][-1], flush=True)
    result["opencv_mil_baseline"] = mil_baseline(video, box, truth[0], n)
    result["opencv_mil_baseline"]["opencv_tracker_cpu_speedup"] = round(
        result["opencv_mil_baseline"]["cpu_ms_per_frame"] / result["opencv_tracker"][0]["cpu_ms_per_object_frame"], 2
    )
    print(result["opencv_mil_baseline"], flush=True)
    if args.sam_frames < 1:  # keep the SAM rows of the last run that measured them
        old = ROOT / "bench" / "results" / "tracking.json"
        previous = json.loads(old.read_text()) if old.is_file() else {}
        result["sam_tracker"] = previous.get("sam_tracker", [])
        result["sam_tracker_measured_by"] = previous.get("sam_tracker_measured_by", previous.get("command"))
        write(result)
        return
    import torch

    from autoannotate.functions import sam_tracker

    torch.manual_seed(0)
    fn = sam_tracker.create(pretrained=False, min_pixels=0)
    m = args.sam_frames
    for objects in (1, 4):
        shapes = [TrackableShape("rectangle", box)] * objects
        t = time.perf_counter()
        track_shapes(fn, read_frames(video, 0, m), shapes)
        dt = time.perf_counter() - t
        result["sam_tracker"].append(
            {
                "objects": objects,
                "frames": m,
                "frames_per_s": round(m / dt, 3),
                "vs_bare_decode": round((m / dt) / bare, 5),
            }
        )
        print(result["sam_tracker"][-1], flush=True)
    write(result)


def write(result: dict) -> None:
    result["loadavg_end"] = [round(v, 1) for v in os.getloadavg()]
    out = ROOT / "bench" / "results" / "tracking.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def mil_baseline(video: Path, box, truth, n: int) -> dict:
    """OpenCV's MIL tracker (what ``opencv_tracker`` was until it had to be deterministic) on the
    same frames, one object, as a same-run baseline: ms per frame and mean IoU."""
    import cv2
    import numpy as np

    from autoannotate.video import read_frames
    from tests.tracking.synthetic import iou

    mil = cv2.TrackerMIL.create()
    boxes = []
    t, cpu = time.perf_counter(), time.process_time()
    for k, image in enumerate(read_frames(video)):
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        if k == 0:
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            mil.init(bgr, (x1, y1, x2 - x1, y2 - y1))
            boxes.append(tuple(box))
            continue
        _, (x, y, w, h) = mil.update(bgr)
        boxes.append((x, y, x + w, y + h))
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "objects": 1,
        "ms_per_frame": round(dt / n * 1000, 2),
        "cpu_ms_per_frame": round(dcpu / n * 1000, 2),
        "mean_iou": round(sum(iou(b, truth[i]) for i, b in enumerate(boxes)) / n, 3),
    }


if __name__ == "__main__":
    main()
