"""Each torchvision function returns exactly what the torchvision model returns when called
directly on the same image (random weights, fixed seed, same constructor arguments)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import autoannotate as aa  # noqa: E402
from autoannotate.functions import (  # noqa: E402
    torchvision_classification,
    torchvision_detection,
    torchvision_instance_segmentation,
    torchvision_keypoint_detection,
)
from autoannotate.seeding import seeded_torch  # noqa: E402

# Small inputs keep the CPU cost low; score threshold 0 so random weights still produce outputs.
DET_KWARGS = {"min_size": 320, "max_size": 320, "box_score_thresh": 0.0, "box_detections_per_img": 20}


def reference(model_name, **kwargs):
    """The model built directly through torchvision, random weights drawn as ours are (from a
    generator seeded by the model's name)."""
    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    extra = {}
    if "keypoint" in model_name:
        extra["num_keypoints"] = len(weights.meta["keypoint_names"])
    builder_kwargs = {"weights": None, **extra, **kwargs}
    if "detection" in torchvision.models.get_model_builder(model_name).__module__:
        builder_kwargs["weights_backbone"] = None
    builder_kwargs["num_classes"] = len(weights.meta["categories"])
    with seeded_torch(model_name):
        model = torchvision.models.get_model(model_name, **builder_kwargs).eval()
    return model, weights


def ours(module, model_name, **kwargs):
    torch.manual_seed(0)  # what the global generator holds does not matter (test_random_weights_...)
    return module.create(model_name, pretrained=False, **kwargs)


def real_labels(out, weights):
    """The reference's output restricted to real categories (torchvision's 'N/A' placeholders
    are not labels, so functions leave them out)."""
    cats = weights.meta["categories"]
    keep = torch.tensor([cats[i] not in ("N/A", "__background__") for i in out["labels"].tolist()], dtype=torch.bool)
    return {k: v[keep] for k, v in out.items()}


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_detection(astronaut):
    ref, weights = reference("fasterrcnn_mobilenet_v3_large_320_fpn", **DET_KWARGS)
    fn = ours(torchvision_detection, "fasterrcnn_mobilenet_v3_large_320_fpn", **DET_KWARGS)
    assert same_weights(ref, fn.model)
    with torch.inference_mode():
        out = real_labels(ref([weights.transforms()(astronaut)])[0], weights)
    shapes = fn.detect(aa.DetectionFunctionContext("astronaut", conf_threshold=0.0), astronaut)
    assert len(out["boxes"]) > 0, "the reference must produce detections for the comparison to mean anything"
    assert [s.label_id for s in shapes] == out["labels"].tolist()
    assert np.allclose([s.points for s in shapes], out["boxes"].numpy(), atol=1e-4)
    assert np.allclose([s.score for s in shapes], out["scores"].numpy(), atol=1e-6)
    assert all(s.type == "rectangle" for s in shapes)
    names = [fn.spec.label(s.label_id).name for s in shapes]
    assert names == [weights.meta["categories"][i] for i in out["labels"].tolist()]


def test_instance_segmentation_masks_and_polygons(astronaut):
    kwargs = {**DET_KWARGS, "box_detections_per_img": 5}
    ref, weights = reference("maskrcnn_resnet50_fpn", **kwargs)
    fn = ours(torchvision_instance_segmentation, "maskrcnn_resnet50_fpn", **kwargs)
    with torch.inference_mode():
        out = real_labels(ref([weights.transforms()(astronaut)])[0], weights)
    assert len(out["boxes"]) > 0
    shapes = fn.detect(aa.DetectionFunctionContext("a", conf_threshold=0.0), astronaut)
    assert [s.label_id for s in shapes] == out["labels"].tolist()
    expected = (out["masks"][:, 0] >= 0.5).numpy()
    assert all(s.type == "mask" for s in shapes)
    assert all(np.array_equal(s.bitmap, m) for s, m in zip(shapes, expected))
    assert np.allclose([s.score for s in shapes], out["scores"].numpy(), atol=1e-6)
    polys = fn.detect(aa.DetectionFunctionContext("a", conf_threshold=0.0, conv_mask_to_poly=True), astronaut)
    assert polys and all(p.type == "polygon" and len(p.points) >= 6 for p in polys)
    # each polygon outlines a region of its instance's mask: its outer outline (a hole inside the
    # region is inside the polygon), specks under 3 pixels have none
    from scipy.ndimage import binary_dilation, binary_fill_holes

    from autoannotate.masks import polygon_to_mask

    candidates = [(m, sc) for m, sc in zip(expected, out["scores"].tolist())]
    for p in polys:
        m = next(m for m, sc in candidates if abs(sc - p.score) < 1e-6)
        drawn = polygon_to_mask(p.points, astronaut.size)
        assert drawn.any() and not (drawn & ~binary_fill_holes(binary_dilation(m, iterations=1))).any()


def test_keypoint_detection_skeletons(astronaut):
    kwargs = {**DET_KWARGS, "box_detections_per_img": 5}
    ref, weights = reference("keypointrcnn_resnet50_fpn", **kwargs)
    fn = ours(torchvision_keypoint_detection, "keypointrcnn_resnet50_fpn", **kwargs)
    with torch.inference_mode():
        out = real_labels(ref([weights.transforms()(astronaut)])[0], weights)
    assert len(out["boxes"]) > 0
    shapes = fn.detect(aa.DetectionFunctionContext("a", conf_threshold=0.0), astronaut)
    assert [s.type for s in shapes] == ["skeleton"] * len(out["boxes"])
    kps = out["keypoints"].numpy()
    for s, k in zip(shapes, kps):
        assert [e.label_id for e in s.elements] == list(range(17))
        assert np.allclose([e.points for e in s.elements], k[:, :2], atol=1e-4)
        assert [e.occluded for e in s.elements] == [v == 0 for v in k[:, 2]]
    names = [k.name for k in fn.spec.label(shapes[0].label_id).sublabels]
    assert names == weights.meta["keypoint_names"]


def test_keypoints_marked_invisible_become_occluded():
    fn = ours(torchvision_keypoint_detection, "keypointrcnn_resnet50_fpn", **DET_KWARGS)
    kp = torch.zeros(1, 17, 3)
    kp[0, :, 2] = 1
    kp[0, 3, 2] = 0
    out = {"boxes": torch.zeros(1, 4), "scores": torch.tensor([0.9]), "labels": torch.tensor([1]), "keypoints": kp}
    (s,) = fn.convert(aa.DetectionFunctionContext(), out, (10, 10))
    assert [e.occluded for e in s.elements] == [i == 3 for i in range(17)]


def test_classification_tags(astronaut):
    ref, weights = reference("mobilenet_v3_small")
    fn = ours(torchvision_classification, "mobilenet_v3_small", topk=3)
    with torch.inference_mode():
        probs = ref(weights.transforms()(astronaut)[None]).softmax(1)[0]
    values, idx = probs.topk(3)
    tags = fn.detect(aa.DetectionFunctionContext("a"), astronaut)
    assert [t.type for t in tags] == ["tag"] * 3
    assert [t.label_id for t in tags] == idx.tolist()
    assert np.allclose([t.score for t in tags], values.numpy(), atol=1e-6)


def test_detect_batch_matches_single_images(astronaut):
    """Same-sized images (torchvision pads mixed sizes to a common size, which changes borders)."""
    fn = ours(torchvision_detection, "fasterrcnn_mobilenet_v3_large_320_fpn", **DET_KWARGS)
    ctx = aa.DetectionFunctionContext("x", conf_threshold=0.0)
    mirrored = astronaut.transpose(0)
    single = [fn.detect(ctx, im) for im in (astronaut, mirrored)]
    batch = fn.detect_batch([ctx, ctx], [astronaut, mirrored])
    for a, b in zip(single, batch):
        assert [s.label_id for s in a] == [s.label_id for s in b]
        assert np.allclose([s.points for s in a], [s.points for s in b], atol=1e-3)


def test_unknown_model_and_weights_names():
    with pytest.raises(aa.BadParameterError, match="no model 'resnet9000'"):
        torchvision_detection.create("resnet9000", pretrained=False)
    with pytest.raises(aa.BadParameterError, match="no weights 'IMAGENET9'"):
        torchvision_classification.create("resnet18", "IMAGENET9", pretrained=False)


def test_missing_weights_offline_names_file_and_url(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(aa.WeightsNotFoundError, match=r"mobilenet_v3_small-\w+\.pth.*https://download\.pytorch\.org"):
        torchvision_classification.create("mobilenet_v3_small")


def test_weights_load_from_the_local_folder(monkeypatch, tmp_path):
    """The real loading path: the official file name in AUTOANNOTATE_MODELS, read weights_only."""
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    torch.manual_seed(1)
    model = torchvision.models.mobilenet_v3_small(weights=None)
    filename = weights.url.rsplit("/", 1)[1]
    torch.save(model.state_dict(), tmp_path / filename)
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    fn = torchvision_classification.create("mobilenet_v3_small")
    assert same_weights(model, fn.model) and fn.model_version == "mobilenet_v3_small.IMAGENET1K_V1"


def test_random_weights_are_the_same_in_any_process_whatever_the_global_generator_holds(astronaut):
    """Random weights come from a generator seeded by the model's name: two functions built
    after different draws from torch's global generator are the same model and label the same
    (and the global generator is left as it was)."""
    torch.manual_seed(1)
    first = torchvision_detection.create("fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, **DET_KWARGS)
    torch.rand(1000)  # whatever ran before in another process
    state = torch.random.get_rng_state()
    second = torchvision_detection.create("fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, **DET_KWARGS)
    assert torch.equal(torch.random.get_rng_state(), state)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ctx = aa.DetectionFunctionContext("astronaut", conf_threshold=0.0)
    shapes = first.detect(ctx, astronaut)
    assert shapes and shapes == second.detect(ctx, astronaut)
