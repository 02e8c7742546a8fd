"""Video tasks: a drawn VideoRectangle becomes a tracked sequence; whole videos are
pre-annotated with tracks (fake detector, real OpenCV tracker, a real encoded video)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import autoannotate as aa
from autoannotate.functions import opencv_tracker
from autoannotate.label_studio import Backend
from autoannotate.label_studio.app import Settings, create_app
from tests.fakes import FakeDetector, StillTracker
from tests.tracking.synthetic import iou, make_frames, write_video

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

N = 30
CONFIG = """<View>
  <Labels name="videoLabels" toName="video"><Label value="Cat" predicted_values="cat"/><Label value="Dog"/></Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, truth = make_frames(N, objects=2)
    path = write_video(frames, tmp_path_factory.mktemp("ls-video") / "clip.mp4")
    uri = "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()
    return uri, truth


def pct(box, w=320, h=240):
    x1, y1, x2, y2 = box
    return {"x": x1 / w * 100, "y": y1 / h * 100, "width": (x2 - x1) / w * 100, "height": (y2 - y1) / h * 100}


def px(k, w=320, h=240):
    return (k["x"] * w / 100, k["y"] * h / 100, (k["x"] + k["width"]) * w / 100, (k["y"] + k["height"]) * h / 100)


def client(function=None, tracker=None):
    backend = Backend(function=function, tracker=tracker or opencv_tracker.create(), track_frames=20)
    return TestClient(create_app(Settings(), backend=backend)), backend


def test_setup_lists_the_video_control():
    c, _ = client()
    assert c.post("/setup", json={"schema": CONFIG}).json()["controls"]["video"] == ["box"]


def test_a_drawn_box_becomes_a_tracked_sequence(clip):
    uri, truth = clip
    c, _ = client()
    drawn = {
        "id": "reg1",
        "type": "videorectangle",
        "from_name": "box",
        "to_name": "video",
        "value": {"labels": ["Cat"], "sequence": [{"frame": 3, "enabled": True, **pct(truth[0][2])}]},
    }
    r = c.post(
        "/predict",
        json={
            "tasks": [{"id": 5, "data": {"video": uri}}],
            "label_config": CONFIG,
            "params": {"context": {"result": [drawn]}},
        },
    )
    assert r.status_code == 200, r.text
    (region,) = r.json()["results"][0]["result"]
    assert region["id"] == "reg1" and region["type"] == "videorectangle" and region["value"]["labels"] == ["Cat"]
    seq = region["value"]["sequence"]
    assert [k["frame"] for k in seq] == list(range(3, 24))  # the drawn frame plus 20 tracked frames
    assert seq[-1]["enabled"] is False and all(k["enabled"] for k in seq[:-1])
    assert seq[5]["time"] == pytest.approx(0.7)  # frame 8 at 10 fps
    ious = [iou(px(k), truth[0][k["frame"] - 1]) for k in seq]
    assert np.mean(ious) > 0.8


def test_whole_videos_are_pre_annotated_with_tracks(clip):
    uri, truth = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, truth[0][i], score=0.9), aa.rectangle(1, truth[1][i], score=0.6)]

    spec = [aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("horse", 1, type="rectangle")]
    # a deterministic tracker: this is about the regions, not MIL (whose random sampling can split
    # a track in one process and not in another)
    c, _ = client(FakeDetector(detect, labels=spec), StillTracker())
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"video": uri}}], "label_config": CONFIG})
    assert r.status_code == 200, r.text
    (region,) = r.json()["results"][0]["result"]  # 'horse' has no label in the project: dropped
    assert region["value"]["labels"] == ["Cat"] and region["score"] == 0.9
    seq = region["value"]["sequence"]
    assert [k["frame"] for k in seq] == list(range(1, N + 1))
    assert np.mean([iou(px(k), truth[0][k["frame"] - 1]) for k in seq]) > 0.7


def test_a_video_request_with_no_drawn_box_is_a_normal_empty_answer(clip, caplog):
    """Label Studio asks when a video task is opened, before anything is drawn: no 400, no warning."""
    import logging

    uri, _ = clip
    c, _ = client()
    caplog.set_level(logging.DEBUG, logger="autoannotate")
    for ctx in ({"result": []}, {"result": [{"type": "keypointlabels", "value": {"x": 1, "y": 1}}]}):
        r = c.post(
            "/predict",
            json={"tasks": [{"id": 1, "data": {"video": uri}}], "label_config": CONFIG, "params": {"context": ctx}},
        )
        assert r.status_code == 200, r.text
        (answer,) = r.json()["results"]
        assert answer["result"] == [] and "error" not in answer
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING], caplog.text


def test_bad_video_contexts(clip):
    uri, _ = clip
    c, _ = client()
    for ctx, msg in [
        ({"result": [{"type": "videorectangle", "value": {"sequence": []}}]}, "keyframes"),
        (
            {
                "result": [
                    {
                        "type": "videorectangle",
                        "value": {"sequence": [{"frame": 999, "x": 1, "y": 1, "width": 5, "height": 5}]},
                    }
                ]
            },
            "outside",
        ),
    ]:
        r = c.post(
            "/predict",
            json={"tasks": [{"id": 1, "data": {"video": uri}}], "label_config": CONFIG, "params": {"context": ctx}},
        )
        assert r.status_code == 400 and msg in r.json()["error"]


# -- the video functions on their own (no backend object) -----------------------------------


def video_controls(spec):
    from autoannotate.label_studio import map_controls, parse_config

    (control,) = parse_config(CONFIG)
    return control, map_controls(spec, [control])


def test_pre_annotate_video_maps_detections_through_the_control(clip):
    from autoannotate.label_studio import ImageFetcher, pre_annotate_video

    uri, truth = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, truth[0][i], score=0.8), aa.rectangle(1, truth[1][i], score=0.95)]

    detector = FakeDetector(
        detect, labels=[aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("dog", 1, type="rectangle")]
    )
    raw, mapped = video_controls(detector.spec)
    kwargs = dict(
        detector=detector,
        tracker=opencv_tracker.create(),
        fetcher=ImageFetcher(),
        key_frame_interval=10,
        conf_threshold=0.9,
        max_video_bytes=64 << 20,
        model_version="v1",
    )
    pred = pre_annotate_video({"id": 3, "data": {"video": uri}}, mapped, **kwargs)
    (region,) = pred["result"]  # the cat (0.8) is under the threshold; 'dog' maps onto 'Dog'
    assert region["value"]["labels"] == ["Dog"] and region["score"] == 0.95 and pred["model_version"] == "v1"
    assert np.mean([iou(px(k), truth[1][k["frame"] - 1]) for k in region["value"]["sequence"]]) > 0.7
    # without a mapped control (or a detector) there is nothing to pre-annotate
    assert pre_annotate_video({"id": 3, "data": {"video": uri}}, [raw], **kwargs)["result"] == []
    assert pre_annotate_video({"id": 3, "data": {"video": uri}}, mapped, **{**kwargs, "detector": None})["result"] == []


def test_pre_annotate_video_failures_are_records_not_exceptions():
    from autoannotate.label_studio import ImageFetcher, pre_annotate_video

    _, mapped = video_controls(FakeDetector().spec)
    kwargs = dict(
        detector=FakeDetector(),
        tracker=opencv_tracker.create(),
        fetcher=ImageFetcher(),
        key_frame_interval=5,
        conf_threshold=None,
        max_video_bytes=1 << 20,
        model_version="v",
    )
    no_video = pre_annotate_video({"id": 1, "data": {}}, mapped, **kwargs)
    assert "result" not in no_video and "no video under data.video" in no_video["error"] and no_video["error_id"]
    garbage = pre_annotate_video({"id": 2, "data": {"video": "data:video/mp4;base64,AAAA"}}, mapped, **kwargs)
    assert "result" not in garbage and garbage["error"]
    too_big = pre_annotate_video(
        {"id": 2, "data": {"video": "data:video/mp4;base64," + "A" * 2_000_000}}, mapped, **kwargs
    )
    assert "result" not in too_big and too_big["error"]


def test_track_drawn_boxes_on_its_own(clip):
    from autoannotate.label_studio import BadRequest, ImageFetcher, track_drawn_boxes

    uri, truth = clip
    control, _ = video_controls(FakeDetector().spec)
    drawn = {
        "id": "r9",
        "type": "videorectangle",
        "from_name": "box",
        "value": {"labels": ["Dog"], "sequence": [{"frame": 1, "enabled": True, **pct(truth[1][0])}]},
    }
    kwargs = dict(
        tracker=opencv_tracker.create(),
        fetcher=ImageFetcher(),
        track_frames=5,
        max_video_bytes=64 << 20,
        model_version="t",
    )
    pred = track_drawn_boxes({"id": 1, "data": {"video": uri}}, {"result": [drawn]}, [control], **kwargs)
    (region,) = pred["result"]
    assert region["id"] == "r9" and [k["frame"] for k in region["value"]["sequence"]] == list(range(1, 7))
    assert pred["model_version"] == "t"
    # nothing drawn: an empty result, not an error (and the video is not even fetched)
    empty = track_drawn_boxes({"id": 1, "data": {}}, {"result": []}, [control], **kwargs)
    assert empty["result"] == [] and empty["model_version"] == "t"
    with pytest.raises(BadRequest, match="keyframes"):
        no_keyframes = {"type": "videorectangle", "value": {"sequence": []}}
        track_drawn_boxes({"id": 1, "data": {"video": uri}}, {"result": [no_keyframes]}, [control], **kwargs)


def test_video_module_does_not_import_the_backend():
    import ast
    import inspect

    from autoannotate.label_studio import video

    tree = ast.parse(inspect.getsource(video))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "backend" not in modules and not any(m and m.endswith(".backend") for m in modules)


# -- the video cache: a task's video is fetched once, kept on disk within a byte budget ---------


class CountingFetcher:
    def __init__(self, fetcher=None):
        from autoannotate.label_studio import ImageFetcher

        self.fetcher = fetcher or ImageFetcher()
        self.refs = []

    def fetch(self, ref, max_bytes):
        self.refs.append(ref)
        return self.fetcher.fetch(ref, max_bytes=max_bytes)


class BytesFetcher:
    def __init__(self):
        self.refs = []

    def fetch(self, ref, max_bytes):
        self.refs.append(ref)
        return b"x" * int(ref.split(":")[1])


def test_video_cache_fetches_once_and_evicts_the_least_recently_used(tmp_path):
    from autoannotate.label_studio.video_cache import VideoCache

    cache = VideoCache(250, tmp_path / "videos")
    f = BytesFetcher()
    for ref in ["a:100", "b:100", "a:100"]:
        with cache.path(f, ref, 1000) as p:
            assert open(p, "rb").read() == b"x" * 100
    assert f.refs == ["a:100", "b:100"] and cache.fetches == 2 and cache.nbytes == 200
    with cache.path(f, "c:100", 1000):  # over the budget: b (least recently used) goes, a stays
        pass
    assert cache.nbytes == 200 and len(list((tmp_path / "videos").iterdir())) == 2
    with cache.path(f, "a:100", 1000):
        pass
    assert f.refs == ["a:100", "b:100", "c:100"]
    with cache.path(f, "b:100", 1000):
        pass
    assert f.refs[-1] == "b:100" and cache.nbytes <= 250
    # a file in use is never removed; a video larger than the budget is used once, not kept
    with cache.path(f, "d:100", 1000) as kept:
        with cache.path(f, "e:100", 1000), cache.path(f, "f:100", 1000):
            assert open(kept, "rb").read() == b"x" * 100
    with cache.path(f, "big:300", 1000) as p:
        assert len(open(p, "rb").read()) == 300
    assert not any("big" in r for r in [str(x) for x in (tmp_path / "videos").iterdir()]) and cache.nbytes <= 250
    with cache.path(f, "big:300", 1000):
        pass
    assert f.refs.count("big:300") == 2


def test_one_fetch_per_task_across_requests(clip):
    uri, truth = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, truth[0][i], score=0.9)]

    fetcher = CountingFetcher()
    backend = Backend(
        function=FakeDetector(detect, labels=[aa.label_spec("cat", 0, type="rectangle")]),
        tracker=StillTracker(),
        fetcher=fetcher,
        track_frames=5,
    )
    c = TestClient(create_app(Settings(), backend=backend))
    drawn = {
        "type": "videorectangle",
        "from_name": "box",
        "value": {"labels": ["Cat"], "sequence": [{"frame": 1, "enabled": True, **pct(truth[0][0])}]},
    }
    task = {"id": 5, "data": {"video": uri}}
    for _ in range(2):
        r = c.post(
            "/predict", json={"tasks": [task], "label_config": CONFIG, "params": {"context": {"result": [drawn]}}}
        )
        assert r.status_code == 200, r.text
    r = c.post("/predict", json={"tasks": [task], "label_config": CONFIG})
    assert r.status_code == 200 and r.json()["results"][0]["result"]
    assert len(fetcher.refs) == 1  # three requests, one download
    backend.video_cache.clear()


# -- sam2_video: a tiny random-weight model saved as sam2.1-hiera-tiny (the normal weights path) --


@pytest.fixture(scope="module")
def tiny_sam2_video(tmp_path_factory):
    from autoannotate.loading import load_function
    from tests.functions.sam2_video_tiny import save_tiny_video_model

    models = tmp_path_factory.mktemp("tiny-models")
    save_tiny_video_model(models / "sam2.1-hiera-tiny")
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTOANNOTATE_MODELS", str(models))
    mp.setenv("AUTOANNOTATE_OFFLINE", "1")
    try:
        yield load_function("sam2_video", min_score=0.0)
    finally:
        mp.undo()


def test_all_drawn_boxes_of_a_task_are_propagated_at_once_with_sam2_video(clip, tiny_sam2_video, monkeypatch):
    from autoannotate.interface import TrackableShape
    from autoannotate.tracking import track_shapes
    from autoannotate.video import read_frames

    uri, truth = clip
    fn = tiny_sam2_video
    calls = []
    original = fn.model.get_image_features
    monkeypatch.setattr(fn.model, "get_image_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    backend = Backend(tracker=fn, track_frames=6)
    c = TestClient(create_app(Settings(), backend=backend))
    drawn = [
        {
            "id": f"r{k}",
            "type": "videorectangle",
            "from_name": "box",
            "value": {"labels": [label], "sequence": [{"frame": 2, "enabled": True, **pct(truth[k][1])}]},
        }
        for k, label in ((0, "Cat"), (1, "Dog"))
    ]
    r = c.post(
        "/predict",
        json={
            "tasks": [{"id": 5, "data": {"video": uri}}],
            "label_config": CONFIG,
            "params": {"context": {"result": drawn}},
        },
    )
    assert r.status_code == 200, r.text
    regions = r.json()["results"][0]["result"]
    assert [g["id"] for g in regions] == ["r0", "r1"] and [g["value"]["labels"] for g in regions] == [["Cat"], ["Dog"]]
    assert len(calls) == 7  # frames 2..8 encoded once each for both boxes
    with backend.video_cache.path(backend.fetcher, uri, 64 << 20) as path:
        expected = track_shapes(
            fn,
            read_frames(path, 1, 8),
            [TrackableShape("rectangle", px(pct(truth[k][1]))) for k in (0, 1)],
            start_frame=1,
        )
    for region, track in zip(regions, expected):
        seq = region["value"]["sequence"]
        assert [k["frame"] for k in seq] == list(range(2, 9))
        for k in seq[1:]:
            assert px(k) == pytest.approx(track.shapes[k["frame"] - 1].box(), abs=0.01)


def test_whole_videos_are_pre_annotated_with_sam2_video(clip, tiny_sam2_video):
    uri, truth = clip

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, truth[0][i], score=0.9), aa.rectangle(1, truth[1][i], score=0.8)]

    spec = [aa.label_spec("cat", 0, type="rectangle"), aa.label_spec("dog", 1, type="rectangle")]
    backend = Backend(function=FakeDetector(detect, labels=spec), tracker=tiny_sam2_video, key_frame_interval=15)
    c = TestClient(create_app(Settings(), backend=backend))
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"video": uri}}], "label_config": CONFIG})
    assert r.status_code == 200, r.text
    regions = r.json()["results"][0]["result"]
    assert {g["value"]["labels"][0] for g in regions} == {"Cat", "Dog"}
    frames = sorted({k["frame"] for g in regions for k in g["value"]["sequence"]})
    assert frames[0] == 1 and frames[-1] == N


class _OpenVocabularyFake(FakeDetector):
    """An open-vocabulary stand-in (it has ``for_classes``, as sam3/owlv2/grounding_dino do): made
    for given class names, it finds the first object of the clip under the first class."""

    def __init__(self, truth, names=("object",), prompts=None):
        super().__init__(
            lambda ctx, img: [aa.rectangle(0, truth[0][int(ctx.frame_name.split()[-1])], score=0.9)],
            labels=[aa.label_spec(n, i, type="rectangle") for i, n in enumerate(names)],
        )
        self.truth, self.prompts = truth, prompts

    def for_classes(self, names, prompts=None):
        return _OpenVocabularyFake(self.truth, tuple(names), prompts)


def test_open_vocabulary_video_pre_annotation_searches_the_configs_video_labels(clip):
    """The served model was loaded with a stand-in class; a video task's labels (from the
    <Labels> of its VideoRectangle, predicted_values as prompts) are what it must find."""
    uri, _ = clip
    backend = Backend(function=_OpenVocabularyFake(clip[1]), tracker=StillTracker())
    detector = backend.detector(backend.controls(CONFIG)["video"])
    assert detector.spec.label_names == ["Cat", "Dog"] and detector.prompts == {"Cat": ["cat"]}
    c = TestClient(create_app(Settings(), backend=backend))
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"video": uri}}], "label_config": CONFIG})
    assert r.status_code == 200, r.text
    (region,) = r.json()["results"][0]["result"]
    assert region["value"]["labels"] == ["Cat"] and len(region["value"]["sequence"]) == N


def test_video_cache_keeps_no_fetch_gate_once_a_video_is_fetched(tmp_path):
    """A gate (lock) per video exists only while that video is wanted: a long-running backend
    serving many tasks does not keep one per video ever asked for."""
    import threading

    from autoannotate.label_studio.video_cache import VideoCache

    cache = VideoCache(10_000, tmp_path / "videos")
    started, release = threading.Event(), threading.Event()

    class SlowFetcher(BytesFetcher):
        def fetch(self, ref, max_bytes):
            if ref.startswith("w:"):
                started.set()
                release.wait(10)
            return super().fetch(ref, max_bytes)

    f = SlowFetcher()
    for i in range(20):
        with cache.path(f, f"v{i}:10", 1000):
            pass
    assert cache._fetching == {} and cache.fetches == 20
    # requests for one video at once: one fetch, and the gate goes when the last one is served
    seen: list[bytes] = []

    def use():
        with cache.path(f, "w:10", 1000) as p:
            seen.append(open(p, "rb").read())

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    assert started.wait(10)
    assert len(cache._fetching) == 1
    release.set()
    for t in threads:
        t.join(10)
    assert seen == [b"x" * 10] * 4 and f.refs.count("w:10") == 1 and cache.fetches == 21
    assert cache._fetching == {}
