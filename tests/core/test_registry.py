"""The function registry (one record per function, entry points for other packages) and the
capability Protocols."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate import registry
from autoannotate.auto import interactive_candidates
from autoannotate.interface import (
    BatchDetection,
    BoxSegmenting,
    OpenVocabulary,
    Preprocessing,
    Versioned,
    VideoSessions,
    model_version,
)
from autoannotate.loading import function_names, is_open_vocabulary, load_function
from autoannotate.weights import registry as weights_registry
from tests.installed import pythonpath

# What the three hand-kept tables said before the records (loading.REGISTRY, weights.REGISTRY,
# loading._CPU_ORDER): the records must say the same.
KINDS = {
    "yolox": "detection",
    "fiftyone_zoo": "detection",
    "torchvision_detection": "detection",
    "torchvision_instance_segmentation": "detection",
    "torchvision_keypoint_detection": "detection",
    "torchvision_classification": "detection",
    "sam3": "detection",
    "owlv2": "detection",
    "grounding_dino": "detection",
    "ultralytics": "detection",
    "transformers": "detection",
    "sam": "interactive",
    "sam2": "interactive",
    "edgetam": "interactive",
    "grabcut": "interactive",
    "opencv_tracker": "tracking",
    "sam_tracker": "tracking",
    "sam2_video": "tracking",
    "edgetam_video": "tracking",
}
WEIGHTS = {
    "yolox_nano",
    "yolox_tiny",
    "yolox_s",
    "yolox_m",
    "yolox_l",
    "yolox_x",
    "sam_vit_b",
    "sam_vit_l",
    "sam_vit_h",
    "sam2.1-hiera-tiny",
    "sam2.1-hiera-small",
    "sam2.1-hiera-base-plus",
    "sam2.1-hiera-large",
    "edgetam",
    "sam3",
    "owlv2-base",
    "grounding-dino-tiny",
}
CPU_ORDER = [
    ("edgetam", {}),
    ("sam2", {"size": "tiny"}),
    ("sam2", {"size": "small"}),
    ("sam2", {"size": "base-plus"}),
    ("sam2", {"size": "large"}),
    ("sam", {"model_type": "vit_b"}),
    ("sam", {"model_type": "vit_l"}),
    ("sam", {"model_type": "vit_h"}),
]


def test_the_records_say_what_the_three_tables_said():
    fns = registry.predefined_functions()
    assert {n: f.record.kind for n, f in fns.items()} == KINDS
    assert set(weights_registry()) == WEIGHTS
    assert weights_registry()["yolox_s"].url.endswith("/0.1.1rc0/yolox_s.onnx")
    assert weights_registry()["edgetam"].repo_id == "yonigozlan/EdgeTAM-hf"
    assert interactive_candidates("cpu") == CPU_ORDER
    assert interactive_candidates("cuda") == list(reversed(CPU_ORDER[:5])) + list(reversed(CPU_ORDER[5:]))
    assert {n for n, f in fns.items() if f.record.open_vocabulary} == {
        "sam3",
        "owlv2",
        "grounding_dino",
        "transformers",
    }
    assert fns["yolox"].record.extras == ("onnx",) and fns["yolox"].record.summary.startswith("YOLOX")
    assert function_names("tracking") == ["edgetam_video", "opencv_tracker", "sam2_video", "sam_tracker"]
    with pytest.raises(aa.BadFunctionError, match="kind must be one of"):
        registry.FunctionRecord("x", kind="segmenter")


class _Batch:
    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("a", 0)])
    model_version = "batch-1"

    def detect(self, context, image):
        return []

    def detect_batch(self, contexts, images):
        return [[] for _ in images]


class _NoBatch:
    spec = _Batch.spec
    detect_batch = None  # a member set to None is not the capability

    def detect(self, context, image):
        return []


def test_capabilities_are_protocols_checked_with_isinstance():
    assert isinstance(_Batch(), BatchDetection) and isinstance(_Batch(), aa.DetectionFunction)
    assert not isinstance(_NoBatch(), BatchDetection)
    assert model_version(_Batch()) == "batch-1"
    assert model_version(_NoBatch()) == "_NoBatch" and model_version(_NoBatch(), "yolox") == "yolox"
    assert isinstance(_Batch(), Versioned) and not isinstance(_NoBatch(), Versioned)
    grabcut = load_function("grabcut")
    assert isinstance(grabcut, BoxSegmenting) and isinstance(grabcut, aa.InteractiveFunction)
    tracker = load_function("opencv_tracker")
    assert isinstance(tracker, Preprocessing) and not isinstance(tracker, VideoSessions)
    for obj in (grabcut, tracker, _Batch()):
        assert not isinstance(obj, OpenVocabulary)
    owl = load_function("owlv2", classes=["cat"], pretrained=False)
    assert isinstance(owl, OpenVocabulary) and isinstance(owl, BatchDetection)
    assert isinstance(owl.for_classes(["dog"]), aa.DetectionFunction)


def test_an_installed_function_is_registered_and_loads(installed, caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="autoannotate.registry"):
        names = function_names("detection")
    assert "bright_spots" in names and names.index("bright_spots") > names.index("yolox")
    assert "broken_fn" not in names  # listed as broken by `autoannotate functions`, not offered
    assert any("'yolox' of package bright-spots is ignored" in r.getMessage() for r in caplog.records)
    assert registry.lookup("yolox").origin == "autoannotate.functions.yolox"  # the predefined one
    fn = load_function("bright_spots", threshold=100)
    assert fn.model_version == "bright-spots@100" and registry.lookup("bright_spots").record.license == "MIT"
    img = np.zeros((20, 30, 3), np.uint8)
    img[5:9, 10:16] = 255
    shapes = fn.detect(aa.DetectionFunctionContext(), PIL.Image.fromarray(img))
    assert [s.points for s in shapes] == [(10.0, 5.0, 16.0, 9.0)]
    # a registered name wins over a module of the same name (here the standard library's json)
    assert type(load_function("json")).__name__ == "BrightSpots"
    assert not is_open_vocabulary("bright_spots")
    with pytest.raises(aa.BadParameterError, match="threshold"):
        load_function("bright_spots", level=3)
    with pytest.raises(aa.BadFunctionError, match=r"'broken_fn' from package 'broken-functions'.*ModuleNotFoundError"):
        load_function("broken_fn")
    assert type(load_function("grabcut")).__name__ == "GrabCutFunction"  # the others are unaffected


def _cli(*args, root):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOANNOTATE_", "LABEL_STUDIO_"))}
    env["PYTHONPATH"] = pythonpath(root)
    return subprocess.run(
        [sys.executable, "-m", "autoannotate.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_cli_lists_and_runs_an_installed_function(installed, tmp_path):
    r = _cli("functions", root=installed)
    assert r.returncode == 0, r.stderr
    assert "bright_spots (from package bright-spots)\n    [detection] Bright spots: one box" in r.stdout
    assert "Parameters: threshold: int = 200" in r.stdout
    assert "broken_fn\n    [broken] function 'broken_fn' from package 'broken-functions'" in r.stdout
    assert "yolox\n    [detection] YOLOX" in r.stdout  # still the predefined one
    images = tmp_path / "imgs"
    images.mkdir()
    img = np.zeros((20, 30, 3), np.uint8)
    img[2:6, 3:7] = 250
    PIL.Image.fromarray(img).save(images / "a.png")
    out = tmp_path / "coco.json"
    r = _cli("annotate", str(images), "--function", "bright_spots", "-p", "threshold=int:240", "-o", str(out),
             "--no-progress", root=installed)  # fmt: skip
    assert r.returncode == 0, r.stderr
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["bright"]
    assert [a["bbox"] for a in coco["annotations"]] == [[3.0, 2.0, 4.0, 4.0]]
    # --function-module names a module even where a registered function has its name
    r = _cli("annotate", str(images), "--function-module", "json", "-o", str(out), root=installed)
    assert r.returncode == 2 and "json is not an auto-annotation function" in r.stderr
    r = _cli("annotate", str(images), "--function", "broken_fn", "-o", str(out), root=installed)
    assert r.returncode == 2 and "from package 'broken-functions'" in r.stderr and "Traceback" not in r.stderr
