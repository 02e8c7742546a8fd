"""sam2_video / edgetam_video: the same masks as transformers' own video propagation (tiny
random-weight models, fixed seed), one image encoding per frame for all objects, bounded memory,
lost objects leaving the session."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate.interface import TrackableShape, TrackingFunctionContext
from autoannotate.masks import mask_bbox
from autoannotate.tracking import detect_and_track, track_shapes
from tests.fakes import FakeDetector
from tests.functions.sam2_video_tiny import save_tiny_video_model, tiny_video_tracker

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

W, H = 120, 96
BOXES = [(10, 10, 50, 60), (60, 20, 110, 80), (30, 40, 90, 90)]


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    # a slowly moving picture, so that frames differ
    return [PIL.Image.fromarray(np.roll(base, 2 * k, axis=1)) for k in range(n)]


def reference(fn, video, prompts):
    """transformers' own streaming propagation (no bounds): ``{frame: (masks N x H x W, scores)}``."""
    p, m = fn.processor, fn.model
    session = p.init_video_session(inference_device="cpu")
    out = {}
    with torch.inference_mode():
        for k, image in enumerate(video):
            inputs = p(images=image, return_tensors="pt")
            if k == 0:
                p.add_inputs_to_inference_session(
                    session,
                    frame_idx=0,
                    obj_ids=list(range(len(prompts))),
                    original_size=inputs.original_sizes[0],
                    **prompts_kwargs(prompts),
                )
            res = m(inference_session=session, frame=inputs.pixel_values[0])
            masks = p.post_process_masks([res.pred_masks], original_sizes=inputs.original_sizes)[0][:, 0].numpy()
            out[k] = (masks, torch.sigmoid(res.object_score_logits.reshape(-1)).numpy())
    return out


def prompts_kwargs(prompts):
    if all(isinstance(v, tuple) for v in prompts):
        return {"input_boxes": [[list(b) for b in prompts]]}
    return {"input_masks": list(prompts)}


@pytest.fixture(scope="module", params=["sam2", "edgetam"])
def fn(request):
    return tiny_video_tracker(request.param)


def test_same_masks_as_transformers_for_every_frame_and_object(fn):
    n = 20 if fn.model_version.endswith("sam2") else 18  # past the memory window (16): pruning happens
    video = frames(n)
    ref = reference(fn, video, BOXES)
    session = fn.video_session()
    for k, image in enumerate(video):
        pp = fn.preprocess_image(TrackingFunctionContext(k), image)
        if k == 0:
            for i, b in enumerate(BOXES):
                session.add(i, 0, pp, TrackableShape("rectangle", b))
            got = session.flush()
        else:
            got = session.propagate(k, pp)
        masks, scores = ref[k]
        assert sorted(got) == [0, 1, 2]
        for i in range(3):
            assert np.array_equal(got[i][0], masks[i]), (k, i)
            assert got[i][1] == pytest.approx(float(scores[i]), abs=1e-6)
    # the bounds: no frame pixels, no full-resolution masks, outputs only within the memory window
    s = session.session
    assert not s.processed_frames
    for outputs in s.output_dict_per_obj.values():
        assert all("high_res_masks" not in o for kind in outputs.values() for o in kind.values())
        assert len(outputs["non_cond_frame_outputs"]) <= session.window + 1
        assert min(outputs["non_cond_frame_outputs"]) >= n - 1 - session.window


def test_track_shapes_gives_the_boxes_of_transformers_masks_with_one_encoding_per_frame(fn, monkeypatch):
    video = frames(6)
    ref = reference(fn, video, BOXES)
    calls = []
    original = fn.model.get_image_features
    monkeypatch.setattr(fn.model, "get_image_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    tracks = track_shapes(fn, video, [TrackableShape("rectangle", b) for b in BOXES])
    assert len(calls) == len(video)  # one image encoding per frame for the three objects
    for i, t in enumerate(tracks):
        assert t.end_reason is None and sorted(t.shapes) == list(range(6))
        assert t.shapes[0].points == BOXES[i]  # the drawn box on its own frame
        for k in range(1, 6):
            assert t.shapes[k].box() == pytest.approx(mask_bbox(ref[k][0][i]))
        assert t.state is None  # the returned tracks do not keep the video session alive


def test_mask_prompts_and_the_per_object_protocol():
    fn = tiny_video_tracker("sam2")
    video = frames(4)
    masks = []
    for b in BOXES[:2]:
        m = np.zeros((H, W), bool)
        m[b[1] : b[3], b[0] : b[2]] = True
        masks.append(m)
    ref = reference(fn, video, masks)
    (a, b) = track_shapes(fn, video, [TrackableShape("mask", bitmap=m) for m in masks])
    for k in range(1, 4):
        assert np.array_equal(a.shapes[k].bitmap, ref[k][0][0]) and np.array_equal(b.shapes[k].bitmap, ref[k][0][1])
    # the per-object protocol (a session per object) gives the same for one object
    ctx = TrackingFunctionContext
    state = fn.init_tracking_state(
        aa.TrackingFunctionShapeContext("mask", 0),
        fn.preprocess_image(ctx(0), video[0]),
        TrackableShape("mask", bitmap=masks[0]),
    )
    for k in range(1, 4):
        shape = fn.track(aa.TrackingFunctionShapeContext("mask", k), fn.preprocess_image(ctx(k), video[k]), state)
        assert np.array_equal(shape.bitmap, a.shapes[k].bitmap)


def test_a_removed_object_does_not_change_the_others():
    fn = tiny_video_tracker("sam2")
    video = frames(6)
    alone = reference(fn, video, BOXES[:1])
    session = fn.video_session()
    for k, image in enumerate(video):
        pp = fn.preprocess_image(TrackingFunctionContext(k), image)
        if k == 0:
            session.add(0, 0, pp, TrackableShape("rectangle", BOXES[0]))
            session.add(1, 0, pp, TrackableShape("rectangle", BOXES[1]))
            continue
        got = session.propagate(k, pp)
        if k == 2:
            session.remove([1])
        assert np.array_equal(got[0][0], alone[k][0][0])
        assert sorted(got) == ([0, 1] if k <= 2 else [0])


def test_an_object_under_the_score_threshold_is_lost_and_leaves_the_session():
    fn = tiny_video_tracker("sam2", min_score=0.9)  # random weights score about 0.5
    tracker_tracks = track_shapes(fn, frames(5), [TrackableShape("rectangle", b) for b in BOXES[:2]])
    for t in tracker_tracks:
        assert t.lost_at == 1 and t.end_reason is None and sorted(t.shapes) == [0]


def test_detect_and_track_starts_new_objects_on_key_frames_in_the_same_session():
    fn = tiny_video_tracker("sam2")
    video = frames(7)

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, BOXES[0], score=0.9)] + ([aa.rectangle(0, BOXES[1], score=0.8)] if i == 3 else [])

    tracks = detect_and_track(FakeDetector(detect), fn, video, key_frame_interval=3, iou_threshold=0.99)
    by_start = {min(t.shapes): t for t in tracks}
    assert 0 in by_start and 3 in by_start
    assert by_start[3].shapes[3].points == BOXES[1] and max(by_start[3].shapes) == 6
    assert all(t.end_reason is None for t in tracks)


def test_create_loads_a_saved_model_folder(tmp_path):
    from autoannotate.functions import edgetam_video, sam2_video
    from autoannotate.loading import load_function

    folder = save_tiny_video_model(tmp_path / "tiny-sam2-video")
    fn = sam2_video.create(checkpoint=folder, min_score=0.0)
    assert fn.model_version == "tiny-sam2-video-video" and fn.min_score == 0.0
    assert isinstance(load_function("sam2_video", checkpoint=folder), sam2_video.VideoSamTracker)
    with pytest.raises(aa.BadParameterError, match="min_score"):
        sam2_video.create(checkpoint=folder, min_score=2)
    with pytest.raises(aa.WeightsNotFoundError, match="not a saved model"):
        edgetam_video.create(checkpoint=str(tmp_path))
