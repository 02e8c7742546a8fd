"""The device and precision policy (``autoannotate.devices``) and every torch family under it.

Policy: ``device`` / ``dtype`` names, their environment defaults and errors; inputs moved and cast
(floating tensors to the model's precision, integer and bool tensors only moved, containers kept);
outputs back as float32 on the CPU.

Families (tiny random-weight models, fixed seeds, the builders of the other function tests): a
bfloat16 run gives the labels of the float32 run within these tolerances (bfloat16 keeps 8 bits
of mantissa, about 2-3 significant digits), compared query by query (no threshold, so nothing is
cut differently):

- scores within ``SCORE_EPS`` (0.05), boxes within ``BOX_PX`` (4 px on images of 48-120 px),
  masks with IoU >= ``MASK_IOU`` (0.85: random weights put many mask logits near the cut);
- video propagation: the prompted frame's mask as above; on the frames propagated from memory
  the tiny random model's mask logits are about 1e-3 (their sign is noise in any precision), so
  there only the object scores are compared (and the precision audited);
- Grounding DINO runs in float32 only (in bfloat16 40 % of the tiny model's queries are off);
- open vocabulary: every query of the model is compared (threshold 0); at least ``QUERY_AGREE``
  (90 %) of them agree on score, box and prompt within the tolerances (tiny random models have
  near-ties: two prompts scoring within bfloat16's rounding of each other, where a query's prompt
  may flip), every mask within ``MASK_IOU``;

and a forward pre-hook on the model records the dtype and device of every tensor it is given:
floating inputs are bfloat16, integer ones stay integers, all on the model's device; what the
function returns is float32 (NumPy) on the CPU.
"""

from __future__ import annotations

import importlib

import numpy as np
import PIL.Image
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import autoannotate as aa  # noqa: E402
from autoannotate import devices, settings  # noqa: E402
from autoannotate.errors import BadParameterError  # noqa: E402

SCORE_EPS = 0.05
BOX_PX = 4.0
MASK_IOU = 0.85
QUERY_AGREE = 0.9


# --------------------------------------------------------------------------------------------
# the policy


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv(settings.DEVICE_ENV, raising=False)
    monkeypatch.delenv(settings.DTYPE_ENV, raising=False)
    return monkeypatch


def test_devices_auto_cpu_and_clear_errors(env):
    assert not torch.cuda.is_available()  # this CPU machine: auto is the CPU
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.resolve_device(None) == torch.device("cpu")
    assert devices.resolve_device(" CPU ") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "cuda:", "tpu", ""):
        with pytest.raises(BadParameterError, match="not a device: use auto"):
            devices.resolve_device(bad)
    for absent in ("cuda", "cuda:1"):
        with pytest.raises(BadParameterError, match="CUDA is not available on this machine"):
            devices.resolve_device(absent)


def test_dtypes_names_and_errors(env):
    assert devices.resolve_dtype(None) is torch.float32
    for name, want in [("bf16", torch.bfloat16), ("bfloat16", torch.bfloat16), ("torch.float16", torch.float16)]:
        assert devices.resolve_dtype(name) is want
    assert devices.resolve_dtype("half", "cpu") is torch.float16  # float16 works on this torch's CPU
    with pytest.raises(BadParameterError, match="not a precision: use float32, bfloat16 or float16"):
        devices.resolve_dtype("int8")
    env.setattr(devices, "_cpu_half_works", lambda: False)  # a torch without CPU float16 kernels
    with pytest.raises(BadParameterError, match="cannot run float16 on the CPU; use bfloat16"):
        devices.resolve_dtype("float16", "cpu")
    assert devices.resolve_dtype("float16") is torch.float16  # no device named: not checked


def test_environment_defaults_are_honoured_and_checked(env):
    env.setenv(settings.DTYPE_ENV, "bf16")
    env.setenv(settings.DEVICE_ENV, "cpu")
    assert devices.resolve_dtype(None) is torch.bfloat16
    assert devices.resolve_device(None) == torch.device("cpu")
    model = devices.place(torch.nn.Linear(2, 2))
    assert model.weight.dtype is torch.bfloat16 and not model.training
    assert devices.place(torch.nn.Linear(2, 2), dtype="float32").weight.dtype is torch.float32  # a param wins
    env.setenv(settings.DEVICE_ENV, "cuda")
    with pytest.raises(BadParameterError, match="CUDA is not available"):
        devices.resolve_device(None)
    env.setenv(settings.DEVICE_ENV, "gpu0")
    with pytest.raises(BadParameterError, match="AUTOANNOTATE_DEVICE='gpu0' is not a device"):
        devices.resolve_device(None)
    with pytest.raises(BadParameterError, match="AUTOANNOTATE_DEVICE='gpu0'"):
        settings.Settings.from_env()  # the Label Studio service fails at start, not at the first task
    env.setenv(settings.DEVICE_ENV, "auto")
    env.setenv(settings.DTYPE_ENV, "double")
    with pytest.raises(BadParameterError, match="AUTOANNOTATE_DTYPE='double' is not a precision"):
        devices.resolve_dtype(None)


def test_to_model_casts_floats_moves_the_rest_and_keeps_containers():
    from transformers import BatchEncoding

    model = torch.nn.Linear(2, 2).to(torch.bfloat16)
    batch = BatchEncoding(
        {
            "pixel_values": torch.rand(1, 3, 4, 4),
            "input_ids": torch.tensor([[1, 2]]),
            "attention_mask": torch.tensor([[True, False]]),
            "nested": {"boxes": [torch.rand(2, 4)], "pair": (torch.rand(1), torch.tensor([3]))},
            "name": "kept",
        }
    )
    out = devices.to_model(batch, model)
    assert isinstance(out, BatchEncoding)
    assert out["pixel_values"].dtype is torch.bfloat16
    assert out["input_ids"].dtype is torch.int64 and out["input_ids"].tolist() == [[1, 2]]
    assert out["attention_mask"].dtype is torch.bool
    assert out["nested"]["boxes"][0].dtype is torch.bfloat16
    assert [t.dtype for t in out["nested"]["pair"]] == [torch.bfloat16, torch.int64]
    assert out["name"] == "kept"


def test_to_cpu_float_gives_float32_and_keeps_model_outputs():
    from transformers.models.owlv2.modeling_owlv2 import Owlv2ObjectDetectionOutput

    out = Owlv2ObjectDetectionOutput(logits=torch.rand(1, 2).bfloat16(), pred_boxes=torch.rand(1, 4).half())
    got = devices.to_cpu_float(out)
    assert isinstance(got, Owlv2ObjectDetectionOutput)
    assert got.logits.dtype is torch.float32 and got.pred_boxes.dtype is torch.float32
    assert devices.to_cpu_float([torch.tensor([1])])[0].dtype is torch.int64


# --------------------------------------------------------------------------------------------
# helpers for the families


class Audit:
    """Records (dtype, device) of every tensor given to a module's forward (args and kwargs, in
    containers too)."""

    def __init__(self, module):
        self.floats: set = set()
        self.others: set = set()
        self.devices: set = set()
        self.handle = module.register_forward_pre_hook(self.hook, with_kwargs=True)

    def collect(self, x):
        if isinstance(x, torch.Tensor):
            (self.floats if x.is_floating_point() else self.others).add(x.dtype)
            self.devices.add(x.device.type)
        elif isinstance(x, dict):
            for v in x.values():
                self.collect(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                self.collect(v)

    def hook(self, module, args, kwargs):
        self.collect(args)
        self.collect(kwargs)

    def check(self, dtype=torch.bfloat16):
        self.handle.remove()
        assert self.floats == {dtype}, self.floats
        assert self.devices == {"cpu"}
        assert not self.others & {torch.float32, torch.float16, torch.bfloat16}


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


# --------------------------------------------------------------------------------------------
# SAM 2.1 / EdgeTAM (interactive)


@pytest.mark.parametrize("family", ["sam2", "edgetam"])
def test_sam2_family_bfloat16_gives_the_float32_masks(family):
    from autoannotate.functions import sam2
    from tests.functions.test_sam2 import tiny_model, tiny_processor

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120]
    img = np.stack([xx * 2.0, yy * 2.5, (xx + yy) * 1.0], axis=-1)
    img[(yy - 45) ** 2 + (xx - 60) ** 2 < 25**2] = (250, 40, 40)
    image = PIL.Image.fromarray(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8))
    ctx = aa.InteractiveFunctionContext("im")
    prompt = aa.InteractivePrompt(
        positive_points=[(60, 45), (70, 50)], negative_points=[(10, 80)], boxes=[(20, 10, 100, 80)]
    )
    got = {}
    for dt in ("float32", "bfloat16"):
        model = devices.place(tiny_model(family), "cpu", dt)
        fn = sam2.TransformersSamFunction(model, tiny_processor(), model_version="tiny")
        enc = fn.encode(ctx, image)
        audit = Audit(model)
        (r,) = fn.segment(ctx, enc, prompt)
        if dt == "bfloat16":
            audit.check()
            assert {t.dtype for t in enc.embeddings} == {torch.bfloat16}
        assert r.mask.dtype == bool and r.logits.dtype == np.float32 and isinstance(r.score, float)
        got[dt] = r
    a, b = got["float32"], got["bfloat16"]
    assert a.mask.any()
    assert iou(a.mask, b.mask) >= MASK_IOU
    assert abs(a.score - b.score) <= SCORE_EPS


# --------------------------------------------------------------------------------------------
# SAM (segment-anything), through create(): only the image encoder takes the precision


def tiny_sam(checkpoint=None):
    build = importlib.import_module("segment_anything.build_sam")
    torch.manual_seed(0)
    return build._build_sam(
        encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1], checkpoint=None
    )


def test_sam_bfloat16_image_encoder_gives_the_float32_masks(monkeypatch):
    import segment_anything

    from autoannotate.functions import sam, sam_tracker

    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", tiny_sam)
    rng = np.random.default_rng(0)
    image = PIL.Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    ctx = aa.InteractiveFunctionContext("im")
    prompt = aa.InteractivePrompt(positive_points=[(60, 40)], boxes=[(20, 10, 110, 80)])
    got = {}
    for dt in ("float32", "bfloat16"):
        fn = sam.create("vit_b", pretrained=False, device="cpu", dtype=dt)
        want = getattr(torch, dt)
        assert fn.model.image_encoder.patch_embed.proj.weight.dtype is want
        assert fn.model.mask_decoder.iou_prediction_head.layers[0].weight.dtype is torch.float32
        audit = Audit(fn.model.image_encoder)
        enc = fn.encode(ctx, image)
        audit.check(want)
        assert enc.features.dtype is want
        decoder = Audit(fn.model.mask_decoder)
        (r,) = fn.segment(ctx, enc, prompt)
        decoder.check(torch.float32)  # the encoding is cast back for the float32 decoder
        assert r.mask.dtype == bool and r.logits.dtype == np.float32
        got[dt] = r
    a, b = got["float32"], got["bfloat16"]
    assert a.mask.any()
    assert iou(a.mask, b.mask) >= MASK_IOU
    assert abs(a.score - b.score) <= SCORE_EPS
    tracker = sam_tracker.create("vit_b", pretrained=False, device="cpu", dtype="bf16")
    assert tracker.sam.model.image_encoder.patch_embed.proj.weight.dtype is torch.bfloat16


# --------------------------------------------------------------------------------------------
# SAM 2.1 / EdgeTAM video propagation


@pytest.mark.parametrize("family", ["sam2", "edgetam"])
def test_video_propagation_bfloat16_gives_the_float32_masks(family):
    from tests.functions.sam2_video_tiny import tiny_video_tracker

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (96, 120, 3), dtype=np.uint8)
    video = [PIL.Image.fromarray(np.roll(base, 2 * k, axis=1)) for k in range(3)]
    box = aa.interface.TrackableShape("rectangle", (20, 20, 80, 70))
    got = {}
    for dt in ("float32", "bfloat16"):
        fn = tiny_video_tracker(family)
        devices.place(fn.model, "cpu", dt)
        ctx = aa.interface.TrackingFunctionContext(frame_index=0)
        frames = [fn.preprocess_image(ctx, im) for im in video]
        assert frames[0].pixel_values.dtype is getattr(torch, dt)
        session = fn.video_session()
        session.add(0, 0, frames[0], box)
        audit = Audit(fn.model)
        out = [session.flush()] + [session.propagate(k, frames[k]) for k in (1, 2)]
        if dt == "bfloat16":
            audit.check()
        for frame in out:
            mask, score = frame[0]
            assert mask.dtype == bool and isinstance(score, float)
        got[dt] = out
    (a, _), (b, _) = got["float32"][0][0], got["bfloat16"][0][0]
    assert a.any() and iou(a, b) >= MASK_IOU  # the prompted frame
    for a, b in zip(got["float32"], got["bfloat16"]):
        assert abs(a[0][1] - b[0][1]) <= SCORE_EPS


# --------------------------------------------------------------------------------------------
# open vocabulary (OWLv2, Grounding DINO, SAM 3)


@pytest.mark.parametrize("name", ["owlv2", "sam3"])
def test_open_vocabulary_bfloat16_gives_the_float32_detections(name):
    from autoannotate.functions import grounding_dino, owlv2, sam3
    from tests.functions.test_open_vocab import TINY, test_images

    cls = {"owlv2": owlv2.Owlv2Function, "grounding_dino": grounding_dino.GroundingDinoFunction}.get(
        name, sam3.Sam3Function
    )
    images = test_images()[:2]
    got = {}
    for dt in ("float32", "bfloat16"):
        model, processor = TINY[name]()
        fn = cls(devices.place(model, "cpu", dt), processor, ["stop_sign", "yield"], model_version="tiny")
        audit = Audit(model)
        dets = fn.predict(images, 0.0)  # every query: compared one by one
        if dt == "bfloat16":
            audit.check()
        for d in dets:
            assert d.boxes.dtype.kind == "f" and d.boxes.dtype.itemsize >= 4 and d.scores.dtype.itemsize >= 4
        got[dt] = dets
    agree, same_prompt = [], []
    for a, b in zip(got["float32"], got["bfloat16"]):
        assert len(a.scores) == len(b.scores) > 0
        agree += list((np.abs(a.scores - b.scores) <= SCORE_EPS) & (np.abs(a.boxes - b.boxes).max(axis=1) <= BOX_PX))
        same_prompt += list(a.prompts == b.prompts)
        if a.masks is not None:
            ious = [iou(x, y) for x, y in zip(a.masks, b.masks) if x.any() or y.any()]
            assert ious and min(ious) >= MASK_IOU
    assert np.mean(agree) >= QUERY_AGREE, np.mean(agree)
    assert np.mean(same_prompt) >= QUERY_AGREE, np.mean(same_prompt)


def test_grounding_dino_refuses_half_precision(env, caplog):
    """Grounding DINO in bfloat16 does not stay within the tolerances (40 % of a tiny model's
    queries off, weights cast or under autocast): it runs in float32 (see ``float32_only``)."""
    from autoannotate.functions import grounding_dino

    with pytest.raises(BadParameterError, match="grounding_dino runs in float32 only"):
        grounding_dino.create(classes=["a"], pretrained=False, device="cpu", dtype="bf16")
    assert grounding_dino.float32_only("float32") == "float32"
    env.setenv(settings.DTYPE_ENV, "bfloat16")
    with caplog.at_level("WARNING"):
        assert grounding_dino.float32_only(None) == "float32"
    assert "AUTOANNOTATE_DTYPE=bfloat16 is not used for it" in caplog.text


# --------------------------------------------------------------------------------------------
# torchvision


def test_torchvision_classifier_bfloat16_gives_the_float32_tags(astronaut):
    from autoannotate.functions import torchvision_classification

    got = {}
    for dt in ("float32", "bfloat16"):
        torch.manual_seed(0)
        fn = torchvision_classification.create("resnet18", pretrained=False, device="cpu", dtype=dt, topk=5)
        assert fn.model.fc.weight.dtype is getattr(torch, dt)
        audit = Audit(fn.model)
        (out,) = fn.run_model([astronaut])
        audit.check(getattr(torch, dt))
        assert out["probs"].dtype is torch.float32 and out["probs"].device.type == "cpu"
        got[dt] = out["probs"]
    assert (got["float32"] - got["bfloat16"]).abs().max() <= SCORE_EPS


def test_torchvision_detector_runs_in_bfloat16_under_autocast(astronaut):
    """Detectors keep float32 weights (their box operations have no half-precision CPU kernels)
    and compute under autocast: the convolutions give bfloat16, the outputs come back float32."""
    from autoannotate.functions import torchvision_detection

    kwargs = {"min_size": 320, "max_size": 320, "box_score_thresh": 0.0, "box_detections_per_img": 20}
    torch.manual_seed(0)
    fn = torchvision_detection.create(
        "fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, device="cpu", dtype="bfloat16", **kwargs
    )
    assert fn.dtype is torch.bfloat16 and fn.model.backbone.body["0"][0].weight.dtype is torch.float32
    seen = []
    hook = fn.model.backbone.register_forward_hook(lambda m, a, out: seen.extend(t.dtype for t in out.values()))
    (out,) = fn.run_model([astronaut])
    hook.remove()
    assert set(seen) == {torch.bfloat16}
    assert out["boxes"].dtype is torch.float32 and out["scores"].dtype is torch.float32
    assert out["labels"].dtype is torch.int64 and len(out["boxes"]) > 0
