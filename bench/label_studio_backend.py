"""Benchmark: the Label Studio backend over HTTP on loopback.

1. SAM vit_b (random weights: the same compute as the real model) as the interactive function:
   latency of the first click on an image (download + decode + encode + decoder), of later clicks
   (p50, p95) against the bare decoder call on the same encoding, three annotators alternating
   between three images (how many encodings), and 8 concurrent clients (errors).
2. YOLOX-Nano batch pre-annotation: tasks/s of /predict (batches of 16 tasks) against a bare loop
   (decode + detect) over the same images.

    .venv/bin/python bench/label_studio_backend.py [--clicks 20] [--tasks 64]

As deployed, three processes: an image server (``python -m http.server`` on loopback, standing
in for Label Studio), the backend (``autoannotate label-studio serve``, allow-listing the image
server), and this client. Bare baselines run in this process on the same images and models.
Writes bench/results/label_studio_backend.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COCO = Path(os.environ.get("AUTOANNOTATE_COCO128") or ROOT.parent / "shared" / "data" / "coco128-train")
CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image">{labels}</RectangleLabels>
<BrushLabels name="mask" toName="image"><Label value="object"/></BrushLabels>
<KeyPointLabels name="click" toName="image" smart="true"><Label value="object" smart="true"/></KeyPointLabels></View>"""


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def serve_folder(folder: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/", proc)
    return f"http://127.0.0.1:{port}", proc


def start_backend(*args: str):
    """``autoannotate label-studio serve`` in its own process; returns its URL and process."""
    port = free_port()
    env = {**os.environ, "AUTOANNOTATE_ALLOW_HOSTS": "127.0.0.1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoannotate.cli",
            "label-studio",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
    )
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return f"http://127.0.0.1:{port}", proc


def click_payload(url, x, y, label="object"):
    ctx = {
        "result": [
            {"type": "keypointlabels", "is_positive": True, "value": {"x": x, "y": y, "keypointlabels": [label]}}
        ]
    }
    return {
        "tasks": [{"id": 1, "data": {"image": url}}],
        "label_config": CONFIG.format(labels='<Label value="person"/>'),
        "params": {"context": ctx},
    }


def interactive(images: list[str], base: str, clicks: int) -> dict:
    import httpx
    import torch

    import autoannotate as aa
    from autoannotate.functions import sam
    from autoannotate.label_studio import FetchPolicy, ImageFetcher

    url, server = start_backend(
        "--function", "none", "--interactive", "sam", "--interactive-param", "pretrained=bool:false"
    )
    torch.manual_seed(0)
    fn = sam.create("vit_b", pretrained=False)  # the bare baseline, in this process
    fetcher = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",)))
    client = httpx.Client(timeout=600)
    urls = [f"{base}/{name}" for name in images[:3]]
    t = time.perf_counter()
    r = client.post(f"{url}/predict", json=click_payload(urls[0], 50, 50))
    first = time.perf_counter() - t
    assert r.status_code == 200, r.text
    later = []
    for k in range(clicks):
        t = time.perf_counter()
        r = client.post(f"{url}/predict", json=click_payload(urls[0], 20 + k * 3 % 60, 30 + k * 7 % 50))
        later.append(time.perf_counter() - t)
        assert r.status_code == 200
    ctx = aa.InteractiveFunctionContext()
    enc = fn.encode(ctx, aa.load_image(fetcher.fetch(urls[0])))
    from autoannotate.label_studio.regions import brush_rle

    bare, bare_rle = [], []
    w, h = enc.original_size[1], enc.original_size[0]
    for k in range(clicks):
        prompt = aa.InteractivePrompt(positive_points=[((20 + k * 3 % 60) * w / 100, (30 + k * 7 % 50) * h / 100)])
        t = time.perf_counter()
        (res,) = fn.segment(ctx, enc, prompt)
        bare.append(time.perf_counter() - t)
        brush_rle(res.mask)  # what any Label Studio backend must also do: encode the mask
        bare_rle.append(time.perf_counter() - t)

    def encodings() -> int:
        return client.get(f"{url}/health").json()["cache"]["encodings"]

    def concurrent_clicks(clients: int, each: int, x0: float, dx: float, y0: float, dy: float):
        """``clients`` threads, each clicking ``each`` times, cycling over the three images."""
        latencies: list[float] = []
        errors: list[int] = []

        def user(i: int) -> None:
            c = httpx.Client(timeout=600)
            for k in range(each):
                t = time.perf_counter()
                resp = c.post(f"{url}/predict", json=click_payload(urls[(i + k) % 3], x0 + i * dx, y0 + k * dy))
                latencies.append(time.perf_counter() - t)
                if resp.status_code != 200:
                    errors.append(resp.status_code)

        threads = [threading.Thread(target=user, args=(i,)) for i in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return latencies, errors

    encodes_before = encodings()
    lat3, errors3 = concurrent_clicks(3, 6, 30, 10, 40, 5)  # three annotators alternating between three images
    encodes_three = encodings() - encodes_before
    lat8, errors8 = concurrent_clicks(8, 5, 10, 9, 20, 11)  # 8 concurrent clients on cached images
    total_encodings = encodings()
    server.terminate()
    server.wait()
    return {
        "model": "SAM vit_b, random weights, CPU",
        "first_click_s": round(first, 3),
        "later_click_p50_s": round(p(later, 0.5), 4),
        "later_click_p95_s": round(p(later, 0.95), 4),
        "bare_decoder_p50_s": round(p(bare, 0.5), 4),
        "later_click_p50_vs_bare_decoder": round(p(later, 0.5) / p(bare, 0.5), 3),
        "bare_decoder_plus_brush_rle_p50_s": round(p(bare_rle, 0.5), 4),
        "later_click_p50_vs_decoder_plus_rle": round(p(later, 0.5) / p(bare_rle, 0.5), 3),
        "three_annotators_three_images": {
            "requests": len(lat3),
            "encodings": encodes_three,
            "errors": len(errors3),
            "p50_s": round(p(lat3, 0.5), 3),
            "p95_s": round(p(lat3, 0.95), 3),
        },
        "eight_concurrent_clients": {
            "requests": len(lat8),
            "errors": len(errors8),
            "p50_s": round(p(lat8, 0.5), 3),
            "p95_s": round(p(lat8, 0.95), 3),
            "encodings_total": total_encodings,
        },
    }


def pre_annotation(images: list[str], base: str, n: int) -> dict:
    import httpx

    import autoannotate as aa
    from autoannotate.functions import yolox
    from autoannotate.label_studio import FetchPolicy, ImageFetcher

    fn = yolox.create()
    names = [images[i % len(images)] for i in range(n)]
    fetcher = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",)))
    for name in names[:10]:  # warm-up
        fn.detect(aa.DetectionFunctionContext(), aa.load_image(fetcher.fetch(f"{base}/{name}")))
    t = time.perf_counter()
    for name in names:
        fn.detect(aa.DetectionFunctionContext(), aa.load_image(fetcher.fetch(f"{base}/{name}")))
    bare = time.perf_counter() - t
    url, server = start_backend("--function", "yolox", "--interactive", "none")
    labels = "".join(f'<Label value="{lbl.name}"/>' for lbl in fn.spec.labels)
    client = httpx.Client(timeout=600)
    warm = [{"id": i, "data": {"image": f"{base}/{names[i]}"}} for i in range(10)]  # the same warm-up as the bare loop
    client.post(f"{url}/predict", json={"tasks": warm, "label_config": CONFIG.format(labels=labels)})
    t = time.perf_counter()
    regions = 0
    for k in range(0, n, 16):
        tasks = [{"id": i, "data": {"image": f"{base}/{names[i]}"}} for i in range(k, min(n, k + 16))]
        r = client.post(f"{url}/predict", json={"tasks": tasks, "label_config": CONFIG.format(labels=labels)})
        assert r.status_code == 200, r.text
        regions += sum(len(x.get("result", [])) for x in r.json()["results"])
    ours = time.perf_counter() - t
    server.terminate()
    server.wait()
    return {
        "tasks": n,
        "bare_loop_tasks_per_s": round(n / bare, 2),
        "predict_tasks_per_s": round(n / ours, 2),
        "predict_vs_bare_loop": round(bare / ours, 3),
        "regions": regions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=128)
    parser.add_argument("--skip-sam", action="store_true")
    args = parser.parse_args()
    images = sorted(p.name for p in (COCO / "images").glob("*.jpg"))
    base, image_server = serve_folder(COCO / "images")
    result = {
        "command": "python bench/label_studio_backend.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    result["pre_annotation"] = pre_annotation(images, base, args.tasks)
    print(json.dumps(result["pre_annotation"], indent=2), flush=True)
    if not args.skip_sam:
        result["interactive"] = interactive(images, base, args.clicks)
        print(json.dumps(result["interactive"], indent=2), flush=True)
    image_server.terminate()
    out = ROOT / "bench" / "results" / "label_studio_backend.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    if args.skip_sam and "interactive" in previous:  # keep the last measured SAM figures
        result["interactive"] = previous["interactive"]
        result["interactive_command"] = previous.get("interactive_command", previous.get("command"))
    else:
        result["interactive_command"] = result["command"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
