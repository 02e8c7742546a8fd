"""CVAT SDK auto-annotation functions in FiftyOne's real database: a detection function through
``annotate_dataset`` and, installed by a package, through the auto_label operator's form; a CVAT
tracking function following boxes over a video (``track_labels`` and video auto-labelling)."""

from __future__ import annotations

import cvat_sdk.auto_annotation as cvataa
import numpy as np
import pytest

from tests import cvat_functions as cf
from tests.fiftyone.test_operators import run
from tests.installed import write_package
from tests.tracking.synthetic import iou, make_frames, write_video

fo = pytest.importorskip("fiftyone")

N = 20


@pytest.fixture
def scenes(tmp_path, dataset_name):
    """Two photos: the scene cvat_functions.Shapes reads, and a black one."""
    import PIL.Image

    ds = fo.Dataset(dataset_name)
    cf.scene().save(tmp_path / "scene.png")
    PIL.Image.new("RGB", cf.SIZE).save(tmp_path / "black.png")
    ds.add_samples([fo.Sample(filepath=str(tmp_path / n)) for n in ("scene.png", "black.png")])
    yield ds
    ds.delete()


def _check_scene_labels(ds, field):
    scene, black = ds.sort_by("filepath", reverse=True)
    w, h = cf.SIZE
    (car,) = scene[field].detections
    assert car.label == "car" and car.confidence == pytest.approx(0.9)
    # the rotated box is stored as the upright box around its corners
    from autoannotate.shapes import rotated_corners

    c = rotated_corners(cf.RED_BOX, 30.0)
    x, y, bw, bh = car.bounding_box
    assert (x * w, y * h, (x + bw) * w, (y + bh) * h) == pytest.approx(
        (min(c[0::2]), min(c[1::2]), max(c[0::2]), max(c[1::2])), abs=0.01
    )
    assert black[field] is None or not black[field].detections


def test_a_cvat_function_in_annotate_dataset_and_installed_in_the_operator_form(scenes, tmp_path, monkeypatch):
    from autoannotate.fiftyone import annotate_dataset

    report = annotate_dataset(
        scenes, cf.Shapes(), label_field="api", classes=[("car", "bbox")], conf_threshold=0.5, progress=False
    )
    assert report.images_processed == 2 and not report.failures, report.failures
    _check_scene_labels(scenes, "api")

    root = tmp_path / "site"
    write_package(root, "cvat-shapes", {"cvat_shapes": "tests.cvat_functions:create"}, {})
    monkeypatch.syspath_prepend(str(root))
    out = run(
        "auto_label",
        scenes,
        {
            "view_target": "DATASET",
            "function": "cvat_shapes",
            "function_params": "min_score=float:0.5",
            "classes": "car:bbox",
            "label_field": "op",
            "route": False,
        },
    )
    assert out["images_processed"] == 2 and out["success"], out
    _check_scene_labels(scenes, "op")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, truth = make_frames(N)
    return write_video(frames, tmp_path_factory.mktemp("video") / "clip.mp4"), truth[0], frames[0].size


@pytest.fixture
def video(clip, dataset_name):
    path, truth, (w, h) = clip
    ds = fo.Dataset(f"{dataset_name}-video")
    sample = fo.Sample(filepath=str(path))
    x1, y1, x2, y2 = truth[0]
    sample.frames[1]["detections"] = fo.Detections(
        detections=[fo.Detection(label="cat", bounding_box=[x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h])]
    )
    ds.add_sample(sample)
    yield ds
    ds.delete()


def _boxes(ds, field, size):
    w, h = size
    out = {}
    for n, f in ds.first().frames.items():
        for d in f[field].detections if f[field] is not None else []:
            x, y, bw, bh = d.bounding_box
            out.setdefault(n, []).append((x * w, y * h, (x + bw) * w, (y + bh) * h))
    return out


class _TruthDetector:
    """A CVAT detection function that finds the clip's cat where it is (frame names end with the
    frame's index)."""

    spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("cat", 0, type="rectangle")])

    def __init__(self, truth):
        self.truth = truth

    def detect(self, context, image):
        i = int(context.frame_name.split()[-1])
        return [cvataa.rectangle(0, list(self.truth[i]), score=0.9)]


def test_a_cvat_tracking_function_tracks_video_labels_in_fiftyone(video, clip):
    from autoannotate.fiftyone import annotate_dataset, track_labels

    _, truth, size = clip
    report = track_labels(video, "detections", tracker=cf.Template(), num_frames=N - 1)
    assert report.success and report.annotations_added == N - 1
    got = _boxes(video, "detections", size)
    assert sorted(got) == list(range(1, N + 1))
    assert min(iou(got[n][0], truth[n - 1]) for n in got) > 0.9

    report = annotate_dataset(
        video, _TruthDetector(truth), label_field="auto", tracker=cf.Template(), key_frame_interval=5, progress=False
    )
    assert report.images_processed == 1 and report.extra["tracks"] == 1
    got = _boxes(video, "auto", size)
    assert sorted(got) == list(range(1, N + 1))
    assert np.mean([iou(got[n][0], truth[n - 1]) for n in got]) > 0.9
