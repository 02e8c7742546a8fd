"""Bring your own model against a real Label Studio server: the served backend pre-annotating with
an Ultralytics ``.pt`` (``AUTOANNOTATE_FUNCTION=ultralytics`` + ``AUTOANNOTATE_PARAMS`` with the
model's path) and the ``label-studio annotate`` command with an Ultralytics segmentation model
(polygons) and a Hugging Face checkpoint folder (brush masks). What Label Studio stores is
compared with the function run directly (tiny random-weight models)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import PIL.Image
import pytest

from autoannotate.interface import DetectionFunctionContext
from autoannotate.loading import load_function
from tests.functions import hf_tiny, yolo_tiny

pytest.importorskip("label_studio_sdk")
pytest.importorskip("ultralytics")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="person"/><Label value="bicycle"/><Label value="car"/></RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="person"/><Label value="bicycle"/><Label value="car"/></PolygonLabels>
  <BrushLabels name="mask" toName="image"><Label value="cat"/><Label value="dog"/><Label value="car"/></BrushLabels>
</View>"""


def images():
    rng = np.random.default_rng(2)
    return [PIL.Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(3)]


def make_project(ls, title):
    client, project, tasks = ls.project_with_images(title, CONFIG, {f"im{i}": im for i, im in enumerate(images())})
    return client, project, [tasks[f"im{i}"] for i in range(len(tasks))]


def direct(name, labels, threshold, **params):
    """Per image, the function's shapes whose label the config has: Counter of label names."""
    fn = load_function(name, **params)
    ctx = DetectionFunctionContext(conf_threshold=threshold)
    out = []
    for im in images():
        names = [fn.spec.label_names[s.label_id] for s in fn.detect(ctx, im)]
        out.append(Counter(n for n in names if n in labels))
    return out


def stored(client, tasks, from_name, key):
    out = []
    for t in tasks:
        preds = list(client.predictions.list(task=t.id))
        results = [r for p in preds for r in p.result if r["from_name"] == from_name]
        out.append(Counter(lbl for r in results for lbl in r["value"][key]))
    return out


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    return yolo_tiny.build(tmp_path_factory.mktemp("yolo"), ("detect", "segment"))


def test_served_backend_pre_annotates_with_ultralytics_weights(label_studio, serve_backend, yolo):
    from autoannotate.label_studio.service import build_backend
    from autoannotate.settings import Settings

    params = {"model": str(yolo["detect"]), "imgsz": 64, "max_det": 3, "device": "cpu"}
    settings = replace(
        Settings(),
        function="ultralytics",
        params=params,
        interactive=None,
        tracker=None,
        conf_threshold=0.0,
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.token,
    )
    backend = build_backend(settings)
    client, project, tasks = make_project(label_studio, "ultralytics serve")
    running = serve_backend(backend)
    ml = client.ml.create(project=project.id, url=running.url, title="autoannotate", is_interactive=False)
    assert client.ml.get(id=ml.id).state == "CO", "Label Studio could not connect to the backend"
    label_studio.retrieve_predictions(project.id)
    want = direct("ultralytics", {"person", "bicycle", "car"}, 0.0, **params)
    got = stored(client, tasks, "box", "rectanglelabels")
    assert got == want and sum(sum(c.values()) for c in got) > 0


def test_annotate_command_with_ultralytics_polygons_and_a_hugging_face_folder(label_studio, yolo, tmp_path, capsys):
    from autoannotate.cli import main

    client, project, tasks = make_project(label_studio, "byom annotate")
    base = ["label-studio", "annotate", "--url", label_studio.url, "--api-key", label_studio.token,
            "--project", str(project.id), "--conf-threshold", "0.0", "--no-progress"]  # fmt: skip
    seg = {"model": str(yolo["segment"]), "imgsz": 64, "max_det": 2, "device": "cpu"}
    params = [f"model=str:{seg['model']}", "imgsz=int:64", "max_det=int:2", "device=cpu"]
    rc = main(base + ["--function", "ultralytics"] + [a for p in params for a in ("-p", p)])
    assert rc == 0, capsys.readouterr()
    labels = {"person", "bicycle", "car"}
    fn = load_function("ultralytics", **seg)
    ctx = DetectionFunctionContext(conf_threshold=0.0, conv_mask_to_poly=True)
    want = [Counter(fn.spec.label_names[s.label_id] for s in fn.detect(ctx, im) if fn.spec.label_names[s.label_id] in labels) for im in images()]  # fmt: skip
    got = stored(client, tasks, "poly", "polygonlabels")
    assert got == want and sum(sum(c.values()) for c in got) > 0

    folder = hf_tiny.semantic(tmp_path / "segformer")
    rc = main(base + ["--function", "transformers", "-p", f"model=str:{folder}", "--overwrite"])
    assert rc == 0, capsys.readouterr()
    want = direct("transformers", {"cat", "dog", "car"}, 0.0, model=str(folder))
    got = stored(client, tasks, "mask", "brushlabels")
    assert got == want and sum(sum(c.values()) for c in got) > 0
