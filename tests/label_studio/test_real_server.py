"""Against a real Label Studio server: connect the backend through Label Studio's API and get
(a) pre-annotations, (b) an interactive prediction from a click, (c) predictions uploaded by the
annotate command, all read back through Label Studio's API."""

from __future__ import annotations

import io
import re
from pathlib import Path

import PIL.Image
import pytest

from autoannotate.functions import grabcut, yolox
from autoannotate.label_studio import Backend, FetchPolicy, ImageFetcher, annotate_project
from tests.ls_server import drawn_video_box

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Human" predicted_values="person"/>
    <Label value="Cup"/>
    <Label value="cat"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="Human"/>
    <Label value="Cup"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Human" smart="true"/>
  </KeyPointLabels>
</View>"""

PHOTOS = ("astronaut", "coffee", "chelsea")


def make_project(ls, title):
    import skimage.data

    photos = {name: PIL.Image.fromarray(getattr(skimage.data, name)()) for name in PHOTOS}
    return ls.project_with_images(title, CONFIG, photos, "JPEG", quality=92)


def labels_of(prediction_results, from_name="label"):
    return sorted(
        {
            lbl
            for r in prediction_results
            if r["from_name"] == from_name
            for lbl in r["value"].get("rectanglelabels", [])
        }
    )


@pytest.fixture(scope="module")
def functions(models_env_module):
    return yolox.create(), grabcut.create()


@pytest.fixture(scope="module")
def models_env_module(models_dir):
    import os

    old = os.environ.get("AUTOANNOTATE_MODELS")
    os.environ["AUTOANNOTATE_MODELS"] = str(models_dir)
    yield
    if old is None:
        os.environ.pop("AUTOANNOTATE_MODELS", None)
    else:
        os.environ["AUTOANNOTATE_MODELS"] = old


def connect(ls, serve_backend, functions, project, **options):
    detector, interactive = functions
    backend = Backend(
        function=detector,
        interactive=interactive,
        fetcher=ImageFetcher(FetchPolicy(), label_studio_url=ls.url, api_key=ls.token),
        **options,
    )
    running = serve_backend(backend)
    client = ls.client()
    ml = client.ml.create(project=project.id, url=running.url, title="autoannotate", is_interactive=True)
    return client, ml, backend


def test_backend_pre_annotates_tasks_through_label_studio(label_studio, serve_backend, functions):
    client, project, tasks = make_project(label_studio, "pre-annotation")
    client, ml, backend = connect(label_studio, serve_backend, functions, project)
    assert client.ml.get(id=ml.id).state == "CO", "Label Studio could not connect to the backend"
    label_studio.retrieve_predictions(project.id)
    by_photo = {}
    for name, t in tasks.items():
        preds = list(client.predictions.list(task=t.id))
        assert len(preds) == 1, f"{name}: {len(preds)} predictions"
        by_photo[name] = preds[0]
    astro = by_photo["astronaut"]
    assert astro.model_version == backend.model_version
    assert "Human" in labels_of(astro.result)  # 'person' arrives as 'Human' through predicted_values
    assert "Cup" in labels_of(by_photo["coffee"].result)
    person = next(r for r in astro.result if r["value"]["rectanglelabels"] == ["Human"])
    assert person["score"] == pytest.approx(0.93, abs=0.03)
    assert person["original_width"] == 512 and 0 <= person["value"]["x"] < 5 and person["value"]["height"] > 85
    ids = [r["id"] for p in by_photo.values() for r in p.result]
    assert len(ids) == len(set(ids))


def test_annotate_then_serve_leaves_one_prediction_per_task(label_studio, serve_backend, functions):
    """`label-studio annotate` and the served backend write one model_version: "Retrieve
    predictions" after a bulk run adds nothing. A task where nothing is found (a blank image)
    gets no prediction, so it is asked again and still gets none."""
    client, project, tasks = make_project(label_studio, "one prediction per task")
    with label_studio.http() as http:
        buf = io.BytesIO()
        PIL.Image.new("RGB", (320, 240), (128, 128, 128)).save(buf, "PNG")
        r = http.post(f"/api/projects/{project.id}/import", files=[("file_blank", ("blank.png", buf.getvalue()))])
        assert r.status_code == 201, r.text
    all_tasks = list(client.tasks.list(project=project.id))
    detector, _ = functions
    report = annotate_project(label_studio.url, label_studio.token, project.id, detector, progress=False)
    assert report.images_processed == 4 and report.extra["tasks_with_nothing_found"] == 1
    assert report.extra["predictions_uploaded"] == 3
    client, ml, backend = connect(label_studio, serve_backend, functions, project)
    assert client.ml.get(id=ml.id).state == "CO"
    assert report.extra["model_version"] == backend.model_version == client.ml.get(id=ml.id).model_version
    asked: list = []  # the tasks Label Studio sends to the backend
    predict = backend.predict
    backend.predict = lambda payload: (asked.extend(t.get("id") for t in payload.get("tasks") or []), predict(payload))[
        1
    ]
    label_studio.retrieve_predictions(project.id)
    counts = {t.id: len(list(client.predictions.list(task=t.id))) for t in all_tasks}
    blank = next(t.id for t in all_tasks if "blank" in t.data["image"])
    assert asked == [blank]  # only the task without a prediction of this version was asked again
    assert counts == {t.id: 0 if t.id == blank else 1 for t in all_tasks}, counts

    # an old prediction of this version on the blank task (say, from weights that saw something):
    # --overwrite replaces it with nothing, it does not keep it
    client.predictions.create(
        task=blank,
        model_version=backend.model_version,
        result=[
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["cat"]},
            }
        ],
    )
    assert len(list(client.predictions.list(task=blank))) == 1
    over = annotate_project(label_studio.url, label_studio.token, project.id, detector, overwrite=True, progress=False)
    assert over.extra["tasks_with_nothing_found"] == 1
    assert len(list(client.predictions.list(task=blank))) == 0
    assert all(len(list(client.predictions.list(task=t.id))) == 1 for t in all_tasks if t.id != blank)


def test_interactive_click_through_label_studio(label_studio, serve_backend, functions):
    client, project, tasks = make_project(label_studio, "interactive")
    # no look-ahead: the next tasks' encodings would race the count of this image's encodings
    client, ml, backend = connect(label_studio, serve_backend, functions, project, look_ahead=0)
    cup = tasks["coffee"]
    click = {
        "original_width": 600,
        "original_height": 400,
        "image_rotation": 0,
        "is_positive": True,
        "from_name": "click",
        "to_name": "image",
        "type": "keypointlabels",
        "value": {"x": 48.0, "y": 30.0, "width": 0.5, "keypointlabels": ["Cup"]},
    }
    box = {
        "original_width": 600,
        "original_height": 400,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 27.0, "y": 4.0, "width": 43.0, "height": 70.0, "rectanglelabels": ["Cup"]},
    }
    with label_studio.http() as http:
        r = http.post(
            f"/api/ml/{ml.id}/interactive-annotating", json={"task": cup.id, "context": {"result": [click, box]}}
        )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    result = data["result"] if isinstance(data, dict) else data[0]["result"]
    brush = [reg for reg in result if reg["type"] == "brushlabels"]
    assert len(brush) == 1 and brush[0]["value"]["brushlabels"] == ["Cup"] and brush[0]["value"]["format"] == "rle"
    from label_studio_sdk.converter.brush import decode_rle

    mask = decode_rle(brush[0]["value"]["rle"]).reshape(400, 600, 4)[:, :, 3] > 0
    assert mask[120, 288] and not mask[380, 20]  # the cup, not the table's corner
    assert backend.cache.stats.computed == 1


def test_sam2_click_through_label_studio(label_studio, serve_backend, functions):
    """A click through Label Studio 1.23's interactive-annotating API answered by `sam2` built from
    the real SAM 2.1 tiny architecture (random weights, fixed seed): the brush mask Label Studio
    returns is exactly the function's mask for the same prompt."""
    pytest.importorskip("transformers")
    import numpy as np
    import torch
    from label_studio_sdk.converter.brush import decode_rle

    from autoannotate.functions import sam2
    from autoannotate.images import load_image
    from autoannotate.interface import InteractiveFunctionContext, InteractivePrompt

    torch.manual_seed(0)
    model = sam2.create(size="tiny", pretrained=False)
    detector, _ = functions
    client, project, tasks = make_project(label_studio, "sam2 click")
    fetcher = ImageFetcher(FetchPolicy(), label_studio_url=label_studio.url, api_key=label_studio.token)
    backend = Backend(function=detector, interactive=model, fetcher=fetcher)
    running = serve_backend(backend)
    ml = client.ml.create(project=project.id, url=running.url, title="sam2", is_interactive=True)
    cup = tasks["coffee"]
    click = {
        "is_positive": True,
        "from_name": "click",
        "to_name": "image",
        "type": "keypointlabels",
        "value": {"x": 48.0, "y": 30.0, "width": 0.5, "keypointlabels": ["Cup"]},
    }
    with label_studio.http() as http:
        r = http.post(f"/api/ml/{ml.id}/interactive-annotating", json={"task": cup.id, "context": {"result": [click]}})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    result = data["result"] if isinstance(data, dict) else data[0]["result"]
    (brush,) = [reg for reg in result if reg["type"] == "brushlabels"]
    assert brush["value"]["brushlabels"] == ["Cup"] and brush["value"]["format"] == "rle"
    got = decode_rle(brush["value"]["rle"]).reshape(400, 600, 4)[:, :, 3] > 0

    image = load_image(fetcher.fetch(cup.data["image"]))
    ctx = InteractiveFunctionContext()
    (expected,) = model.segment(ctx, model.encode(ctx, image), InteractivePrompt(positive_points=((288.0, 120.0),)))
    assert np.array_equal(got, np.asarray(expected.mask, bool))
    assert brush["score"] == pytest.approx(expected.score, abs=1e-4)


def test_annotate_command_uploads_predictions_and_resumes(label_studio, functions, capsys):
    client, project, tasks = make_project(label_studio, "annotate command")
    detector, _ = functions
    human = tasks["chelsea"]
    client.annotations.create(
        id=human.id,
        result=[
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["cat"]},
            }
        ],
    )
    report = annotate_project(label_studio.url, label_studio.token, project.id, detector, write_every=1, progress=False)
    assert report.images_processed == 2 and report.images_skipped == 1 and report.success
    preds = {name: list(client.predictions.list(task=t.id)) for name, t in tasks.items()}
    assert [len(preds[n]) for n in PHOTOS] == [1, 1, 0]  # the human-annotated task is left alone
    assert preds["astronaut"][0].model_version == detector.model_version
    assert "Human" in labels_of(preds["astronaut"][0].result)
    again = annotate_project(label_studio.url, label_studio.token, project.id, detector, progress=False)
    assert again.images_processed == 0 and again.images_skipped == 3
    over = annotate_project(label_studio.url, label_studio.token, project.id, detector, overwrite=True, progress=False)
    assert over.images_processed == 3
    counts = [len(list(client.predictions.list(task=t.id))) for t in tasks.values()]
    assert counts == [1, 1, 1]  # replaced, not duplicated
    annotations = list(client.annotations.list(id=human.id))
    assert len(annotations) == 1 and annotations[0].result[0]["value"]["rectanglelabels"] == ["cat"]


def test_annotate_cli_prints_a_report(label_studio, models_env_module, capsys):
    from autoannotate.cli import main

    client, project, tasks = make_project(label_studio, "annotate cli")
    code = main(
        [
            "label-studio",
            "annotate",
            "--url",
            label_studio.url,
            "--api-key",
            label_studio.token,
            "--project",
            str(project.id),
            "--function",
            "yolox",
            "--max-tasks",
            "2",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "tasks processed:    2" in out
    predictions = [p for t in tasks.values() for p in client.predictions.list(task=t.id)]
    assert len(predictions) == 2
    # the count names what was stored: regions of predictions (Label Studio annotations are people's)
    assert f"regions predicted:  {sum(len(p.result) for p in predictions)}\n" in out and "annotation" not in out, out


VIDEO_CONFIG = """<View>
  <Labels name="videoLabels" toName="video"><Label value="Cat" predicted_values="cat"/></Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""


def test_video_task_tracks_a_drawn_box_and_pre_annotates(label_studio, serve_backend, tmp_path, caplog):
    import logging

    import numpy as np

    import autoannotate as aa
    from autoannotate.functions import opencv_tracker
    from tests.fakes import FakeDetector
    from tests.tracking.synthetic import iou, make_frames, write_video

    frames, (truth,) = make_frames(20)
    video = write_video(frames, tmp_path / "clip.mp4")
    client, project, task = label_studio.video_task("video", VIDEO_CONFIG, video)

    def detect(ctx, image):
        i = int(ctx.frame_name.split()[-1])
        return [aa.rectangle(0, truth[i], score=0.9)]

    backend = Backend(
        function=FakeDetector(detect, labels=[aa.label_spec("cat", 0, type="rectangle")]),
        tracker=opencv_tracker.create(),
        track_frames=10,
        fetcher=ImageFetcher(FetchPolicy(), label_studio_url=label_studio.url, api_key=label_studio.token),
    )
    running = serve_backend(backend)
    ml = client.ml.create(project=project.id, url=running.url, title="autoannotate-video", is_interactive=True)
    drawn = drawn_video_box(truth[4], frame=5)
    with label_studio.http() as http:
        # a request with no drawn box (nothing selected yet) is normal: an empty answer, no warning
        caplog.set_level(logging.INFO, logger="autoannotate")
        r = http.post(f"/api/ml/{ml.id}/interactive-annotating", json={"task": task.id, "context": {"result": []}})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert (data["result"] if isinstance(data, dict) else data[0]["result"]) == []
        assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING], caplog.text
        r = http.post(f"/api/ml/{ml.id}/interactive-annotating", json={"task": task.id, "context": {"result": [drawn]}})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        (region,) = data["result"] if isinstance(data, dict) else data[0]["result"]
        seq = region["value"]["sequence"]
        assert [k["frame"] for k in seq] == list(range(5, 16))
        boxes = [(k["x"] * 3.2, k["y"] * 2.4, (k["x"] + k["width"]) * 3.2, (k["y"] + k["height"]) * 2.4) for k in seq]
        assert np.mean([iou(b, truth[k["frame"] - 1]) for b, k in zip(boxes, seq)]) > 0.8
    label_studio.retrieve_predictions(project.id)
    (pred,) = list(client.predictions.list(task=task.id))
    (region,) = pred.result
    assert region["type"] == "videorectangle" and region["value"]["labels"] == ["Cat"]
    assert len(region["value"]["sequence"]) == 20

    # the backend README's steps for a box drawn and submitted in the editor, run as written
    readme = (Path(__file__).resolve().parents[2] / "backends" / "label_studio" / "README.md").read_text()
    snippet = re.search(r"```python\n(annotation = http\.get.*?)```", readme, re.S)
    assert snippet, "the README's steps for tracking a drawn box are missing"
    with label_studio.http() as http:
        annotation = http.post(f"/api/tasks/{task.id}/annotations", json={"result": [drawn]}).json()
        env = {"http": http, "annotation_id": annotation["id"], "ml_id": ml.id, "task_id": task.id}
        exec(compile(snippet.group(1), "backends/label_studio/README.md", "exec"), env)
    tracked = [p for p in client.predictions.list(task=task.id) if p.model_version == "tracked"]
    assert len(tracked) == 1 and [r["id"] for r in tracked[0].result] == ["abc"]
    assert [k["frame"] for k in tracked[0].result[0]["value"]["sequence"]] == list(range(5, 16))
