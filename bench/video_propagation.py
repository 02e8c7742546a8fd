"""Benchmark: video propagation cost by number of objects, and memory by video length.

    .venv/bin/python bench/video_propagation.py [--frames 4] [--sam-frames 2] [--lengths 100 1000]

1. Seconds per frame with 1, 4 and 16 objects for ``sam2_video`` (SAM 2.1 tiny) and
   ``edgetam_video`` (real-size architectures, random weights: the real compute), ``opencv_tracker`` and
   ``sam_tracker`` (SAM vit_b, random weights; about 17 s a frame on a 2-core CPU, so only
   ``--sam-frames`` frames), on a synthetic 320x240 video. Each run is ``track_shapes`` over the
   frames (decoding included), timed after the first frame (the prompt frame) for the SAM 2
   models. The ratio 16 objects / 1 object is the growth of the cost per frame.
2. Peak memory by video length: ``sam2_video`` over ``--lengths`` frames (each in a fresh
   process: its peak RSS), with one object; the bytes held by the session's stored outputs after
   the last frame, against transformers' own streaming session without bounds (on the shortest
   length). The long runs use the tiny test configuration (128 px input) so that 1,000 frames
   take minutes on this CPU; the session's bookkeeping is the same as the real model's.

Writes bench/results/video_propagation.json (with the load average: the machine may be shared).
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared"))

OBJECTS = (1, 4, 16)


def boxes(n: int, size: tuple[int, int]) -> list:
    from autoannotate.interface import TrackableShape

    w, h = size
    out = []
    for i in range(n):
        x, y = (i % 4) * w / 4, (i // 4 % 4) * h / 4
        out.append(TrackableShape("rectangle", (x + 4, y + 4, x + w / 4 - 4, y + h / 4 - 4)))
    return out


def time_tracker(fn, video: Path, frames: int, objects: int, size) -> dict:
    from autoannotate.tracking import track_shapes
    from autoannotate.video import read_frames

    stamps: list[float] = []

    def timed():
        for image in read_frames(video, 0, frames):
            stamps.append(time.perf_counter())
            yield image

    t0 = time.perf_counter()
    tracks = track_shapes(fn, timed(), boxes(objects, size))
    end = time.perf_counter()
    # from the second frame on: the first is the prompt frame (SAM 2 runs it with the second)
    tracked = max(len(stamps) - 2, 1)
    per_frame = (end - stamps[min(2, len(stamps) - 1)]) / tracked if len(stamps) > 2 else (end - t0) / len(stamps)
    return {
        "objects": objects,
        "frames": len(stamps),
        "s_per_frame": round(per_frame, 3),
        "frames_per_s": round(1 / per_frame, 3),
        "total_s": round(end - t0, 2),
        "tracks_alive_at_end": sum(t.lost_at is None for t in tracks),
    }


def speed(args, result: dict) -> None:
    from autoannotate.functions import edgetam_video, opencv_tracker, sam2_video, sam_tracker
    from tests.tracking.synthetic import make_frames, write_video

    frames, _ = make_frames(max(args.frames, args.sam_frames, args.mil_frames), objects=1)
    size = frames[0].size
    video = write_video(frames, Path(tempfile.mkdtemp()) / "bench.mp4")
    result["speed_video"] = {"frame_size": list(size)}
    makers = {
        "sam2_video": (lambda: sam2_video.create(pretrained=False, min_score=0.0, min_pixels=0), args.frames),
        "edgetam_video": (lambda: edgetam_video.create(pretrained=False, min_score=0.0, min_pixels=0), args.frames),
        "opencv_tracker": (lambda: opencv_tracker.create(min_similarity=-1.0), args.mil_frames),
        "sam_tracker": (lambda: sam_tracker.create(pretrained=False, min_pixels=0), args.sam_frames),
    }
    for name in args.trackers:
        make, n = makers[name]
        import torch

        torch.manual_seed(0)
        fn = make()
        rows = []
        for objects in args.objects:
            row = time_tracker(fn, video, n, objects, size)
            print(name, row, flush=True)
            rows.append(row)
        base = rows[0]["s_per_frame"]
        for r in rows:
            r["vs_1_object"] = round(r["s_per_frame"] / base, 2)
        result["speed"][name] = rows
        json.dump(result, open(args.out, "w"), indent=2)


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` would carry the parent's peak across fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def memory_child(length: int, bounded: bool) -> dict:
    """One run in this process: ``length`` frames, one object; peak RSS and stored bytes."""
    import numpy as np
    import PIL.Image
    import torch

    from autoannotate.interface import TrackableShape, TrackingFunctionContext
    from tests.functions.sam2_video_tiny import tiny_video_tracker

    fn = tiny_video_tracker("sam2")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    box = TrackableShape("rectangle", (8, 8, 40, 40))
    if bounded:
        session = fn.video_session()
        s = session.session
    else:
        s = fn.processor.init_video_session(inference_device="cpu")
    t0 = time.perf_counter()
    for k in range(length):
        image = PIL.Image.fromarray(np.roll(base, k % 64, axis=1))
        pp = fn.preprocess_image(TrackingFunctionContext(k), image)
        if bounded:
            if k == 0:
                session.add(0, 0, pp, box)
            else:
                session.propagate(k, pp)
        else:
            if k == 0:
                fn.processor.add_inputs_to_inference_session(
                    s, frame_idx=0, obj_ids=[0], input_boxes=[[list(box.points)]], original_size=pp.original_size
                )
            with torch.inference_mode():
                fn.model(inference_session=s, frame=pp.pixel_values, frame_idx=k)

    def nbytes(x) -> int:
        if isinstance(x, torch.Tensor):
            return x.element_size() * x.nelement()
        if isinstance(x, dict):
            return sum(nbytes(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(nbytes(v) for v in x)
        return 0

    return {
        "frames": length,
        "bounded": bounded,
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": peak_rss_mib(),
        "session_stored_mib": round((nbytes(s.output_dict_per_obj) + nbytes(s.processed_frames or {})) / 2**20, 2),
        "stored_frame_outputs": sum(len(v["non_cond_frame_outputs"]) for v in s.output_dict_per_obj.values()),
        "stored_frame_pixels": len(s.processed_frames or {}),
    }


def memory(args, result: dict) -> None:
    rows = []
    runs = [(n, True) for n in args.lengths] + [(min(args.lengths), False)]
    for n, bounded in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(n), "--unbounded" if not bounded else "--bounded"],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
        result["memory"] = {
            "model": "tiny test configuration of sam2_video (128 px input), 64x48 frames, one object",
            "rows": rows,
        }
        json.dump(result, open(args.out, "w"), indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4, help="frames per SAM 2 run")
    parser.add_argument("--mil-frames", type=int, default=30)
    parser.add_argument("--sam-frames", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="*", default=[100, 1000])
    parser.add_argument(
        "--trackers", nargs="*", default=["sam2_video", "edgetam_video", "opencv_tracker", "sam_tracker"]
    )
    parser.add_argument("--objects", type=int, nargs="*", default=list(OBJECTS))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--merge", action="store_true", help="update the trackers measured here in an existing results file"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "video_propagation.json"))
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--unbounded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bounded", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, not args.unbounded)))
        return
    import torch

    result = {
        "command": "python bench/video_propagation.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "note": "the machine was shared with other jobs; see loadavg (1, 5, 15 min) at start and end",
        "loadavg_start": os.getloadavg(),
        "speed": {},
    }
    if args.merge and Path(args.out).is_file():
        old = json.load(open(args.out))
        result["speed"] = old.get("speed", {})
        result["memory"] = old.get("memory")
        result["earlier_runs"] = old.get("earlier_runs", []) + [
            {k: old.get(k) for k in ("command", "loadavg_start", "loadavg_end")}
        ]
    speed(args, result)
    if not args.skip_memory:
        memory(args, result)
    result["loadavg_end"] = os.getloadavg()
    json.dump(result, open(args.out, "w"), indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
