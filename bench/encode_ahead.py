"""Encode-ahead in the Label Studio backend: the annotator's first click, with and without it.

For each interactive model (real architecture sizes with random weights: the compute is the same,
so the timings are real), on COCO photos sent as data URIs, through ``Backend.predict`` exactly as
Label Studio's requests arrive (no HTTP):

- ``bare decoder``: ``interactive.segment`` on a ready encoding (the floor);
- ``warm click``: a click request on an image already encoded (decoder + mask -> brush RLE);
- ``cold first click``: a click on an image nobody opened before (encoder + decoder);
- ``first click after encode-ahead``: the task is opened (Label Studio asks for its
  pre-annotation), the background encoding finishes while the annotator looks at the image, then
  the click;
- ``open``: the pre-annotation answer itself, with and without encode-ahead (it must not wait).

Ratios are against the bare decoder call of the same run. Usage::

    .venv/bin/python bench/encode_ahead.py [--models edgetam sam2-tiny grabcut] [--images 4]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COCO = Path(os.environ.get("AUTOANNOTATE_COCO128") or REPO.parent / "shared" / "data" / "coco128-train")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="object"/></BrushLabels>
</View>"""


def build(name: str):
    if name == "edgetam":
        from autoannotate.functions import edgetam

        return edgetam.create(pretrained=False)
    if name.startswith("sam2-"):
        from autoannotate.functions import sam2

        return sam2.create(size=name.split("-", 1)[1], pretrained=False)
    if name == "sam-vit_b":
        from autoannotate.functions import sam

        return sam.create(model_type="vit_b", pretrained=False)
    from autoannotate.loading import load_function

    return load_function(name)


def photos(n: int) -> list[str]:
    import PIL.Image

    files = sorted((COCO / "images").glob("*.jpg"))[:n]
    if len(files) < n:
        sys.exit(f"need {n} photos under {COCO / 'images'}")
    out = []
    for f in files:
        buf = io.BytesIO()
        PIL.Image.open(f).convert("RGB").save(buf, "JPEG", quality=92)
        out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def click(task_id: int, uri: str) -> dict:
    context = {"result": [{"type": "keypointlabels", "value": {"x": 50, "y": 50, "keypointlabels": ["object"]}}]}
    return {"tasks": [{"id": task_id, "data": {"image": uri}}], "label_config": CONFIG, "params": {"context": context}}


def opened(task_id: int, uri: str) -> dict:
    return {"tasks": [{"id": task_id, "data": {"image": uri}}], "label_config": CONFIG}


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def one_image(interactive, i: int, uri: str) -> dict[str, float]:
    import PIL.Image

    from autoannotate.interface import InteractiveFunctionContext, InteractivePrompt
    from autoannotate.label_studio import Backend, EncodingCache

    ictx = InteractiveFunctionContext()
    image = PIL.Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    w, h = image.size
    encoding = interactive.encode(ictx, image)
    prompt = InteractivePrompt(positive_points=((w / 2, h / 2),))
    row = {"bare": min(timed(interactive.segment, ictx, encoding, prompt) for _ in range(3))}

    cold = Backend(interactive=interactive, cache=EncodingCache(), encode_ahead=False)
    row["open_plain"] = timed(cold.predict, opened(i, uri))
    row["cold"] = timed(cold.predict, click(i, uri))
    row["warm"] = min(timed(cold.predict, click(i, uri)) for _ in range(3))

    ahead = Backend(interactive=interactive, cache=EncodingCache())
    row["open_ahead"] = timed(ahead.predict, opened(i, uri))
    assert ahead.wait_encode_ahead(600), "encode-ahead did not finish"
    row["ahead"] = timed(ahead.predict, click(i, uri))
    assert ahead.cache.stats.computed == 1, "the click encoded again"
    return row


def measure(name: str, uris: list[str]) -> dict:
    from autoannotate.label_studio import Backend

    interactive = build(name)
    Backend(interactive=interactive).controls(CONFIG)  # warm-up: the first config parse imports the SDK
    rows = [one_image(interactive, i, uri) for i, uri in enumerate(uris)]
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {
        "model": name,
        "model_version": getattr(interactive, "model_version", name),
        "seconds": {k: round(v, 4) for k, v in med.items()},
        "first_click_after_encode_ahead_over_bare_decoder": round(med["ahead"] / med["bare"], 2),
        "first_click_after_encode_ahead_over_warm_click": round(med["ahead"] / med["warm"], 2),
        "cold_first_click_over_first_click_after_encode_ahead": round(med["cold"] / med["ahead"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["edgetam", "sam2-tiny", "grabcut"])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "encode_ahead.json")
    args = parser.parse_args()
    import torch

    uris = photos(args.images)
    results = []
    for name in args.models:
        torch.manual_seed(0)
        r = measure(name, uris)
        results.append(r)
        print(json.dumps(r))
    record = {
        "command": "python bench/encode_ahead.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "images": args.images,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
