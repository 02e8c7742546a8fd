"""CVAT SDK auto-annotation functions served to a real Label Studio server by the backend, built
from settings as ``autoannotate label-studio serve`` and the Docker image build it (function,
interactive function and tracker named by ``.py`` files): pre-annotations from a CVAT detection
function, a click answered by a CVAT interaction function, a drawn video box followed by a CVAT
tracking function."""

from __future__ import annotations

import io

import numpy as np
import pytest

from autoannotate.label_studio.service import build_backend
from autoannotate.settings import Settings
from tests import cvat_functions as cf
from tests.ls_server import drawn_video_box
from tests.tracking.synthetic import iou, make_frames, write_video

pytest.importorskip("label_studio_sdk")

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="car"/></RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="blob"/></BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="blob" smart="true"/></KeyPointLabels>
</View>"""

VIDEO_CONFIG = """<View>
  <Labels name="videoLabels" toName="video"><Label value="Cat"/></Labels>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""


@pytest.fixture
def cvat_backend(label_studio, serve_backend, tmp_path):
    """The backend with CVAT functions from three files, as the settings name them."""
    files = {}
    for kind, what in (("function", "create"), ("interactive", "Bright"), ("tracker", "Template")):
        files[kind] = tmp_path / f"cvat_{kind}.py"
        files[kind].write_text(f"from tests.cvat_functions import {what} as create  # noqa: F401\n")
    settings = Settings(
        function=str(files["function"]),
        interactive=str(files["interactive"]),
        tracker=str(files["tracker"]),
        track_frames=10,
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.token,
        encode_ahead=False,
    )
    backend = build_backend(settings)
    return serve_backend(backend, settings)


def _result(r):
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    return data["result"] if isinstance(data, dict) else data[0]["result"]


def test_cvat_detection_and_interaction_functions_behind_label_studio(label_studio, cvat_backend):
    client = label_studio.client()
    project = client.projects.create(title="cvat", label_config=CONFIG)
    buf = io.BytesIO()
    cf.scene().save(buf, "PNG")
    with label_studio.http() as http:
        r = http.post(f"/api/projects/{project.id}/import", files=[("file_scene", ("scene.png", buf.getvalue()))])
        assert r.status_code == 201, r.text
    (task,) = list(client.tasks.list(project=project.id))
    ml = client.ml.create(project=project.id, url=cvat_backend.url, title="cvat", is_interactive=True)
    assert client.ml.get(id=ml.id).state == "CO", "Label Studio could not connect to the backend"
    w, h = cf.SIZE
    label_studio.retrieve_predictions(project.id)
    with label_studio.http() as http:
        (pred,) = list(client.predictions.list(task=task.id))
        cars = [reg for reg in pred.result if reg["type"] == "rectanglelabels"]
        assert sorted(reg["score"] for reg in cars) == pytest.approx([0.3, 0.9])
        car = max(cars, key=lambda reg: reg["score"])
        assert car["value"]["rectanglelabels"] == ["car"]
        (blob,) = [reg for reg in pred.result if reg["type"] == "brushlabels"]
        assert blob["value"]["brushlabels"] == ["blob"] and blob["score"] == pytest.approx(0.8)

        (cx, cy), rad = cf.GREEN_DISC
        click = {
            "original_width": w,
            "original_height": h,
            "is_positive": True,
            "from_name": "click",
            "to_name": "image",
            "type": "keypointlabels",
            "value": {"x": 100 * cx / w, "y": 100 * cy / h, "width": 0.5, "keypointlabels": ["blob"]},
        }
        result = _result(
            http.post(f"/api/ml/{ml.id}/interactive-annotating", json={"task": task.id, "context": {"result": [click]}})
        )
    (brush,) = [reg for reg in result if reg["type"] == "brushlabels"]
    from label_studio_sdk.converter.brush import decode_rle

    mask = decode_rle(brush["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
    yy, xx = np.mgrid[:h, :w]
    assert np.array_equal(mask, (xx - cx) ** 2 + (yy - cy) ** 2 <= rad * rad)
    assert brush["value"]["brushlabels"] == ["blob"] and brush["score"] == pytest.approx(0.75)


def test_a_cvat_tracking_function_follows_a_drawn_video_box(label_studio, cvat_backend, tmp_path):
    frames, (truth,) = make_frames(20)
    video = write_video(frames, tmp_path / "clip.mp4")
    client, project, task = label_studio.video_task("cvat video", VIDEO_CONFIG, video)
    ml = client.ml.create(project=project.id, url=cvat_backend.url, title="cvat-video", is_interactive=True)
    drawn = drawn_video_box(truth[4], frame=5)
    with label_studio.http() as http:
        r = http.post(f"/api/ml/{ml.id}/interactive-annotating", json={"task": task.id, "context": {"result": [drawn]}})
        (region,) = _result(r)
    seq = region["value"]["sequence"]
    assert [k["frame"] for k in seq] == list(range(5, 16))
    boxes = [(k["x"] * 3.2, k["y"] * 2.4, (k["x"] + k["width"]) * 3.2, (k["y"] + k["height"]) * 2.4) for k in seq]
    assert min(iou(b, truth[k["frame"] - 1]) for b, k in zip(boxes, seq)) > 0.9
