"""Open-vocabulary functions (SAM 3, OWLv2, Grounding DINO) against the ``transformers`` model,
processor and post-processing called directly, on tiny configurations with random weights and a
fixed seed: the same boxes, scores and masks in absolute pixels of the upright image, several
classes, several images per batch, an EXIF-rotated non-square photo. Also prompt handling, the
spec, weights (folder found through ``AUTOANNOTATE_MODELS``, clear error when missing) and the
loading helper front ends use to pass their class names.

Random weights find arbitrary things: the tests compare with the direct computation, not with
any truth; thresholds are picked between the direct scores so that some detections survive.
"""

from __future__ import annotations

import importlib
import io
import json

import numpy as np
import PIL.Image
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from autoannotate import WeightsNotFoundError  # noqa: E402
from autoannotate.errors import BadParameterError  # noqa: E402
from autoannotate.functions import grounding_dino, open_vocab, owlv2, sam3  # noqa: E402
from autoannotate.images import load_image  # noqa: E402
from autoannotate.interface import DetectionFunctionContext  # noqa: E402
from autoannotate.loading import is_open_vocabulary, load_function, with_classes  # noqa: E402

CLASSES = ["stop_sign", "yield", "fork-lift (yellow)"]


# --------------------------------------------------------------------------------------------
# tiny models (also used by the FiftyOne and Label Studio end-to-end tests)


def tiny_owlv2():
    from transformers import Owlv2Config

    tok = open_vocab.char_clip_tokenizer(16)
    config = Owlv2Config(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            **open_vocab.clip_token_ids(tok),
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
        ),
        projection_dim=32,
    )
    torch.manual_seed(0)
    return owlv2.random_model(config)


def tiny_grounding_dino():
    from transformers import GroundingDinoConfig

    tok = open_vocab.char_bert_tokenizer()
    config = GroundingDinoConfig(
        backbone_config=dict(
            model_type="swin",
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            image_size=64,
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=dict(
            model_type="bert",
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=30,
        encoder_n_points=2,
        decoder_n_points=2,
    )
    torch.manual_seed(0)
    model, processor = grounding_dino.random_model(config)
    processor.image_processor.size = {"shortest_edge": 64, "longest_edge": 96}
    return model, processor


def tiny_sam3():
    from transformers import Sam3Config

    tok = open_vocab.char_clip_tokenizer(32)
    small = dict(hidden_size=32, num_layers=1, num_attention_heads=2, intermediate_size=64)
    config = Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=112,
                patch_size=14,
                window_size=4,
                global_attn_indexes=[1],
                pretrain_image_size=56,
            ),
            fpn_hidden_size=32,
            backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        ),
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            **open_vocab.clip_token_ids(tok),
        ),
        geometry_encoder_config=dict(small),
        detr_encoder_config=dict(small),
        detr_decoder_config=dict(small, num_queries=12),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2),
    )
    torch.manual_seed(0)
    model, processor = sam3.random_model(config)
    with torch.no_grad():  # spread the scores (a tiny random scorer gives them all about 0.25)
        for p in model.dot_product_scoring.parameters():
            p.mul_(8)
    return model, processor


TINY = {"owlv2": tiny_owlv2, "grounding_dino": tiny_grounding_dino, "sam3": tiny_sam3}


def save_tiny(name: str, folder) -> None:
    """Save a tiny model and its processor as a Hugging Face folder (what the weights path loads)."""
    model, processor = TINY[name]()
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))


def test_images() -> list[PIL.Image.Image]:
    """A non-square noise image, a non-square gradient and an EXIF-rotated (orientation 6) JPEG,
    read upright by :func:`load_image` (stored 80 x 50, upright 50 x 80)."""
    rng = np.random.default_rng(0)
    a = PIL.Image.fromarray(rng.integers(0, 255, (48, 72, 3), dtype=np.uint8))
    yy, xx = np.mgrid[0:90, 0:60]
    b = PIL.Image.fromarray(np.stack([xx * 4, yy * 2, (xx + yy) % 255], -1).astype(np.uint8))
    stored = PIL.Image.fromarray(rng.integers(0, 255, (50, 80, 3), dtype=np.uint8))
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes())
    c = load_image(buf.getvalue())
    assert c.size == (50, 80)
    return [a, b, c]


test_images.__test__ = False  # type: ignore[attr-defined]  (a helper, not a test)


def pick_threshold(scores: np.ndarray, keep_fraction: float = 0.3) -> float:
    """A threshold keeping about ``keep_fraction`` of ``scores`` and far (> 1e-3) from each score,
    so numerical noise cannot move a detection across it."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    assert s.size >= 2
    k = max(1, int(len(s) * keep_fraction))
    for j in list(range(k, len(s))) + list(range(k - 1, 0, -1)):
        if s[j - 1] - s[j] > 2e-3:
            return float((s[j - 1] + s[j]) / 2)
    raise AssertionError("no gap between scores to put a threshold in")


def as_arrays(shapes, size):
    order = np.argsort([-s.score for s in shapes], kind="stable")
    boxes, scores, labels, masks = [], [], [], []
    for i in order:
        s = shapes[i]
        scores.append(s.score)
        labels.append(s.label_id)
        if s.type == "mask":
            masks.append(s.bitmap)
            ys, xs = np.nonzero(s.bitmap)
        else:
            boxes.append(s.points)
    return np.array(boxes).reshape(-1, 4), np.array(scores), np.array(labels), masks


def clip_boxes(boxes: np.ndarray, size) -> np.ndarray:
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, size[0])
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, size[1])
    return b


def ctxs(n: int, t: float):
    return [DetectionFunctionContext(frame_name=f"im{i}", conf_threshold=t) for i in range(n)]


# --------------------------------------------------------------------------------------------
# equivalence with transformers called directly


def test_owlv2_equals_transformers_directly():
    model, processor = tiny_owlv2()
    prompts = {"yield": ["yield sign", "give way"]}
    fn = owlv2.Owlv2Function(
        model, processor, CLASSES, prompts, model_version="tiny", nms_threshold=1.0, max_detections=10_000
    )
    texts = ["stop sign", "yield sign", "give way", "fork-lift (yellow)"]
    assert fn.prompt_texts == texts
    prompt_class = [0, 1, 1, 2]
    images = test_images()
    direct = []
    for im in images:  # one image at a time, as the model card shows
        inputs = processor(images=im, text=[texts], truncation=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs)
        side = max(im.size)
        r = processor.post_process_grounded_object_detection(out, threshold=0.0, target_sizes=[(side, side)])[0]
        direct.append(r)
    t = pick_threshold(np.concatenate([r["scores"].numpy() for r in direct]))
    got = fn.detect_batch(ctxs(3, t), images)  # all images in one batch
    n_found = 0
    for im, r, shapes in zip(images, direct, got):
        keep = r["scores"].numpy() > t
        order = np.argsort(-r["scores"].numpy()[keep], kind="stable")
        want_boxes = clip_boxes(r["boxes"].numpy()[keep][order], im.size)
        want_labels = np.array(prompt_class)[r["labels"].numpy()[keep][order]]
        boxes, scores, labels, _ = as_arrays(shapes, im.size)
        assert len(shapes) == keep.sum()
        np.testing.assert_allclose(scores, r["scores"].numpy()[keep][order], atol=1e-5)
        np.testing.assert_allclose(boxes, want_boxes, atol=1e-3)
        np.testing.assert_array_equal(labels, want_labels)
        assert all(s.type == "rectangle" for s in shapes)
        assert (boxes[:, 2] <= im.width + 1e-6).all() and (boxes[:, 3] <= im.height + 1e-6).all()
        n_found += len(shapes)
    assert n_found > 0
    # one image alone gives what it gives in the batch
    alone = fn.detect(ctxs(1, t)[0], images[2])
    np.testing.assert_allclose(as_arrays(alone, None)[1], as_arrays(got[2], None)[1], atol=1e-5)


def test_nms_keeps_the_best_prompt_of_a_class():
    model, processor = tiny_owlv2()
    fn = owlv2.Owlv2Function(model, processor, ["cat", "dog"], {"cat": ["cat", "kitten"]}, model_version="t")
    assert fn.prompt_class.tolist() == [0, 0, 1]
    det = open_vocab.Detections(
        boxes=np.array([[10, 10, 50, 50], [12, 11, 51, 50], [11, 10, 50, 49], [60, 0, 90, 20.0]]),
        scores=np.array([0.6, 0.8, 0.7, 0.2]),
        prompts=np.array([0, 1, 2, 0]),
    )
    shapes = fn.to_shapes(det, 0.3, (80, 60))
    # "kitten" (0.8) beats "cat" (0.6) on the same object: one "cat"; the dog overlapping it stays;
    # the last box scores below the threshold
    assert [(s.label_id, s.score) for s in shapes] == [(0, 0.8), (1, 0.7)]
    assert shapes[0].points == (12.0, 11.0, 51.0, 50.0)
    clipped = fn.to_shapes(det, 0.1, (80, 60))[-1]
    assert clipped.points == (60.0, 0.0, 80.0, 20.0)  # clipped to the image


def test_grounding_dino_equals_transformers_directly():
    model, processor = tiny_grounding_dino()
    fn = grounding_dino.GroundingDinoFunction(
        model, processor, CLASSES, {"yield": "Yield. Sign"}, model_version="t", nms_threshold=1.0, max_detections=10_000
    )
    caption = "stop sign. yield sign. fork-lift (yellow)."
    assert [c for c, _ in fn.captions] == [caption]
    images = test_images()
    inputs = processor(images=images, text=[caption] * 3, return_tensors="pt")  # the same batch, directly
    with torch.no_grad():
        out = model(**inputs)
    post = processor.post_process_grounded_object_detection(
        out,
        inputs["input_ids"],
        threshold=0.0,
        text_threshold=0.0,
        target_sizes=[(im.height, im.width) for im in images],
    )
    t = pick_threshold(np.concatenate([r["scores"].numpy() for r in post]))
    got = fn.detect_batch(ctxs(3, t), images)
    n_found = 0
    for im, r, shapes in zip(images, post, got):
        s = r["scores"].numpy()
        keep = s > t
        order = np.argsort(-s[keep], kind="stable")
        boxes, scores, labels, _ = as_arrays(shapes, im.size)
        assert len(shapes) == keep.sum()
        np.testing.assert_allclose(scores, s[keep][order], atol=1e-5)
        np.testing.assert_allclose(boxes, clip_boxes(r["boxes"].numpy()[keep][order], im.size), atol=1e-3)
        assert set(labels.tolist()) <= {0, 1, 2}
        n_found += len(shapes)
    assert n_found > 0


def test_grounding_dino_assigns_the_prompt_of_the_best_token():
    model, processor = tiny_grounding_dino()
    fn = grounding_dino.GroundingDinoFunction(model, processor, ["ab", "cd"], model_version="t")
    ids = processor.tokenizer("ab. cd.", return_tensors="pt")["input_ids"][0]
    tokens = processor.tokenizer.convert_ids_to_tokens(ids.tolist())
    assert tokens == ["[CLS]", "a", "##b", ".", "c", "##d", ".", "[SEP]"]
    assert fn._token_prompts(ids, [0, 1]).tolist() == [-1, 0, 0, -1, 1, 1, -1, -1]


def test_grounding_dino_splits_long_captions():
    model, processor = tiny_grounding_dino()
    model.config.max_text_len = 40
    names = [f"class_{i}" for i in range(12)]
    fn = grounding_dino.GroundingDinoFunction(model, processor, names, model_version="t")
    assert len(fn.captions) > 1
    assert [i for _, idx in fn.captions for i in idx] == list(range(12))
    for caption, _ in fn.captions:
        assert len(processor.tokenizer(caption)["input_ids"]) <= 40


def test_sam3_equals_transformers_directly():
    model, processor = tiny_sam3()
    prompts = {"yield": ["yield sign", "give way"]}
    fn = sam3.Sam3Function(
        model,
        processor,
        CLASSES,
        prompts,
        model_version="t",
        nms_threshold=1.0,
        max_detections=10_000,
        pairs_per_pass=5,
    )
    texts = fn.prompt_texts
    prompt_class = fn.prompt_class
    images = test_images()
    direct = []  # per image: (scores, boxes, masks, class) of every (prompt, instance)
    for im in images:
        per = []
        for p, text in enumerate(texts):  # one prompt per call, as the model card shows
            inputs = processor(images=im, text=text, return_tensors="pt")
            with torch.no_grad():
                out = model(**inputs)
            r = processor.post_process_instance_segmentation(
                out, threshold=0.0, mask_threshold=0.5, target_sizes=[(im.height, im.width)]
            )[0]
            per += [
                (float(s), b.numpy(), m.numpy().astype(bool), int(prompt_class[p]))
                for s, b, m in zip(r["scores"], r["boxes"], r["masks"])
            ]
        direct.append(per)
    t = pick_threshold(np.array([x[0] for per in direct for x in per]), 0.2)
    got = fn.detect_batch(ctxs(3, t), images)
    n_found = 0
    for im, per, shapes in zip(images, direct, got):
        want = sorted([x for x in per if x[0] > t and x[2].any()], key=lambda x: -x[0])
        _, scores, labels, masks = as_arrays(shapes, im.size)
        assert len(shapes) == len(want)
        np.testing.assert_allclose(scores, [x[0] for x in want], atol=1e-5)
        np.testing.assert_array_equal(labels, [x[3] for x in want])
        for m, x in zip(masks, want):
            assert m.shape == (im.height, im.width)
            assert (m != x[2]).mean() < 1e-3
        assert all(s.type == "mask" for s in shapes)
        n_found += len(shapes)
    assert n_found > 0
    # the boxes: the raw detections carry the library's boxes in pixels
    det = fn.predict(images[2:], t)[0]
    want_boxes = np.array([x[1] for x in sorted(direct[2], key=lambda x: -x[0]) if x[0] > t])
    np.testing.assert_allclose(det.boxes[np.argsort(-det.scores, kind="stable")], want_boxes, atol=1e-3)


def test_sam3_masks_become_polygons_through_the_driver():
    from autoannotate.driver import iter_annotations

    model, processor = tiny_sam3()
    fn = sam3.Sam3Function(model, processor, ["stop_sign"], model_version="t")
    images = test_images()
    scores = fn.predict(images, 0.0)
    t = pick_threshold(np.concatenate([d.scores for d in scores]), 0.3)
    results = list(iter_annotations(fn, images, conf_threshold=t, conv_mask_to_poly=True, batch_size=3, progress=False))
    assert all(r.ok for r in results)
    shapes = [s for r in results for s in r.shapes]
    assert shapes and all(s.type == "polygon" for s in shapes)


# --------------------------------------------------------------------------------------------
# prompts and spec


def test_names_become_prompts():
    assert open_vocab.prompt_for("stop_sign") == "stop sign"
    assert open_vocab.prompt_for("  traffic__light ") == "traffic light"
    assert open_vocab.prompt_for("fork-lift (yellow)") == "fork-lift (yellow)"
    assert open_vocab.prompt_for("Straße/Ampel") == "Straße/Ampel"
    assert open_vocab.prompt_for("___") == "___"


def test_class_prompts_overrides_and_several_prompts():
    got = open_vocab.class_prompts(["stop_sign", "yield"], {"yield": ["yield sign", "give  way"]})
    assert got == [
        open_vocab.ClassPrompts("stop_sign", ("stop sign",)),
        open_vocab.ClassPrompts("yield", ("yield sign", "give way")),
    ]
    assert open_vocab.class_prompts("stop_sign, yield", "yield=yield sign|give way") == got
    assert open_vocab.class_prompts(["a"], {"a": "one"}) == [open_vocab.ClassPrompts("a", ("one",))]


@pytest.mark.parametrize(
    "classes, prompts, message",
    [
        (None, None, "open-vocabulary"),
        ([], None, "empty"),
        (["a", "a"], None, "twice"),
        (["a", ""], None, "non-empty"),
        (["a"], {"b": "x"}, "not among"),
        (["a"], {"a": ""}, "non-empty"),
        (["a"], "a", "class=prompt"),
    ],
)
def test_class_prompts_refuses_mistakes(classes, prompts, message):
    with pytest.raises(BadParameterError, match=message):
        open_vocab.class_prompts(classes, prompts)


def test_spec_lists_exactly_the_classes():
    model, processor = tiny_owlv2()
    fn = owlv2.Owlv2Function(model, processor, ["stop_sign", "yield"], {"yield": ["a", "b"]}, model_version="t")
    assert fn.spec.label_names == ["stop_sign", "yield"]
    assert [lbl.type for lbl in fn.spec.labels] == ["rectangle", "rectangle"]
    model, processor = tiny_sam3()
    fn3 = sam3.Sam3Function(model, processor, ["pallet"], model_version="t")
    assert [(lbl.name, lbl.id, lbl.type) for lbl in fn3.spec.labels] == [("pallet", 0, "any")]


# --------------------------------------------------------------------------------------------
# loading: the marker, front ends' classes, weights


def test_open_vocabulary_marker_and_with_classes():
    assert is_open_vocabulary("sam3") and is_open_vocabulary("owlv2") and is_open_vocabulary("grounding_dino")
    assert not is_open_vocabulary("yolox") and not is_open_vocabulary(object())
    assert with_classes("owlv2", {"device": "cpu"}, ["stop_sign", "yield"]) == {
        "device": "cpu",
        "classes": ["stop_sign", "yield"],
    }
    assert with_classes("owlv2", {"classes": ["mine"]}, ["theirs"]) == {"classes": ["mine"]}
    assert with_classes("yolox", {}, ["person"]) == {}
    assert with_classes("owlv2", {}, None) == {}


@pytest.mark.parametrize("name, weights", [("owlv2", "owlv2-base"), ("grounding_dino", "grounding-dino-tiny")])
def test_weights_found_in_models_folder(name, weights, tmp_path, monkeypatch):
    save_tiny(name, tmp_path / weights)
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    fn = load_function(name, **with_classes(name, {}, ["stop_sign", "yield"]))
    assert fn.spec.label_names == ["stop_sign", "yield"]
    assert fn.base_model_version == weights and fn.model_version.startswith(weights + "#")
    assert fn.for_classes(["yield"]).model_version != fn.model_version  # the version names what is searched
    shapes = fn.detect(DetectionFunctionContext(conf_threshold=0.0), test_images()[0])
    assert all(s.label_id in (0, 1) for s in shapes)


@pytest.mark.parametrize("name, weights", [("sam3", "sam3"), ("owlv2", "owlv2-base")])
def test_missing_weights_say_how_to_get_them(name, weights, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=f"autoannotate weights download {weights}"):
        load_function(name, classes=["a"])
    assert not importlib.import_module(f"autoannotate.functions.{name}").weights_available()


def test_open_vocabulary_function_without_classes_says_so(tmp_path, monkeypatch):
    with pytest.raises(BadParameterError, match="open-vocabulary"):
        load_function("owlv2", pretrained=False)
    # before any weights are looked for: the class message, not a missing-weights one
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    for name in ("sam3", "owlv2", "grounding_dino"):
        with pytest.raises(BadParameterError, match="--classes"):
            load_function(name)


def test_cli_annotate_with_classes(tmp_path, monkeypatch, capsys):
    from autoannotate.cli import main

    save_tiny("owlv2", tmp_path / "models" / "owlv2-base")
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, im in enumerate(test_images()):
        im.save(photos / f"p{i}.png")
    out = tmp_path / "coco.json"
    args = ["annotate", str(photos), "--function", "owlv2", "--classes", "stop sign:bbox,yield:polygon"]
    rc = main([*args, "--conf-threshold", "0.2", "-o", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr()
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["stop sign", "yield"]
    by_cat = {c["id"]: c["name"] for c in coco["categories"]}
    anns = coco["annotations"]
    assert anns and {by_cat[a["category_id"]] for a in anns} <= {"stop sign", "yield"}
    # what the function finds directly, per class
    fn = load_function("owlv2", classes=["stop sign", "yield"])
    direct = [s for im in test_images() for s in fn.detect(DetectionFunctionContext(conf_threshold=0.2), im)]
    assert len(anns) == len(direct)
    assert sorted(by_cat[a["category_id"]] for a in anns) == sorted(fn.spec.label_names[s.label_id] for s in direct)
    # yield is refined to polygons (GrabCut here); a box with no area has nothing to segment and stays a box
    yields = [a for a in anns if by_cat[a["category_id"]] == "yield"]
    assert all(a.get("segmentation") or min(a["bbox"][2:]) < 1 for a in yields)
    assert all(not a.get("segmentation") for a in anns if by_cat[a["category_id"]] == "stop sign")


def test_cli_classes_refuse_unknown_output_types(tmp_path, capsys):
    from autoannotate.cli import main

    rc = main(["annotate", str(tmp_path), "--function", "owlv2", "--classes", "a:cuboid", "-o", str(tmp_path / "x")])
    assert rc == 2
