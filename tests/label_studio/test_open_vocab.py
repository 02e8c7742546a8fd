"""Open-vocabulary functions against a real Label Studio 1.23 server: the labeling config's labels
(custom names COCO does not have; a ``<Label>``'s ``predicted_values`` as its prompt) are what
SAM 3 / OWLv2 search, for the served backend's pre-annotations (Brush and Polygon) and for the
``label-studio annotate`` command (Rectangle). Tiny random-weight models saved as Hugging Face
folders are found through ``AUTOANNOTATE_MODELS``; what Label Studio stores is compared with the
function run directly, not with any truth."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import PIL.Image
import pytest

from autoannotate.interface import DetectionFunctionContext
from autoannotate.label_studio.config import config_classes, parse_config
from autoannotate.loading import load_function
from tests.functions.test_open_vocab import save_tiny

pytest.importorskip("label_studio_sdk")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Forklift" predicted_values="yellow forklift"/>
    <Label value="pallet_jack"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Forklift" predicted_values="yellow forklift"/>
    <Label value="pallet_jack"/>
  </BrushLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Forklift" predicted_values="yellow forklift"/>
    <Label value="pallet_jack"/>
  </PolygonLabels>
</View>"""


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    models = tmp_path / "models"
    save_tiny("sam3", models / "sam3")
    save_tiny("owlv2", models / "owlv2-base")
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(models))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    return models


def images():
    rng = np.random.default_rng(1)
    return [PIL.Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(3)]


def make_project(ls, title):
    client, project, tasks = ls.project_with_images(title, CONFIG, {f"im{i}": im for i, im in enumerate(images())})
    return client, project, [tasks[f"im{i}"] for i in range(len(tasks))]


def direct(name, threshold, **params):
    """Label counts per image from the function run directly with the config's classes/prompts."""
    fn = load_function(name, classes=["Forklift", "pallet_jack"], prompts={"Forklift": "yellow forklift"}, **params)
    ctx = DetectionFunctionContext(conf_threshold=threshold)
    return [Counter(fn.spec.label_names[s.label_id] for s in fn.detect(ctx, im)) for im in images()]


def region_counts(results, from_name, key):
    return Counter(lbl for r in results if r["from_name"] == from_name for lbl in r["value"].get(key, []))


def test_config_labels_and_predicted_values_become_classes_and_prompts():
    names, prompts = config_classes(parse_config(CONFIG))
    assert names == ["Forklift", "pallet_jack"]
    assert prompts == {"Forklift": ["yellow forklift"]}


def test_served_sam3_pre_annotates_with_the_config_labels(label_studio, serve_backend, tiny_weights):
    from autoannotate.label_studio.service import build_backend
    from autoannotate.settings import Settings

    settings = replace(
        Settings(),
        function="sam3",
        params={},
        interactive=None,
        tracker=None,
        conf_threshold=0.45,
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.token,
    )
    backend = build_backend(settings)
    assert backend.function.spec.label_names == ["object"]  # the stand-in until a config names classes
    client, project, tasks = make_project(label_studio, "open vocabulary serve")
    running = serve_backend(backend)
    ml = client.ml.create(project=project.id, url=running.url, title="autoannotate", is_interactive=False)
    assert client.ml.get(id=ml.id).state == "CO", "Label Studio could not connect to the backend"
    label_studio.retrieve_predictions(project.id)
    want = direct("sam3", 0.45)
    total = 0
    for t, counts in zip(tasks, want):
        preds = list(client.predictions.list(task=t.id))
        results = preds[0].result if preds else []
        assert len(preds) == (1 if counts else 0)
        assert region_counts(results, "mask", "brushlabels") == counts
        assert region_counts(results, "poly", "polygonlabels") <= counts  # tiny masks may have no outline
        for r in results:
            if r["from_name"] == "mask":
                assert r["value"]["format"] == "rle" and 0.45 <= r["score"] <= 1
        total += sum(counts.values())
    assert total > 0


def test_annotate_command_with_owlv2_finds_the_config_labels(label_studio, tiny_weights, monkeypatch, capsys):
    from autoannotate.cli import main

    client, project, tasks = make_project(label_studio, "open vocabulary annotate")
    rc = main(
        [
            "label-studio",
            "annotate",
            "--url",
            label_studio.url,
            "--api-key",
            label_studio.token,
            "--project",
            str(project.id),
            "--function",
            "owlv2",
            "--conf-threshold",
            "0.3",
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr()
    want = direct("owlv2", 0.3)
    total = 0
    for t, counts in zip(tasks, want):
        preds = list(client.predictions.list(task=t.id))
        results = preds[0].result if preds else []
        assert region_counts(results, "box", "rectanglelabels") == counts
        total += sum(counts.values())
    assert total > 0


def test_served_open_vocabulary_function_with_the_users_prompts_or_classes(tiny_weights):
    """AUTOANNOTATE_PARAMS prompts= (no classes) start the service and apply to the config's labels
    they name (a Label's predicted_values still win); classes= are searched as given; the
    prediction version names what was searched, so changed labels are another version."""
    from dataclasses import replace as with_

    from autoannotate.label_studio.service import build_backend
    from autoannotate.settings import Settings

    base = with_(Settings(), function="owlv2", interactive=None, tracker=None)
    backend = build_backend(with_(base, params={"prompts": "pallet_jack=hand pallet truck|pallet jack"}))
    controls = backend.controls(CONFIG)["detection"]
    found = backend.detector(controls)
    assert found.spec.label_names == ["Forklift", "pallet_jack"]
    assert {c.name: list(c.prompts) for c in found.classes} == {
        "Forklift": ["yellow forklift"],
        "pallet_jack": ["hand pallet truck", "pallet jack"],
    }
    other = backend.controls(CONFIG.replace("pallet_jack", "hand_truck"))["detection"]
    assert backend._version(controls) != backend._version(other)
    assert backend._version(controls) == backend._version(backend.controls(CONFIG)["detection"])

    fixed = build_backend(with_(base, params={"classes": "crate"}))
    assert fixed.detector(fixed.controls(CONFIG.replace("Forklift", "crate"))["detection"]).spec.label_names == [
        "crate"
    ]
