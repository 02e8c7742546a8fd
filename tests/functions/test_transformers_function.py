"""The ``transformers`` function against transformers itself: tiny checkpoints with random weights
(fixed seed, :mod:`tests.functions.hf_tiny`) saved with ``save_pretrained``, loaded by folder.
For the same image and threshold, the shapes equal what the library's pipeline returns (boxes,
labels, scores, masks, tags); the task is read from each checkpoint's config. Random weights
score low, so thresholds are 0 (the pipelines' ``threshold=0.0``)."""

from __future__ import annotations

import logging

import numpy as np
import PIL.Image
import pytest

from autoannotate.errors import BadParameterError, WeightsNotFoundError
from autoannotate.interface import BatchDetection, DetectionFunctionContext, OpenVocabulary
from autoannotate.loading import load_function
from tests.functions import hf_tiny

transformers = pytest.importorskip("transformers")
logging.getLogger("transformers").setLevel(logging.ERROR)
ZERO = DetectionFunctionContext(conf_threshold=0.0)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    return {task: build(folder / task.replace("-", "_")) for task, build in hf_tiny.ALL.items()}


@pytest.fixture(scope="session")
def photos(coco128) -> list[PIL.Image.Image]:
    paths = sorted((coco128 / "images").glob("*.jpg"))[:3]
    return [PIL.Image.open(p).convert("RGB") for p in paths]


def pipe(task, folder):
    return transformers.pipeline(task, model=str(folder), device="cpu")


@pytest.mark.parametrize("task", list(hf_tiny.ALL))
def test_task_is_read_from_the_config(checkpoints, task):
    from transformers import AutoConfig

    from autoannotate.functions.transformers import infer_task

    assert infer_task(AutoConfig.from_pretrained(checkpoints[task])) == task


def test_object_detection_equals_the_pipeline(checkpoints, photos):
    fn = load_function("transformers", model=str(checkpoints["object-detection"]), device="cpu")
    assert isinstance(fn, BatchDetection) and not isinstance(fn, OpenVocabulary)
    assert fn.spec.label_names == ["cat", "dog", "car"] and fn.spec.labels[0].type == "rectangle"
    batch = fn.detect_batch([ZERO] * len(photos), photos)
    p = pipe("object-detection", checkpoints["object-detection"])
    for shapes, im in zip(batch, photos):
        ref = p(im, threshold=0.0)
        assert len(shapes) == len(ref) > 0
        for s, r in zip(shapes, ref):
            assert fn.spec.label_names[s.label_id] == r["label"] and s.score == pytest.approx(r["score"], abs=1e-6)
            box = r["box"]  # the pipeline truncates to whole pixels
            assert [int(v) for v in s.points] == [box["xmin"], box["ymin"], box["xmax"], box["ymax"]]
    # images of different sizes are not padded together: one at a time gives the same shapes
    assert [fn.detect(ZERO, im) for im in photos] == batch


def test_default_threshold_is_the_pipelines(checkpoints, photos):
    fn = load_function("transformers", model=str(checkpoints["object-detection"]), device="cpu")
    none = DetectionFunctionContext(conf_threshold=None)
    assert fn.default_conf_threshold == 0.5
    shapes = fn.detect(none, photos[0])
    ref = pipe("object-detection", checkpoints["object-detection"])(photos[0])  # its default, 0.5
    assert len(shapes) == len(ref) and all(s.score > 0.5 for s in shapes)
    lower = load_function("transformers", model=str(checkpoints["object-detection"]), default_conf_threshold=0.2)
    assert len(lower.detect(none, photos[0])) >= len(shapes)


def test_semantic_segmentation_masks_equal_the_pipeline(checkpoints, photos):
    folder = checkpoints["semantic-segmentation"]
    fn = load_function("transformers", model=str(folder), device="cpu")
    p = pipe("image-segmentation", folder)
    for shapes, im in zip(fn.detect_batch([ZERO] * 3, photos), photos):
        ref = p(im)
        assert [fn.spec.label_names[s.label_id] for s in shapes] == [r["label"] for r in ref]
        for s, r in zip(shapes, ref):
            assert s.type == "mask" and s.score is None
            assert np.array_equal(s.bitmap, np.asarray(r["mask"]) > 0)


@pytest.mark.parametrize("subtask", ["panoptic", "instance"])
def test_panoptic_and_instance_segmentation_equal_the_pipeline(checkpoints, photos, subtask):
    folder = checkpoints["panoptic-segmentation"]
    knobs = {"mask_threshold": 0.2, "overlap_mask_area_threshold": 0.0}
    task = None if subtask == "panoptic" else "instance-segmentation"
    fn = load_function("transformers", model=str(folder), task=task, device="cpu", **knobs)
    assert fn.task == f"{subtask}-segmentation"
    p = pipe("image-segmentation", folder)
    total = 0
    for shapes, im in zip(fn.detect_batch([ZERO] * 3, photos), photos):
        ref = p(im, subtask=subtask, threshold=0.0, **knobs)
        assert len(shapes) == len(ref)
        for s, r in zip(shapes, ref):
            assert fn.spec.label_names[s.label_id] == r["label"] and s.score == pytest.approx(r["score"])
            if subtask == "panoptic":
                assert np.array_equal(s.bitmap, np.asarray(r["mask"]) > 0)
            else:  # the pipeline paints instances into one map (later ones over earlier): ours are whole
                assert not (np.asarray(r["mask"]) > 0)[~s.bitmap].any()
        total += len(shapes)
    assert total > 0
    if subtask == "instance":  # each mask is the library's own binary map of that instance
        proc = transformers.AutoImageProcessor.from_pretrained(str(folder))
        model = transformers.AutoModelForUniversalSegmentation.from_pretrained(str(folder)).eval()
        import torch

        with torch.no_grad():
            out = model(**proc(images=[photos[0]], return_tensors="pt"))
        size = [(photos[0].height, photos[0].width)]
        ref = proc.post_process_instance_segmentation(out, threshold=0.0, target_sizes=size, return_binary_maps=True,
                                                      **knobs)[0]  # fmt: skip
        maps = ref["segmentation"].numpy() > 0
        shapes = fn.detect(ZERO, photos[0])
        assert len(shapes) == len(maps) and all(np.array_equal(s.bitmap, m) for s, m in zip(shapes, maps))
        assert any((a.bitmap & b.bitmap).any() for a in shapes for b in shapes if a is not b)  # they overlap


def test_image_classification_topk_equals_the_pipeline(checkpoints, photos):
    folder = checkpoints["image-classification"]
    fn = load_function("transformers", model=str(folder), topk=2, device="cpu")
    p = pipe("image-classification", folder)
    for shapes, im in zip(fn.detect_batch([ZERO] * 3, photos), photos):
        ref = p(im, top_k=2)
        assert [fn.spec.label_names[s.label_id] for s in shapes] == [r["label"] for r in ref]
        assert [s.score for s in shapes] == pytest.approx([r["score"] for r in ref], abs=1e-6)
        assert all(s.type == "tag" for s in shapes)


def test_zero_shot_classification_equals_the_pipeline_and_takes_other_classes(checkpoints, photos):
    folder = checkpoints["zero-shot-image-classification"]
    fn = load_function("transformers", model=str(folder), classes=["forklift", "pallet_jack", "cat"], topk=3)
    assert isinstance(fn, OpenVocabulary) and fn.spec.label_names == ["forklift", "pallet_jack", "cat"]
    p = pipe("zero-shot-image-classification", folder)
    for shapes, im in zip(fn.detect_batch([ZERO] * 3, photos), photos):
        ref = p(im, candidate_labels=["forklift", "pallet jack", "cat"])  # names become prompts
        assert [fn.spec.label_names[s.label_id].replace("_", " ") for s in shapes] == [r["label"] for r in ref]
        assert [s.score for s in shapes] == pytest.approx([r["score"] for r in ref], abs=1e-5)
    other = fn.for_classes(["dog", "car"])
    assert other.spec.label_names == ["dog", "car"] and fn.spec.label_names[0] == "forklift"
    assert len(other.detect(ZERO, photos[0])) == 2  # topk 3, two classes


def test_zero_shot_detection_is_the_owlv2_function_over_this_checkpoint(checkpoints, photos):
    folder = str(checkpoints["zero-shot-object-detection"])
    fn = load_function("transformers", model=folder, classes=["cat", "stop_sign"], device="cpu")
    same = load_function("owlv2", checkpoint=folder, classes=["cat", "stop_sign"], device="cpu")
    assert isinstance(fn, OpenVocabulary) and fn.spec.label_names == ["cat", "stop_sign"]
    got = fn.detect_batch([ZERO] * 2, photos[:2])
    assert got == same.detect_batch([ZERO] * 2, photos[:2]) and sum(map(len, got)) > 0


def test_the_name_is_the_function_not_the_transformers_package(checkpoints):
    """Before this function existed, ``--function transformers`` imported the library itself and
    failed with "transformers has no create() function"."""
    from autoannotate.loading import function_record, import_function_module
    from autoannotate.registry import names

    assert "transformers" in names("detection") and "ultralytics" in names("detection")
    assert import_function_module("transformers").__name__ == "autoannotate.functions.transformers"
    record = function_record("transformers")
    assert record is not None and record.open_vocabulary and "transformers" in record.extras


def test_clear_errors(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AUTOANNOTATE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BadParameterError, match="needs model="):
        load_function("transformers")
    with pytest.raises(WeightsNotFoundError) as e:
        load_function("transformers", model="PekingU/rtdetr_v2_r18vd")
    text = str(e.value)
    assert "not on this machine" in text and "AUTOANNOTATE_OFFLINE=1" in text
    assert "hf download PekingU/rtdetr_v2_r18vd --local-dir rtdetr_v2_r18vd" in text and "-p model=str:" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="no config.json"):
        load_function("transformers", model=str(tmp_path / "empty"))
    with pytest.raises(BadParameterError, match="task must be one of"):
        load_function("transformers", model=str(checkpoints["object-detection"]), task="depth-estimation")
    with pytest.raises(BadParameterError, match="open-vocabulary"):
        load_function("transformers", model=str(checkpoints["zero-shot-image-classification"]))


def test_cli_writes_a_coco_file(checkpoints, coco128, tmp_path):
    import json

    from autoannotate.cli import main

    one = tmp_path / "imgs"
    one.mkdir()
    for p in sorted((coco128 / "images").glob("*.jpg"))[:2]:
        (one / p.name).symlink_to(p)
    out = tmp_path / "coco.json"
    folder = checkpoints["object-detection"]
    args = ["annotate", str(one), "--function", "transformers", "-p", f"model=str:{folder}",
            "--conf-threshold", "0.0", "-o", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog", "car"]
    fn = load_function("transformers", model=str(folder))
    first = min(coco["images"], key=lambda i: i["file_name"])
    want = fn.detect(ZERO, PIL.Image.open(one / first["file_name"]).convert("RGB"))
    got = [a for a in coco["annotations"] if a["image_id"] == first["id"]]
    assert len(got) == len(want) > 0
    assert sorted(a["score"] for a in got) == pytest.approx(sorted(s.score for s in want))


def test_zero_shot_detection_with_a_grounding_dino_checkpoint(tmp_path):
    """A Grounding DINO folder is served by the grounding_dino function over it (its caption
    building and token-to-class assignment), with this checkpoint's weights."""
    from tests.functions.test_open_vocab import save_tiny, test_images

    folder = tmp_path / "gdino"
    save_tiny("grounding_dino", folder)
    fn = load_function("transformers", model=str(folder), classes=["cat", "stop_sign"], device="cpu")
    same = load_function("grounding_dino", checkpoint=str(folder), classes=["cat", "stop_sign"], device="cpu")
    assert type(fn).__name__ == "GroundingDinoFunction" and fn.spec.label_names == ["cat", "stop_sign"]
    images = test_images()[:2]
    got = fn.detect_batch([ZERO] * 2, images)
    assert got == same.detect_batch([ZERO] * 2, images) and sum(map(len, got)) > 0
