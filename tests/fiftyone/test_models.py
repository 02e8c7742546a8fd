"""FiftyOne models both ways, against the real database: a FiftyOne model through
``annotate_dataset`` (directly, by zoo name in the operator form and on the command line) gives
the labels ``apply_model`` gives; ``apply_model(as_model(fn))`` gives ``annotate_dataset``'s labels."""

from __future__ import annotations

import json
import math

import numpy as np
import PIL.Image
import pytest

import autoannotate as aa
from autoannotate.errors import BadFunctionError, BadParameterError, WeightsNotFoundError
from autoannotate.fiftyone import annotate_dataset, as_model, from_model
from autoannotate.loading import load_function

fo = pytest.importorskip("fiftyone")
foo = pytest.importorskip("fiftyone.operators")
from tests.fiftyone import fo_models  # noqa: E402
from tests.fiftyone.fo_models import ToyModel, ToyModelConfig  # noqa: E402
from tests.fiftyone.test_video import clip, video_dataset  # noqa: E402, F401 - fixtures


def toy(kind="boxes", **config):
    return ToyModel(ToyModelConfig({"kind": kind, **config}))


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A zoo manifest of test models that need no download (``fiftyone_zoo`` finds them by name)."""
    path = fo_models.manifest(
        tmp_path / "manifest.json",
        {
            "aa-toy-boxes": ({"kind": "boxes"}, ["detection"]),
            "aa-toy-masks": ({"kind": "masks"}, ["instances"]),
            "aa-toy-depth": ({}, ["depth"]),
        },
    )
    monkeypatch.setattr(fo.config, "model_zoo_manifest_paths", [path])
    return path


def _geometry(label, size):
    w, h = size
    if isinstance(label, fo.Detection):
        if label.mask is not None:  # the mask's pixels on the whole image, wherever its box was put
            x, y = round(label.bounding_box[0] * w), round(label.bounding_box[1] * h)
            ys, xs = np.nonzero(label.mask)
            return ("mask", sorted(zip((xs + x).tolist(), (ys + y).tolist())))
        return ("box", [round(v, 9) for v in label.bounding_box])
    if isinstance(label, fo.Polyline):
        return (
            "polyline",
            label.closed,
            label.filled,
            [[(round(x, 9), round(y, 9)) for x, y in p] for p in label.points],
        )
    if isinstance(label, fo.Keypoint):
        return (
            "keypoint",
            [(None if math.isnan(x) else round(x, 9), None if math.isnan(y) else round(y, 9)) for x, y in label.points],
        )
    return ("tag",)


def _confidence(label):
    c = label.confidence
    return [round(v, 9) for v in c] if isinstance(c, list) else (None if c is None else round(c, 9))


def labels_of(ds, field):
    """Per sample (by filepath): every label of ``field`` as (label, confidence, review, geometry)."""
    ds.compute_metadata()
    out = {}
    for s in ds.sort_by("filepath"):
        size = (s.metadata.width, s.metadata.height)
        container = s[field]
        items = container[container._LABEL_LIST_FIELD] if container is not None else []
        out[s.filepath] = sorted(
            (
                json.dumps(
                    [lbl.label, _confidence(lbl), lbl.get_field("review") if lbl.has_field("review") else None],
                    default=str,
                ),
                repr(_geometry(lbl, size)),
            )
            for lbl in items
        )
    return out


# -- a FiftyOne model is a detection function -------------------------------------------------


@pytest.mark.parametrize(
    "kind, label_type, classes",
    [
        ("boxes", None, None),  # a model that says nothing is taken as boxes
        ("masks", "mask", None),
        ("polylines", "any", "cat:polygon, dog:polyline"),
        ("keypoints", "points", None),
        ("classifications", "tag", None),
    ],
)
def test_a_fiftyone_model_through_annotate_dataset_gives_the_labels_apply_model_gives(
    small_dataset, kind, label_type, classes
):
    model = toy(kind)
    small_dataset.apply_model(model, label_field="by_fiftyone")
    function = model if label_type is None else from_model(model, label_type=label_type)
    report = annotate_dataset(small_dataset, function, label_field="by_aa", classes=classes, progress=False)
    assert report.images_processed == 6 and not report.failures and report.annotations_added == 12
    expected = labels_of(small_dataset, "by_fiftyone")
    assert labels_of(small_dataset, "by_aa") == expected
    assert all(len(v) == 2 for v in expected.values())


def test_a_model_is_run_in_batches_through_predict_all(small_dataset):
    fo_models.BATCHES.clear()
    annotate_dataset(small_dataset, toy(), label_field="auto", batch_size=4, progress=False)
    assert fo_models.BATCHES == [4, 2]


def test_the_spec_comes_from_the_model_classes_and_labels_outside_them_are_errors(tmp_path):
    fn = from_model(toy(classes=["cat"]))  # the model says cat, returns dog too
    assert fn.spec.label_names == ["cat"] and fn.spec.labels[0].type == "rectangle"
    img = tmp_path / "a.png"
    PIL.Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(img)
    results, _ = aa.annotate_images(fn, [str(img)], progress=False)
    assert "returned label 'dog', which is not one of its classes ['cat']" in results[0].error
    # classes given filter what the model returns, as apply_model(classes=...) does
    results, _ = aa.annotate_images(from_model(toy(), classes="dog"), [str(img)], progress=False)
    assert [(s.type, s.label_id) for s in results[0].shapes] == [("rectangle", 0)]


def test_models_it_cannot_run_are_refused_with_the_reason():
    with pytest.raises(BadFunctionError, match="'video' model"):
        from_model(fo_models.VideoModel())
    with pytest.raises(BadFunctionError, match=r"needs sample fields \{'prompt_field': 'ground_truth'\}"):
        from_model(fo_models.PromptedModel())
    with pytest.raises(BadFunctionError, match="declares no classes"):
        from_model(toy(classes=[]))
    with pytest.raises(BadFunctionError, match="not a fiftyone.core.models.Model|expected a fiftyone"):
        from_model(object())


def test_a_model_that_does_not_say_its_shapes_fails_each_image_saying_which_label_type(small_dataset):
    report = annotate_dataset(small_dataset, toy("masks"), label_field="auto", progress=False)
    assert len(report.failures) == 6
    assert "from_model(model, label_type='mask')" in report.failures[0].reason


def test_fiftyone_zoo_by_name_takes_the_shape_type_from_the_zoo_tags(small_dataset, zoo):
    small_dataset.apply_model(toy("masks"), label_field="by_fiftyone")
    report = annotate_dataset(
        small_dataset, "fiftyone_zoo", function_params={"name": "aa-toy-masks"}, label_field="by_aa", progress=False
    )
    assert report.annotations_added == 12
    assert labels_of(small_dataset, "by_aa") == labels_of(small_dataset, "by_fiftyone")
    fn = load_function("fiftyone_zoo", name="aa-toy-boxes")
    assert fn.model_version == "fiftyone-zoo:aa-toy-boxes" and fn.spec.labels[0].type == "rectangle"


def test_fiftyone_zoo_refuses_what_it_cannot_run_with_the_reason(zoo, monkeypatch):
    with pytest.raises(BadParameterError, match="did you mean 'aa-toy-boxes'"):
        load_function("fiftyone_zoo", name="aa-toy-boxs")
    with pytest.raises(BadFunctionError, match="gives depth maps"):
        load_function("fiftyone_zoo", name="aa-toy-depth")
    with pytest.raises(BadFunctionError, match="is a video model"):
        load_function("fiftyone_zoo", name="segment-anything-2-hiera-tiny-video-torch")
    monkeypatch.setattr(fo.config, "model_zoo_dir", str(zoo) + ".models")  # nothing downloaded there
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="fiftyone zoo models download faster-rcnn-resnet50-fpn-coco-torch"):
        load_function("fiftyone_zoo", name="faster-rcnn-resnet50-fpn-coco-torch")


def test_the_operator_form_runs_a_zoo_model_by_name(small_dataset, zoo):
    small_dataset.apply_model(toy(), label_field="by_fiftyone")
    result = foo.execute_operator(
        "@autoannotate/autoannotate/auto_label",
        ctx={
            "dataset": small_dataset.name,
            "params": {
                "view_target": "DATASET",
                "function": "fiftyone_zoo",
                "function_params": "name=aa-toy-boxes",
                "label_field": "by_aa",
                "route": False,
            },
        },
    )
    assert result.error is None, result.error_message
    assert result.result["images_processed"] == 6 and result.result["annotations_added"] == 12
    assert labels_of(small_dataset, "by_aa") == labels_of(small_dataset, "by_fiftyone")


def test_the_cli_writes_a_zoo_model_labels_to_a_coco_file(small_dataset, zoo, tmp_path):
    from autoannotate.cli import main

    out = tmp_path / "coco.json"
    folder = small_dataset.first().filepath.rsplit("/", 1)[0]
    args = [
        "annotate",
        folder,
        "--function",
        "fiftyone_zoo",
        "-p",
        "name=aa-toy-boxes",
        "-o",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"]
    small_dataset.apply_model(toy(), label_field="by_fiftyone")
    by_name = {i["file_name"]: i["id"] for i in coco["images"]}
    for s in small_dataset:
        w, h = 60, 40
        expected = sorted(
            (
                d.label,
                round(d.confidence, 6),
                [
                    round(v, 3)
                    for v in (
                        d.bounding_box[0] * w,
                        d.bounding_box[1] * h,
                        d.bounding_box[2] * w,
                        d.bounding_box[3] * h,
                    )
                ],
            )
            for d in s.by_fiftyone.detections
        )
        image_id = by_name[s.filepath.rsplit("/", 1)[1]]
        names = {c["id"]: c["name"] for c in coco["categories"]}
        got = sorted(
            (names[a["category_id"]], round(a["score"], 6), [round(v, 3) for v in a["bbox"]])
            for a in coco["annotations"]
            if a["image_id"] == image_id
        )
        assert got == expected


# -- an autoannotate function is a FiftyOne model --------------------------------------------


class EveryShape:
    """Each output type once per image, placed and scored from the image's pixels; batched."""

    spec = aa.DetectionFunctionSpec(
        labels=[
            aa.label_spec("car", 0, type="rectangle"),
            aa.label_spec("road", 1, type="polygon"),
            aa.label_spec("sky", 2, type="mask"),
            aa.skeleton_label_spec(
                "person", 3, [aa.keypoint_spec(k, i) for i, k in enumerate(["head", "hand", "foot"])]
            ),
            aa.label_spec("outdoor", 4, type="tag"),
        ]
    )

    def __init__(self):
        self.batches = []

    def detect(self, context, image):
        return self.detect_batch([context], [image])[0]

    def detect_batch(self, contexts, images):
        self.batches.append(len(images))
        return [self._one(img) for img in images]

    def _one(self, image):
        w, h = image.size
        v = int(np.asarray(image).mean() * 10) % 30
        bitmap = np.zeros((h, w), bool)
        bitmap[2 : 12 + v % 7, 30 : 50 - v % 5] = True
        return [
            aa.rectangle(0, [1.5 + v, 2, 20.25 + v, 17], score=0.1 + v / 40),
            aa.polygon(1, [5, 30, 25 + v % 9, 31, 15, 38], score=0.66),
            aa.mask(2, bitmap, score=0.9),
            aa.skeleton(
                3,
                [
                    aa.keypoint(0, [10 + v % 3, 5]),
                    aa.keypoint(1, [12, 9], occluded=True),
                    aa.keypoint(2, [0, 0], outside=True),
                ],
                score=0.5,
            ),
            aa.tag(4, score=0.2 + v / 100),
        ]


def test_apply_model_of_as_model_gives_annotate_dataset_labels_for_every_output_type(small_dataset):
    classes = "car:bbox, road:polygon, sky:mask, person:keypoint, outdoor:tag"
    fn = EveryShape()
    review = (0.3, 0.8)
    annotate_dataset(small_dataset, fn, label_field="by_aa", classes=classes, review=review, progress=False)
    model = as_model(fn, classes=classes, review=review)
    fields = model.label_fields("by_fo")
    assert fields == {
        "detections": "by_fo",
        "polylines": "by_fo_polylines",
        "keypoints": "by_fo_keypoints",
        "classifications": "by_fo_classifications",
    }
    fn.batches.clear()
    small_dataset.apply_model(model, label_field=fields, batch_size=4)
    assert fn.batches == [4, 2]  # one detect_batch call per apply_model batch
    kinds = {}
    for kind, field in fields.items():
        aa_field = "by_aa" if kind == "detections" else f"by_aa_{kind}"
        got, expected = labels_of(small_dataset, field), labels_of(small_dataset, aa_field)
        assert got == expected
        kinds[kind] = sum(len(v) for v in got.values())
    assert all(kinds.values()) and sum(kinds.values()) < 30  # every kind, less what review discarded
    # below the lower review threshold: not stored by either; the rest carry the same review status
    reviews = [lbl.review for s in small_dataset for lbl in s.by_fo.detections]
    assert "approved" in reviews and "needs_review" in reviews
    sample = small_dataset.first()
    assert not sample.by_fo.has_field("autoannotate_run") or sample.by_fo.get_field("autoannotate_run") is None


def test_as_model_of_one_kind_stores_in_the_label_field_with_threshold_and_label_map(small_dataset):
    fn = EveryShape()
    annotate_dataset(
        small_dataset,
        fn,
        label_field="by_aa",
        classes="vehicle",
        label_map={"car": "vehicle"},
        conf_threshold=0.4,
        progress=False,
    )
    model = as_model(fn, classes="vehicle", label_map="car=vehicle")
    assert model.classes == ["vehicle"]
    small_dataset.apply_model(model, label_field="by_fo", confidence_thresh=0.4)
    got = labels_of(small_dataset, "by_fo")
    assert got == labels_of(small_dataset, "by_aa")
    assert 0 < sum(len(v) for v in got.values()) < 6  # the threshold dropped some
    assert all(json.loads(label)[0] == "vehicle" for v in got.values() for label, _ in v)


def test_as_model_takes_a_function_by_name_and_round_trips_through_from_model(small_dataset, models_env):
    model = as_model("yolox", function_params={"model": "yolox_nano"}, conf_threshold=0.01)
    small_dataset.apply_model(model, label_field="by_fo", batch_size=3)
    annotate_dataset(
        small_dataset,
        "yolox",
        function_params={"model": "yolox_nano"},
        conf_threshold=0.01,
        label_field="by_aa",
        progress=False,
    )
    assert labels_of(small_dataset, "by_fo") == labels_of(small_dataset, "by_aa")
    # and back: the FiftyOne model of a function is a function again, with the same labels
    annotate_dataset(small_dataset, model, label_field="round_trip", progress=False)
    assert labels_of(small_dataset, "round_trip") == labels_of(small_dataset, "by_aa")


def test_a_failing_image_is_an_error_apply_model_reports():
    from tests.fakes import FakeDetector

    bad = FakeDetector(lambda ctx, img: [aa.rectangle(7, [1, 1, 5, 5], score=0.5)])
    model = as_model(bad)
    with pytest.raises(aa.AutoAnnotateError, match="returned label id 7, which its spec does not have"):
        model.predict(np.zeros((20, 20, 3), np.uint8))


def test_the_label_studio_backend_serves_a_zoo_model_named_in_the_environment(zoo, monkeypatch):
    pytest.importorskip("fastapi")
    import base64
    import io

    from fastapi.testclient import TestClient

    from autoannotate.label_studio.app import Settings, create_app

    monkeypatch.setenv("AUTOANNOTATE_FUNCTION", "fiftyone_zoo")
    monkeypatch.setenv("AUTOANNOTATE_PARAMS", "name=aa-toy-boxes")
    monkeypatch.setenv("AUTOANNOTATE_INTERACTIVE", "none")
    monkeypatch.setenv("AUTOANNOTATE_TRACKER", "none")
    client = TestClient(create_app(Settings.from_env()))
    assert client.get("/health").json()["detection"] == "fiftyone-zoo:aa-toy-boxes"
    img = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, "PNG")
    task = {"id": 1, "data": {"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}
    config = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
</View>"""
    r = client.post("/predict", json={"tasks": [task], "label_config": config})
    assert r.status_code == 200, r.text
    got = sorted(
        (
            g["value"]["rectanglelabels"][0],
            round(g["score"], 6),
            [round(g["value"][k], 6) for k in ("x", "y", "width", "height")],
        )
        for g in r.json()["results"][0]["result"]
    )
    expected = sorted(
        (d.label.title(), round(d.confidence, 6), [round(v * 100, 6) for v in d.bounding_box])
        for d in toy().predict(img).detections
    )
    assert got == expected and len(got) == 2


def test_keypoints_become_a_skeleton_of_the_model_keypoint_names(small_dataset):
    model = toy("keypoints")
    model.skeleton = fo.KeypointSkeleton(labels=["nose", "ear", "tail"], edges=[[0, 1], [1, 2]])
    fn = from_model(model, label_type="skeleton")
    assert [k.name for k in fn.spec.labels[0].sublabels] == ["nose", "ear", "tail"]
    small_dataset.apply_model(model, label_field="by_fiftyone")
    annotate_dataset(small_dataset, fn, label_field="by_aa", progress=False)
    assert labels_of(small_dataset, "by_aa") == labels_of(small_dataset, "by_fiftyone")
    # a keypoint without coordinates is outside; occluded flags are read back
    kp = fo.Keypoint(
        label="cat", points=[(0.5, 0.5), (float("nan"), float("nan")), (0.1, 0.2)], confidence=[0.4, float("nan"), 0.6]
    )
    kp["occluded"] = [True, False, False]
    (shape,) = fn.shapes(fo.Keypoints(keypoints=[kp]), (60, 40))
    assert [(e.points, e.outside, e.occluded) for e in shape.elements] == [
        ((30.0, 20.0), False, True),
        ((0.0, 0.0), True, False),
        ((6.0, 8.0), False, False),
    ]
    assert shape.score == pytest.approx(0.5)
    with pytest.raises(BadFunctionError, match=r"model.skeleton.labels"):
        from_model(toy("keypoints"), label_type="skeleton")


def test_fiftyone_zoo_classes_name_the_labels_of_a_model_that_declares_none(zoo):
    fn = load_function("fiftyone_zoo", name="aa-toy-boxes", classes="dog|cat")
    assert fn.spec.label_names == ["dog", "cat"]


def test_on_a_video_dataset_an_image_model_labels_key_frames_and_a_video_model_is_refused(video_dataset):  # noqa: F811
    from tests.fakes import StillTracker

    with pytest.raises(BadFunctionError, match="'video' model"):
        annotate_dataset(video_dataset, fo_models.VideoModel(), label_field="auto", progress=False)
    report = annotate_dataset(
        video_dataset, toy(), label_field="auto", tracker=StillTracker(), key_frame_interval=5, progress=False
    )
    assert report.images_processed == 1 and not report.failures
    frames = video_dataset.first().frames
    assert sorted(d.label for d in frames[1]["auto"].detections) == ["cat", "dog"]
    assert all(len(frames[n]["auto"].detections) == 2 for n in frames)


def test_as_model_builds_an_open_vocabulary_function_to_find_its_classes(small_dataset, tmp_path, monkeypatch):
    from tests.functions.test_open_vocab import save_tiny

    save_tiny("owlv2", tmp_path / "models" / "owlv2-base")
    monkeypatch.setenv("AUTOANNOTATE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("AUTOANNOTATE_OFFLINE", "1")
    model = as_model("owlv2", classes="forklift, pallet_jack", conf_threshold=0.3)
    assert model.classes == ["forklift", "pallet_jack"]
    # the same batches both ways: a torch model's scores move in the last digits with the batch's size
    small_dataset.apply_model(model, label_field="by_fo", batch_size=3)
    annotate_dataset(
        small_dataset,
        "owlv2",
        classes="forklift, pallet_jack",
        conf_threshold=0.3,
        label_field="by_aa",
        batch_size=3,
        progress=False,
    )
    got = labels_of(small_dataset, "by_fo")
    assert got == labels_of(small_dataset, "by_aa") and sum(len(v) for v in got.values()) > 0
