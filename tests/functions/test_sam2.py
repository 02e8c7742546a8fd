"""SAM 2.1 and EdgeTAM (``autoannotate.functions.sam2``) against the ``transformers`` model and
processor called directly, on tiny configurations with random weights and a fixed seed; their
weights (missing offline, found in ``AUTOANNOTATE_MODELS``) and ``auto``'s choice."""

from __future__ import annotations

import logging

import numpy as np
import PIL.Image
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from autoannotate import WeightsNotFoundError  # noqa: E402
from autoannotate import weights as w  # noqa: E402
from autoannotate.auto import load_interactive, resolve_interactive  # noqa: E402
from autoannotate.functions import edgetam, sam2  # noqa: E402
from autoannotate.interface import InteractiveFunctionContext, InteractivePrompt  # noqa: E402
from autoannotate.loading import load_function  # noqa: E402

CTX = InteractiveFunctionContext("test")
SIZE = 256  # the tiny models' input side (the real ones take 1024)


def tiny_sam2_config():
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    hiera = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        global_attention_blocks=[3],
        window_size_per_stage=[8, 4, 4, 4],
        image_size=[SIZE, SIZE],
    )
    vision = Sam2VisionConfig(
        backbone_config=hiera,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[SIZE // 4] * 2, [SIZE // 8] * 2, [SIZE // 16] * 2],
        fpn_hidden_size=32,
    )
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32, image_size=SIZE),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )


def tiny_edgetam_config():
    from transformers import (
        EdgeTamConfig,
        EdgeTamMaskDecoderConfig,
        EdgeTamPromptEncoderConfig,
        EdgeTamVisionConfig,
        TimmWrapperConfig,
    )

    backbone = TimmWrapperConfig(
        architecture="repvit_m1.dist_in1k",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    vision = EdgeTamVisionConfig(
        backbone_config=backbone,
        backbone_feature_sizes=[[SIZE // 4] * 2, [SIZE // 8] * 2, [SIZE // 16] * 2],
        fpn_hidden_size=32,
    )
    return EdgeTamConfig(
        vision_config=vision,
        prompt_encoder_config=EdgeTamPromptEncoderConfig(hidden_size=32, image_size=SIZE),
        mask_decoder_config=EdgeTamMaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )


def tiny_processor():
    from transformers import Sam2ImageProcessor, Sam2Processor

    return Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": SIZE, "width": SIZE}))


def tiny_model(family: str):
    from transformers import EdgeTamModel, Sam2Model

    torch.manual_seed(0)
    model = (Sam2Model(tiny_sam2_config()) if family == "sam2" else EdgeTamModel(tiny_edgetam_config())).eval()
    # Random IoU heads score every candidate ~0.5; spread them so "the best mask" is a real choice.
    with torch.no_grad():
        model.mask_decoder.iou_prediction_head.proj_out.weight.mul_(200.0)
    return model


@pytest.fixture(scope="module", params=["sam2", "edgetam"])
def setup(request):
    model, processor = tiny_model(request.param), tiny_processor()
    fn = sam2.TransformersSamFunction(model, processor, model_version=f"{request.param}-tiny-test")
    rng = np.random.default_rng(0)
    # A textured photo-like image: smooth gradients plus a bright disk, 300 x 400 (not square).
    yy, xx = np.mgrid[0:300, 0:400]
    img = np.stack([xx * 0.5, yy * 0.7, (xx + yy) * 0.3], axis=-1)
    img[(yy - 150) ** 2 + (xx - 220) ** 2 < 60**2] = (250, 40, 40)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    image = PIL.Image.fromarray(img)
    return fn, model, processor, image, fn.encode(CTX, image)


def reference(model, processor, image, *, points=None, labels=None, boxes=None, masks=None, multimask=True):
    """The model called the way transformers documents it: processor -> model(pixel_values) ->
    post_process_masks, keeping the best-scoring mask of each object."""
    kwargs = {}
    if points is not None:
        kwargs.update(input_points=[points], input_labels=[labels])
    if boxes is not None:
        kwargs["input_boxes"] = [boxes]
    inputs = processor(images=image, return_tensors="pt", **kwargs)
    model_inputs = {k: v for k, v in inputs.items() if k != "original_sizes"}
    if masks is not None:
        model_inputs["input_masks"] = torch.as_tensor(masks).reshape(1, 1, *np.shape(masks)[-2:])
    with torch.no_grad():
        out = model(**model_inputs, multimask_output=multimask)
    all_masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0]
    out_masks, out_scores, out_logits, out_best = [], [], [], []
    for k in range(out.iou_scores.shape[1]):
        best = int(out.iou_scores[0, k].argmax())
        out_masks.append(all_masks[k, best].numpy())
        out_scores.append(float(out.iou_scores[0, k, best]))
        out_logits.append(out.pred_masks[0, k, best].numpy())
        out_best.append(best)
    return out_masks, out_scores, out_logits, out_best


def assert_same(results, ref):
    masks, scores, logits, _ = ref
    assert len(results) == len(masks)
    for r, m, s, lg in zip(results, masks, scores, logits):
        assert r.mask.dtype == bool and r.mask.shape == m.shape
        # Same model, same inputs: only float summation order may differ (batched vs one object).
        assert (r.mask != m).mean() <= 1e-4
        assert r.score == pytest.approx(min(max(s, 0.0), 1.0), abs=1e-4)
        np.testing.assert_allclose(r.logits[0], lg, atol=1e-4)


def test_encoding_is_the_feature_pyramid(setup):
    fn, model, processor, image, enc = setup
    assert enc.original_size == (300, 400)
    assert [tuple(t.shape[-2:]) for t in enc.embeddings] == [(64, 64), (32, 32), (16, 16)]
    assert enc.nbytes == sum(t.numel() * 4 for t in enc.embeddings)


def test_single_click_multimask_best(setup):
    fn, model, processor, image, enc = setup
    chosen = set()
    for click in [(220, 150), (50, 40), (380, 280), (120, 200), (300, 60)]:
        out = fn.segment(CTX, enc, InteractivePrompt(positive_points=[click]))
        ref = reference(model, processor, image, points=[[list(click)]], labels=[[1]], multimask=True)
        assert_same(out, ref)
        assert 0.0 < out[0].mask.mean() < 1.0  # a real mask, not a blank that would equal anything
        chosen.add(ref[3][0])
    assert len(chosen) > 1  # the best of three really is a choice here (not always the first)


def test_clicks_positive_and_negative(setup):
    fn, model, processor, image, enc = setup
    prompt = InteractivePrompt(positive_points=[(220, 150), (240, 160)], negative_points=[(30, 30)])
    out = fn.segment(CTX, enc, prompt)
    ref = reference(
        model, processor, image, points=[[[220, 150], [240, 160], [30, 30]]], labels=[[1, 1, 0]], multimask=False
    )
    assert_same(out, ref)
    single = fn.segment(CTX, enc, InteractivePrompt(positive_points=[(220, 150)]))
    assert (out[0].mask != single[0].mask).any()  # the extra clicks changed the answer


def test_box_with_click(setup):
    fn, model, processor, image, enc = setup
    out = fn.segment(CTX, enc, InteractivePrompt(positive_points=[(220, 150)], boxes=[(150, 80, 290, 220)]))
    ref = reference(
        model, processor, image, points=[[[220, 150]]], labels=[[1]], boxes=[[150, 80, 290, 220]], multimask=False
    )
    assert_same(out, ref)


def test_several_boxes_are_several_objects(setup):
    fn, model, processor, image, enc = setup
    boxes = [(150, 80, 290, 220), (10, 10, 120, 100), (200, 200, 390, 290)]
    out = fn.segment(CTX, enc, InteractivePrompt(boxes=boxes))
    assert_same(out, reference(model, processor, image, boxes=[list(b) for b in boxes], multimask=False))
    assert len({r.mask.tobytes() for r in out}) == 3
    assert_same(
        fn.segment_boxes(CTX, enc, boxes),
        reference(model, processor, image, boxes=[list(b) for b in boxes], multimask=False),
    )


def test_several_boxes_take_the_clicks_inside_them(setup):
    fn, model, processor, image, enc = setup
    boxes = [(150, 80, 290, 220), (10, 10, 120, 100), (200, 200, 390, 290)]
    prompt = InteractivePrompt(positive_points=[(220, 150), (50, 50)], negative_points=[(60, 60)], boxes=boxes)
    out = fn.segment(CTX, enc, prompt)
    # Each object alone, as transformers would be called for it.
    expected = [
        reference(
            model, processor, image, points=[[[220, 150]]], labels=[[1]], boxes=[list(boxes[0])], multimask=False
        ),
        reference(
            model,
            processor,
            image,
            points=[[[50, 50], [60, 60]]],
            labels=[[1, 0]],
            boxes=[list(boxes[1])],
            multimask=False,
        ),
        reference(model, processor, image, boxes=[list(boxes[2])], multimask=False),
    ]
    assert len(out) == 3
    for r, ref in zip(out, expected):
        assert_same([r], ref)


def test_refinement_from_previous_logits(setup):
    fn, model, processor, image, enc = setup
    first = fn.segment(CTX, enc, InteractivePrompt(positive_points=[(220, 150)]))[0]
    assert first.logits.shape == (1, SIZE // 4, SIZE // 4)
    prompt = InteractivePrompt(positive_points=[(220, 150)], negative_points=[(100, 250)], mask_input=first.logits)
    out = fn.segment(CTX, enc, prompt)
    ref = reference(
        model, processor, image, points=[[[220, 150], [100, 250]]], labels=[[1, 0]], masks=first.logits, multimask=False
    )
    assert_same(out, ref)
    without = fn.segment(CTX, enc, InteractivePrompt(positive_points=[(220, 150)], negative_points=[(100, 250)]))
    assert not np.allclose(without[0].logits, out[0].logits)  # the mask prompt was used


def test_multimask_flag(setup):
    fn, model, processor, image, enc = setup
    forced = sam2.TransformersSamFunction(model, processor, model_version="x", multimask=False)
    out = forced.segment(CTX, enc, InteractivePrompt(positive_points=[(220, 150)]))
    assert_same(out, reference(model, processor, image, points=[[[220, 150]]], labels=[[1]], multimask=False))


# -- real-size architectures -----------------------------------------------------------------


def test_real_size_configs_are_the_released_architectures():
    """SAM 2.1 tiny is transformers' default Sam2Config; EdgeTAM gets its RepViT-M1 backbone."""
    from transformers import Sam2Config

    tiny = sam2.sam2_config("tiny").vision_config
    assert tiny.backbone_config.to_dict() == Sam2Config().vision_config.backbone_config.to_dict()
    assert tiny.backbone_config.blocks_per_stage == [1, 2, 7, 2]
    assert tiny.backbone_config.global_attention_blocks == [5, 7, 9]
    assert tiny.backbone_channel_list == [768, 384, 192, 96]
    large = sam2.sam2_config("large").vision_config
    assert large.backbone_config.blocks_per_stage == [2, 6, 36, 4]
    assert large.backbone_channel_list == [1152, 576, 288, 144]
    e = sam2.edgetam_config().vision_config
    assert e.backbone_config.architecture == "repvit_m1.dist_in1k"
    assert e.backbone_channel_list == [384, 192, 96, 48]


def test_create_random_weights_builds_the_tiny_architecture():
    fn = sam2.create(size="tiny", pretrained=False)
    assert fn.model_version == "sam2.1-hiera-tiny.random"
    assert sum(p.numel() for p in fn.model.vision_encoder.backbone.parameters()) > 20_000_000
    with pytest.raises(Exception, match="size"):
        sam2.create(size="huge", pretrained=False)


# -- weights and auto ------------------------------------------------------------------------


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    local, cache, hf = tmp_path / "models", tmp_path / "cache", tmp_path / "hf"
    local.mkdir()
    monkeypatch.setenv(w.MODELS_ENV, str(local))
    monkeypatch.setenv(w.CACHE_ENV, str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf))
    monkeypatch.setenv(w.OFFLINE_ENV, "1")
    return local


def test_offline_missing_weights_is_the_documented_error(dirs):
    for make in (lambda: sam2.create(size="tiny"), lambda: edgetam.create()):
        with pytest.raises(WeightsNotFoundError) as e:
            make()
        text = str(e.value)
        assert "AUTOANNOTATE_OFFLINE=1" in text and str(dirs) in text
        assert "autoannotate weights download" in text and "AUTOANNOTATE_MODELS" in text
    assert "facebook/sam2.1-hiera-tiny" in str(pytest.raises(WeightsNotFoundError, sam2.create).value)


def save_tiny(folder, family):
    tiny_model(family).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)


def test_saved_folder_in_models_dir_is_loaded(dirs):
    save_tiny(dirs / "sam2.1-hiera-tiny", "sam2")
    fn = load_function("sam2", size="tiny")
    assert fn.model_version == "sam2.1-hiera-tiny"
    ref = tiny_model("sam2")
    for a, b in zip(fn.model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    assert fn.processor.image_processor.size["height"] == SIZE  # the saved processor, not the default
    assert w.resolve("facebook/sam2.1-hiera-tiny") == dirs / "sam2.1-hiera-tiny"
    # a folder path as checkpoint
    assert sam2.create(checkpoint=str(dirs / "sam2.1-hiera-tiny")).model_version == "sam2.1-hiera-tiny"


def test_auto_falls_back_to_grabcut_with_one_log_line(dirs, caplog):
    with caplog.at_level(logging.INFO, logger="autoannotate.auto"):
        assert resolve_interactive("auto", {"device": "cpu"}) == ("grabcut", {})
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "autoannotate weights download" in lines[0]
    assert type(load_interactive("auto")).__name__ == "GrabCutFunction"


def test_auto_picks_a_present_model(dirs):
    save_tiny(dirs / "sam2.1-hiera-tiny", "sam2")
    assert resolve_interactive("auto", {"device": "cpu", "multimask": "auto"}) == (
        "sam2",
        {"size": "tiny", "device": "cpu", "multimask": "auto"},
    )
    fn = load_interactive("auto")
    assert fn.model_version == "sam2.1-hiera-tiny"
    save_tiny(dirs / "edgetam", "edgetam")
    assert resolve_interactive("auto") == ("edgetam", {})  # the faster one first on a CPU
    assert resolve_interactive("auto", {"device": "cuda"})[0] == "sam2"  # the larger one on a GPU
    assert resolve_interactive("grabcut", {"iterations": 3}) == ("grabcut", {"iterations": 3})
    assert w.present()["edgetam"] == dirs / "edgetam"


def test_cli_weights_list_and_download(dirs, capsys):
    from autoannotate.cli import main

    save_tiny(dirs / "edgetam", "edgetam")
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.strip() and line.split()[0] in w.registry()
    }
    assert rows["edgetam"] == str(dirs / "edgetam") and rows["sam2.1-hiera-tiny"] == "missing"
    assert main(["weights", "download", "edgetam"]) == 0  # present: nothing to fetch
    assert capsys.readouterr().out.strip() == f"edgetam: {dirs / 'edgetam'}"
    assert main(["weights", "download", "sam2.1-hiera-tiny"]) == 2  # offline and missing
    assert "AUTOANNOTATE_OFFLINE=1" in capsys.readouterr().err
    assert main(["weights", "download", "nope"]) == 2
