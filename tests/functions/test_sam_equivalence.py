"""The sam function returns what segment_anything's SamPredictor returns for the same prompts
(random vit_b weights: outputs are not meaningful, the computation is the real one)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

from segment_anything import SamPredictor  # noqa: E402

import autoannotate as aa  # noqa: E402
from autoannotate.functions import sam  # noqa: E402

CTX = aa.InteractiveFunctionContext("astronaut")


@pytest.fixture(scope="module")
def setup(astronaut):
    torch.manual_seed(0)
    fn = sam.create("vit_b", pretrained=False)
    predictor = SamPredictor(fn.model)
    predictor.set_image(np.asarray(astronaut))
    encoding = fn.encode(CTX, astronaut)
    return fn, predictor, encoding


def test_encoding_equals_predictor_features(setup):
    fn, predictor, enc = setup
    assert torch.allclose(enc.features, predictor.features, atol=1e-5)
    assert enc.original_size == predictor.original_size and enc.input_size == predictor.input_size
    assert enc.nbytes == 256 * 64 * 64 * 4


def same(result, masks, scores, low_res, k):
    assert np.array_equal(result.mask, masks[k])
    assert result.score == pytest.approx(float(np.clip(scores[k], 0, 1)), abs=1e-5)
    assert np.allclose(result.logits, low_res[k : k + 1], atol=1e-4)


def test_single_click_uses_multimask_and_keeps_the_best(setup):
    fn, predictor, enc = setup
    (r,) = fn.segment(CTX, enc, aa.InteractivePrompt(positive_points=[(250, 200)]))
    masks, scores, low = predictor.predict(np.array([[250, 200]]), np.array([1]), multimask_output=True)
    same(r, masks, scores, low, int(scores.argmax()))


def test_clicks_and_a_box_together(setup):
    fn, predictor, enc = setup
    prompt = aa.InteractivePrompt(
        positive_points=[(250, 200), (300, 260)], negative_points=[(120, 400)], boxes=[(100, 50, 400, 450)]
    )
    (r,) = fn.segment(CTX, enc, prompt)
    masks, scores, low = predictor.predict(
        np.array([[250, 200], [300, 260], [120, 400]]),
        np.array([1, 1, 0]),
        box=np.array([100, 50, 400, 450]),
        multimask_output=False,
    )
    same(r, masks, scores, low, 0)


def test_several_boxes_give_one_object_each_with_their_own_clicks(setup):
    fn, predictor, enc = setup
    boxes = [(0, 0, 200, 200), (250, 250, 500, 500)]
    prompt = aa.InteractivePrompt(positive_points=[(100, 100), (300, 300)], negative_points=[(260, 480)], boxes=boxes)
    results = fn.segment(CTX, enc, prompt)
    assert len(results) == 2
    m0, s0, l0 = predictor.predict(
        np.array([[100, 100]]), np.array([1]), box=np.array(boxes[0]), multimask_output=False
    )
    m1, s1, l1 = predictor.predict(
        np.array([[300, 300], [260, 480]]), np.array([1, 0]), box=np.array(boxes[1]), multimask_output=False
    )
    same(results[0], m0, s0, l0, 0)
    same(results[1], m1, s1, l1, 0)


def test_mask_input_refinement(setup):
    fn, predictor, enc = setup
    (first,) = fn.segment(CTX, enc, aa.InteractivePrompt(positive_points=[(250, 200)]))
    prompt = aa.InteractivePrompt(positive_points=[(250, 200), (260, 230)], mask_input=first.logits)
    (r,) = fn.segment(CTX, enc, prompt)
    masks, scores, low = predictor.predict(
        np.array([[250, 200], [260, 230]]), np.array([1, 1]), mask_input=first.logits, multimask_output=False
    )
    same(r, masks, scores, low, 0)


def test_batched_box_refinement_equals_one_box_at_a_time(setup):
    fn, predictor, enc = setup
    boxes = [(10, 20, 368, 507), (100, 100, 300, 300), (0, 0, 511, 511)]
    batched = fn.segment_boxes(CTX, enc, boxes)
    for r, b in zip(batched, boxes):
        masks, scores, _ = predictor.predict(box=np.array(b), multimask_output=False)
        differing = np.count_nonzero(r.mask != masks[0]) / masks[0].size
        assert differing < 1e-3  # batched float math may flip a handful of border pixels
        assert r.score == pytest.approx(float(np.clip(scores[0], 0, 1)), abs=1e-4)


def test_model_types_and_offline_weights(monkeypatch, tmp_path):
    with pytest.raises(aa.BadParameterError, match="vit_x"):
        sam.create("vit_x", pretrained=False)
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    with pytest.raises(aa.WeightsNotFoundError, match="sam_vit_b_01ec64.pth"):
        sam.create("vit_b")
    assert not sam.weights_available("vit_b")


def test_checkpoint_loads_with_weights_only(monkeypatch, tmp_path, setup):
    fn, _, _ = setup
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(fn.model.state_dict(), path)
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    assert sam.weights_available("vit_b")
    loaded = sam.create("vit_b")
    assert loaded.model_version == "sam_vit_b_01ec64"
    a, b = fn.model.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
