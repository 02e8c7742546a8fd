"""The ``ultralytics`` function against Ultralytics itself: tiny YOLO11 models built from their
YAML (random weights, fixed seed) and saved as ``.pt`` files, the way a user's trained weights
arrive. For the same images and threshold, the shapes equal Ultralytics' ``Results``: boxes,
masks and mask polygons, keypoints, oriented boxes (corners), the top-1 class. Then the CLI to a
COCO file. Random weights score everything near 0, so the threshold is 0 with a small
``max_det``; ``imgsz=128`` keeps NMS far below its time limit (a cut NMS would depend on timing)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from autoannotate.errors import BadParameterError, WeightsNotFoundError
from autoannotate.interface import BatchDetection, DetectionFunctionContext
from autoannotate.loading import load_function
from autoannotate.shapes import rotated_corners
from tests.functions import yolo_tiny

pytest.importorskip("ultralytics")
os.environ.setdefault("YOLO_OFFLINE", "1")

ARGS = {"imgsz": 128, "max_det": 4}


@pytest.fixture(scope="session")
def yolo_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny saved model per task (``yolo11n*.yaml`` with random weights, seeded)."""
    return yolo_tiny.build(tmp_path_factory.mktemp("yolo"))


@pytest.fixture(scope="session")
def photos(coco128) -> list[PIL.Image.Image]:
    paths = sorted((coco128 / "images").glob("*.jpg"))[:2]
    images = [PIL.Image.open(p).convert("RGB") for p in paths]
    assert images[0].size != images[1].size  # a batch of two sizes
    return images


def reference(path: Path, images, **kwargs):
    """Ultralytics' own Results for ``images`` at threshold 0."""
    from ultralytics import YOLO

    return YOLO(str(path), verbose=False).predict(images, conf=0.0, device="cpu", verbose=False, **ARGS, **kwargs)


def run(fn, images, polygons=False):
    ctx = DetectionFunctionContext(conf_threshold=0.0, conv_mask_to_poly=polygons)
    return fn.detect_batch([ctx] * len(images), images)


def test_detect_boxes_scores_and_labels_equal_ultralytics(yolo_models, photos):
    fn = load_function("ultralytics", model=str(yolo_models["detect"]), device="cpu", **ARGS)
    assert isinstance(fn, BatchDetection)
    assert fn.spec.label_names[:2] == ["person", "bicycle"] and len(fn.spec.labels) == 80  # the model's names
    got = run(fn, photos)
    for shapes, ref in zip(got, reference(yolo_models["detect"], photos)):
        assert len(shapes) == len(ref.boxes) > 0
        assert [s.type for s in shapes] == ["rectangle"] * len(shapes)
        np.testing.assert_allclose([s.points for s in shapes], ref.boxes.xyxy.numpy(), atol=1e-4)
        np.testing.assert_allclose([s.score for s in shapes], ref.boxes.conf.numpy(), atol=1e-6)
        assert [s.label_id for s in shapes] == ref.boxes.cls.int().tolist()
    # one image at a time gives what the batch gave
    single = [fn.detect(DetectionFunctionContext(conf_threshold=0.0), im) for im in photos]
    for a, b in zip(single, got):
        np.testing.assert_allclose([s.points for s in a], [s.points for s in b], atol=1e-3)


def test_threshold_is_passed_on_and_applied_per_image(yolo_models, photos):
    fn = load_function("ultralytics", model=str(yolo_models["detect"]), device="cpu", **ARGS)
    all_scores = sorted(s.score for s in run(fn, photos)[0])
    cut = all_scores[len(all_scores) // 2]  # a threshold between the scores found
    high = DetectionFunctionContext(conf_threshold=cut)
    low = DetectionFunctionContext(conf_threshold=0.0)
    a, b = fn.detect_batch([high, low], photos)
    assert a and all(s.score >= cut for s in a)
    assert len(b) == len(run(fn, photos[1:])[0])


def test_segment_masks_and_polygons_equal_ultralytics(yolo_models, photos):
    fn = load_function("ultralytics", model=str(yolo_models["segment"]), device="cpu", **ARGS)
    refs = reference(yolo_models["segment"], photos, retina_masks=True)
    masks, polys = run(fn, photos), run(fn, photos, polygons=True)
    total = 0
    for m, p, ref, im in zip(masks, polys, refs, photos):
        want = ref.masks.data.numpy() > 0.5
        kept = [i for i in range(len(want)) if want[i].any()]
        assert [s.type for s in m] == ["mask"] * len(kept)
        for s, i in zip(m, kept):
            assert s.bitmap.shape == (im.height, im.width)
            assert np.array_equal(s.bitmap, want[i]) and s.score == pytest.approx(float(ref.boxes.conf[i]))
        with_poly = [i for i, xy in enumerate(ref.masks.xy) if len(xy) >= 3]
        assert [s.type for s in p] == ["polygon"] * len(with_poly)
        for s, i in zip(p, with_poly):
            np.testing.assert_allclose(s.points, np.asarray(ref.masks.xy[i]).reshape(-1), atol=1e-4)
            assert s.label_id == int(ref.boxes.cls[i])
        total += len(m)
    assert total > 0


def test_pose_keypoints_equal_ultralytics_with_coco_names(yolo_models, photos):
    fn = load_function("ultralytics", model=str(yolo_models["pose"]), device="cpu", **ARGS)
    label = fn.spec.labels[0]
    assert label.type == "skeleton" and [k.name for k in label.sublabels][:3] == ["nose", "left_eye", "right_eye"]
    refs = reference(yolo_models["pose"], photos)
    for shapes, ref in zip(run(fn, photos), refs):
        kp = ref.keypoints.data.numpy()
        assert len(shapes) == len(kp) > 0
        for s, k in zip(shapes, kp):
            assert [e.label_id for e in s.elements] == list(range(17))
            np.testing.assert_allclose([e.points for e in s.elements], k[:, :2], atol=1e-4)
            assert [e.occluded for e in s.elements] == (k[:, 2] < 0.5).tolist()
        assert any(e.occluded for s in shapes for e in s.elements) or all(k[:, 2].min() >= 0.5 for k in kp)


def test_pose_keypoint_names_from_a_file_or_a_list(yolo_models, tmp_path):
    names = [f"kp{i}" for i in range(17)]
    listing = tmp_path / "keypoints.txt"
    listing.write_text("\n".join(names) + "\n")
    by_file = load_function("ultralytics", model=str(yolo_models["pose"]), keypoints=str(listing), device="cpu")
    assert [k.name for k in by_file.spec.labels[0].sublabels] == names
    by_list = load_function("ultralytics", model=str(yolo_models["pose"]), keypoints=",".join(names), device="cpu")
    assert [k.name for k in by_list.spec.labels[0].sublabels] == names
    with pytest.raises(BadParameterError, match="17 keypoints, 2 names"):
        load_function("ultralytics", model=str(yolo_models["pose"]), keypoints="a,b", device="cpu")


def test_obb_rotated_rectangles_have_ultralytics_corners(yolo_models, photos):
    fn = load_function("ultralytics", model=str(yolo_models["obb"]), device="cpu", **ARGS)
    refs = reference(yolo_models["obb"], photos)
    total = 0
    for shapes, ref in zip(run(fn, photos), refs):
        corners = ref.obb.xyxyxyxy.numpy()  # pt1..pt4 = centre +/- w/2 along r, +/- h/2 across it
        assert len(shapes) == len(corners) > 0
        for s, c, r in zip(shapes, corners, ref.obb.xywhr.numpy()):
            assert s.type == "rectangle" and 0.0 <= s.rotation < 360.0
            assert s.rotation == pytest.approx(math.degrees(r[4]) % 360.0)
            ours = np.asarray(rotated_corners(s.points, s.rotation)).reshape(4, 2)  # TL, TR, BR, BL
            np.testing.assert_allclose(ours, c[[2, 1, 0, 3]], atol=1e-3)
            xs, ys = c[:, 0], c[:, 1]
            np.testing.assert_allclose(s.bbox(), [xs.min(), ys.min(), xs.max(), ys.max()], atol=1e-3)
        assert [s.label_id for s in shapes] == ref.obb.cls.int().tolist()
        total += len(shapes)
    assert total > 0


def test_obb_conversion_turns_clockwise_like_ultralytics():
    """A 40 x 10 box turned by 30 degrees (Ultralytics' r in radians), checked against its own
    corner conversion: the direction and the corner order cannot be mixed up."""
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    from autoannotate.functions.ultralytics import obb_rectangle

    xywhr = np.array([[100.0, 50.0, 40.0, 10.0, math.radians(30)]])
    s = obb_rectangle(3, xywhr[0], score=0.5)
    assert s.points == (80.0, 45.0, 120.0, 55.0) and s.rotation == pytest.approx(30.0)
    want = xywhr2xyxyxyxy(xywhr)[0]
    np.testing.assert_allclose(np.asarray(rotated_corners(s.points, s.rotation)).reshape(4, 2), want[[2, 1, 0, 3]])
    # y grows downwards: the box's right end goes down (clockwise on screen)
    right_mid = np.asarray(rotated_corners(s.points, s.rotation)).reshape(4, 2)[1:3].mean(0)
    assert right_mid[1] > 50.0
    assert obb_rectangle(0, [0, 0, 4, 2, -math.pi / 2]).rotation == pytest.approx(270.0)


def test_classify_top1_equals_ultralytics(yolo_models, photos):
    fn = load_function("ultralytics", model=str(yolo_models["classify"]), device="cpu", topk=3)
    refs = reference(yolo_models["classify"], photos)
    for shapes, ref in zip(run(fn, photos), refs):
        assert [s.type for s in shapes] == ["tag"] * 3
        assert shapes[0].label_id == ref.probs.top1
        assert shapes[0].score == pytest.approx(float(ref.probs.top1conf))
        assert [s.label_id for s in shapes] == ref.probs.top5[:3]


def test_missing_model_and_bad_precision_are_clear(yolo_models, tmp_path):
    with pytest.raises(BadParameterError, match="needs model="):
        load_function("ultralytics")
    with pytest.raises(WeightsNotFoundError, match="nothing is downloaded"):
        load_function("ultralytics", model=str(tmp_path / "best.pt"))
    with pytest.raises(BadParameterError, match="bfloat16"):
        load_function("ultralytics", model=str(yolo_models["detect"]), dtype="bfloat16")


def test_listed_with_its_license(capsys):
    from autoannotate.cli import main

    assert main(["functions"]) == 0
    text = capsys.readouterr().out
    block = text[text.index("\nultralytics\n") :].split("\n\n")[0]
    assert "AGPL-3.0" in block and "autoannotate[ultralytics]" in block and "model" in block


def test_cli_writes_a_coco_file(yolo_models, coco128, tmp_path):
    from autoannotate.cli import main

    out = tmp_path / "coco.json"
    args = ["annotate", str(coco128 / "images"), "--function", "ultralytics", "-p", f"model=str:{yolo_models['detect']}",
            "-p", "imgsz=int:128", "-p", "max_det=int:2", "-p", "device=cpu", "--conf-threshold", "0.0",
            "-o", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    coco = json.loads(out.read_text())
    assert len(coco["categories"]) == 80
    images = {i["id"]: i["file_name"] for i in coco["images"]}
    assert len(images) == len(list((coco128 / "images").glob("*.jpg")))
    fn = load_function("ultralytics", model=str(yolo_models["detect"]), imgsz=128, max_det=2, device="cpu")
    first = sorted(images.items(), key=lambda kv: kv[1])[0]
    want = fn.detect(
        DetectionFunctionContext(conf_threshold=0.0), PIL.Image.open(coco128 / "images" / first[1]).convert("RGB")
    )
    got = [a for a in coco["annotations"] if a["image_id"] == first[0]]
    assert len(got) == len(want) == 2
    for a, s in zip(sorted(got, key=lambda a: -a["score"]), want):
        x1, y1, x2, y2 = s.points
        np.testing.assert_allclose(a["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=0.01)


def test_every_task_passes_the_core_validation(yolo_models, coco128):
    """Through the driver (validation, thresholds, batching): no image fails for any task, and the
    oriented boxes arrive as rotated rectangles."""
    import autoannotate as aa

    paths = sorted((coco128 / "images").glob("*.jpg"))[:3]
    for task, path in yolo_models.items():
        fn = load_function("ultralytics", model=str(path), device="cpu", **ARGS)
        results, report = aa.annotate_images(fn, paths, conf_threshold=0.0, batch_size=2, progress=False)
        assert report.success and not report.failures and report.annotations_added > 0, (task, report)
        if task == "obb":
            shapes = [s for r in results for s in r.shapes]
            assert all(s.type == "rectangle" for s in shapes) and any(s.rotation for s in shapes)


def test_loading_the_function_leaves_the_process_its_own_image_readers(tmp_path):
    """Importing Ultralytics replaces PIL.Image.open (which then tries to pip-install a HEIF plugin
    on a file Pillow does not recognise) and cv2.imread/imwrite/imshow process-wide; the function
    undoes that, and a non-image stays "not an image file" when a user imported Ultralytics first."""
    import subprocess
    import sys

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}

    def run(code: str) -> str:
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    run(
        "import cv2, PIL.Image\n"
        "before = (PIL.Image.open, cv2.imread, cv2.imwrite, cv2.imshow)\n"
        "from autoannotate.loading import load_function\n"
        "load_function('ultralytics', model='yolo11n.yaml')\n"
        "assert (PIL.Image.open, cv2.imread, cv2.imwrite, cv2.imshow) == before\n"
    )
    out = run(
        "import ultralytics  # the user's own import: PIL.Image.open is Ultralytics' now\n"
        "from autoannotate.images import load_image\n"
        "try:\n"
        f"    load_image({str(junk)!r})\n"
        "except Exception as e:\n"
        "    print(e)\n"
    )
    assert "not an image file (format not recognised)" in out, out
