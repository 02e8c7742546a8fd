"""The autoannotate command: functions listing, annotate to COCO, clear errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import PIL.Image
import pytest

from autoannotate.cli import main

FUNCTION_FILE = textwrap.dedent(
    """
    import autoannotate as aa
    import numpy as np

    class Fn:
        spec = aa.DetectionFunctionSpec(labels=[
            aa.label_spec("box", 0, type="rectangle"),
            aa.label_spec("blob", 1, type="mask"),
            aa.label_spec("scene", 2, type="tag"),
        ])

        def __init__(self, score):
            self.score = score

        def detect(self, context, image):
            w, h = image.size
            m = np.zeros((h, w), bool)
            m[2:6, 3:9] = True
            return [
                aa.rectangle(0, [1, 2, 11, 7], score=self.score),
                aa.rectangle(0, [0, 0, 2, 2], score=0.1),
                aa.mask(1, m, score=0.7),
                aa.tag(2, score=0.6),
            ]

    def create(score: float = 0.9):
        return Fn(score)
    """
)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    PIL.Image.new("RGB", (20, 10), "red").save(d / "a.png")
    PIL.Image.new("RGB", (20, 10), "blue").save(d / "sub" / "b.jpg")
    PIL.Image.new("RGB", (20, 10), "green").save(d / "sub" / "a.png")  # same name as the top-level a.png
    (d / "broken.jpg").write_text("nope")
    (d / "readme.txt").write_text("ignored")
    fn = tmp_path / "fn.py"
    fn.write_text(FUNCTION_FILE)
    return d, fn


def test_annotate_writes_coco_with_scores_and_categories(folder, tmp_path, capsys):
    d, fn = folder
    out = tmp_path / "out" / "coco.json"
    code = main(
        [
            "annotate",
            str(d),
            "--function-file",
            str(fn),
            "-p",
            "score=float:0.8",
            "--conf-threshold",
            "0.5",
            "--output",
            str(out),
            "--overlays",
            str(tmp_path / "ov"),
            "--no-progress",
        ]
    )
    assert code == 1  # completed, with one failed image
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["box", "blob", "scene"]
    assert sorted(i["file_name"] for i in coco["images"]) == ["a.png", "sub/a.png", "sub/b.jpg"]
    boxes = [a for a in coco["annotations"] if a["category_id"] == 1]
    assert len(boxes) == 3 and all(a["score"] == 0.8 and a["bbox"] == [1, 2, 10, 5] for a in boxes)
    masks = [a for a in coco["annotations"] if a["category_id"] == 2]
    assert masks[0]["area"] == 24 and masks[0]["segmentation"]["size"] == [10, 20]
    assert coco["images"][0]["tags"] == [{"category_id": 3, "score": 0.6}]
    text = capsys.readouterr().out
    assert "images attempted:   4" in text and "images failed:      1" in text and "broken.jpg" in text
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["a.png", "sub__a.png", "sub__b.png"]


def test_classes_keep_only_the_listed_labels_of_a_closed_vocabulary_function(folder, tmp_path, capsys):
    d, fn = folder
    out = tmp_path / "coco.json"
    args = ["annotate", str(d), "--function-file", str(fn), "--classes", "blob", "-o", str(out), "--no-progress"]
    assert main(args) == 1  # the broken image
    coco = json.loads(out.read_text())
    assert [c["name"] for c in coco["categories"]] == ["blob"]
    assert coco["annotations"] and {a["category_id"] for a in coco["annotations"]} == {1}
    assert all("segmentation" in a for a in coco["annotations"])  # the masks, not the boxes
    assert all(not i.get("tags") for i in coco["images"])


def test_annotate_a_folder_of_symbolic_links_with_a_label_map(folder, tmp_path, capsys):
    d, fn = folder
    links = tmp_path / "links"
    links.mkdir()
    for name in ("a.png", "sub/b.jpg"):
        (links / name.replace("/", "_")).symlink_to(d / name)
    out = tmp_path / "links.json"
    code = main(
        [
            "annotate",
            str(links),
            "--function-file",
            str(fn),
            "--output",
            str(out),
            "--overlays",
            str(tmp_path / "ov2"),
            "--label-map",
            "box=crate",
            "--no-progress",
        ]
    )
    assert code == 0
    coco = json.loads(out.read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == ["a.png", "sub_b.jpg"]  # the names in the folder
    assert [c["name"] for c in coco["categories"]] == ["crate", "blob", "scene"]
    assert sorted(p.name for p in (tmp_path / "ov2").iterdir()) == ["a.png", "sub_b.png"]
    assert (
        main(
            [
                "annotate",
                str(links),
                "--function-file",
                str(fn),
                "--output",
                str(out),
                "--label-map",
                "nope=crate",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "--label-map names labels the function does not have: ['nope']" in capsys.readouterr().err


def test_functions_lists_predefined_functions(capsys):
    assert main(["functions"]) == 0
    text = capsys.readouterr().out
    for name in (
        "yolox",
        "torchvision_detection",
        "torchvision_instance_segmentation",
        "torchvision_keypoint_detection",
        "torchvision_classification",
        "sam",
        "grabcut",
    ):
        assert f"\n{name}\n" in "\n" + text
    assert "model_name: str" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--function", "nope"], "not a predefined function"),
        (["-p", "score=float:high"], "not a valid float"),
        (["--conf-threshold", "2"], "conf_threshold must be in [0, 1]"),
        (["--classes", "blob:mask,blob:polygon"], "names 'blob' twice"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(folder, tmp_path, capsys, args, message):
    d, fn = folder
    base = ["annotate", str(d), "--output", str(tmp_path / "o.json"), "--no-progress"]
    if "--function" not in args:
        base += ["--function-file", str(fn)]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


def test_missing_or_empty_folder(tmp_path, capsys):
    assert main(["annotate", str(tmp_path / "none"), "-o", str(tmp_path / "o.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["annotate", str(tmp_path), "-o", str(tmp_path / "o.json")]) == 2
    assert "no image files" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["autoannotate.cli", "autoannotate"])
def test_console_script_runs(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "annotate" in r.stdout


# -- environment variables: read when a command runs, never while the parser is built --------


def run_cli(*args, env=None):
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOANNOTATE_", "LABEL_STUDIO_"))}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "autoannotate.cli", *args], capture_output=True, text=True, env=full, timeout=120
    )


def test_a_malformed_variable_does_not_break_other_commands():
    r = run_cli("functions", env={"AUTOANNOTATE_PORT": "abc", "AUTOANNOTATE_BATCH_SIZE": "many"})
    assert r.returncode == 0, r.stderr
    assert "yolox" in r.stdout and "Traceback" not in r.stderr
    r = run_cli("label-studio", "serve", "--help", env={"AUTOANNOTATE_PORT": "abc"})
    assert r.returncode == 0 and "AUTOANNOTATE_PORT" in r.stdout


def test_a_malformed_variable_is_a_clear_error_for_the_command_that_uses_it():
    pytest.importorskip("fastapi")
    r = run_cli("label-studio", "serve", env={"AUTOANNOTATE_PORT": "abc"})
    assert r.returncode == 2
    assert r.stderr.strip() == "error: AUTOANNOTATE_PORT='abc' is not a valid int" and "Traceback" not in r.stderr
    r = run_cli(
        "label-studio",
        "annotate",
        "--project",
        "1",
        "--url",
        "http://x",
        "--api-key",
        "k",
        env={"AUTOANNOTATE_BATCH_SIZE": "0"},
    )
    assert r.returncode == 2 and "AUTOANNOTATE_BATCH_SIZE='0' must be >= 1" in r.stderr


def test_parsers_never_read_the_environment(monkeypatch):
    import os

    from autoannotate.cli import build_parser

    reads = []

    class Spy(dict):
        def get(self, key, default=None):
            reads.append(key)
            return super().get(key, default)

        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    monkeypatch.setattr(os, "environ", Spy(os.environ))
    build_parser()
    assert [r for r in reads if r.startswith(("AUTOANNOTATE_", "LABEL_STUDIO_"))] == []


@pytest.fixture
def fake_annotate_project(monkeypatch):
    """Capture what `label-studio annotate` passes to annotate_project (no server, no model)."""
    pytest.importorskip("label_studio_sdk")
    import autoannotate.label_studio.project as project
    import autoannotate.label_studio.service  # noqa: F401 - imported before the patch below, which it would keep
    import autoannotate.loading as loading

    calls = []

    class Report:
        success = True

        def summary(self):
            return "done"

    def fake(url, api_key, project_id, function, **kwargs):
        calls.append({"url": url, "api_key": api_key, "project_id": project_id, "function": function, **kwargs})
        return Report()

    monkeypatch.setattr(project, "annotate_project", fake)
    monkeypatch.setattr(loading, "load_function", lambda name, kind=None, /, **params: (name, params))
    for var in (
        "LABEL_STUDIO_URL",
        "LABEL_STUDIO_API_KEY",
        "AUTOANNOTATE_BATCH_SIZE",
        "AUTOANNOTATE_NUM_WORKERS",
        "AUTOANNOTATE_FUNCTION",
        "AUTOANNOTATE_PARAMS",
        "AUTOANNOTATE_CONF_THRESHOLD",
    ):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_label_studio_annotate_defaults_come_from_settings(fake_annotate_project, monkeypatch, capsys):
    from autoannotate.settings import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, DEFAULT_WRITE_EVERY

    assert main(["label-studio", "annotate", "--project", "4"]) == 2
    assert "--url is required (or set LABEL_STUDIO_URL)" in capsys.readouterr().err
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://ls:8080")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret")
    assert main(["label-studio", "annotate", "--project", "4", "--no-progress"]) == 0
    (call,) = fake_annotate_project
    assert call["url"] == "http://ls:8080" and call["api_key"] == "secret" and call["project_id"] == 4
    assert call["function"] == ("yolox", {})
    assert (call["batch_size"], call["num_workers"], call["write_every"]) == (
        DEFAULT_BATCH_SIZE,
        DEFAULT_NUM_WORKERS,
        DEFAULT_WRITE_EVERY,
    )
    assert call["progress"] is False and call["conf_threshold"] is None and "upload_every" not in call
    monkeypatch.setenv("AUTOANNOTATE_BATCH_SIZE", "3")
    monkeypatch.setenv("AUTOANNOTATE_NUM_WORKERS", "1")
    monkeypatch.setenv("AUTOANNOTATE_FUNCTION", "torchvision_detection")
    monkeypatch.setenv("AUTOANNOTATE_PARAMS", "model_name=str:x")
    main(["label-studio", "annotate", "--project", "4"])
    assert (fake_annotate_project[-1]["batch_size"], fake_annotate_project[-1]["num_workers"]) == (3, 1)
    assert fake_annotate_project[-1]["function"] == ("torchvision_detection", {"model_name": "x"})


def test_label_studio_annotate_flags_override_settings(fake_annotate_project, monkeypatch, capsys):
    monkeypatch.setenv("AUTOANNOTATE_BATCH_SIZE", "3")
    args = [
        "label-studio",
        "annotate",
        "--project",
        "2",
        "--url",
        "http://a",
        "--api-key",
        "k",
        "-f",
        "torchvision_detection",
        "--batch-size",
        "5",
        "--num-workers",
        "0",
        "--write-every",
        "7",
        "--conf-threshold",
        "0.4",
    ]
    assert main(args) == 0
    call = fake_annotate_project[-1]
    assert (call["batch_size"], call["num_workers"], call["write_every"], call["conf_threshold"]) == (5, 0, 7, 0.4)
    assert call["function"] == ("torchvision_detection", {}) and capsys.readouterr().err == ""


def test_write_every_is_checked_and_the_pre_release_upload_every_is_gone(fake_annotate_project, capsys):
    from autoannotate.cli import build_parser

    base = ["label-studio", "annotate", "--project", "2", "--url", "http://a", "--api-key", "k"]
    with pytest.raises(SystemExit):
        main(base + ["--upload-every", "9"])
    assert "unrecognized arguments: --upload-every" in capsys.readouterr().err
    assert main(base + ["--write-every", "0"]) == 2
    assert "--write-every must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["label-studio", "annotate", "--help"])
    annotate_help = capsys.readouterr().out
    assert "--write-every" in annotate_help and "--num-workers" in annotate_help
    assert "--upload-every" not in annotate_help


def test_label_studio_serve_resolves_settings_when_it_runs(monkeypatch):
    pytest.importorskip("fastapi")
    import autoannotate.label_studio.app as app

    served = []
    monkeypatch.setattr(app, "serve", lambda settings, **kw: served.append((settings, kw)))
    monkeypatch.setenv("AUTOANNOTATE_PORT", "9999")
    monkeypatch.setenv("AUTOANNOTATE_TRACKER", "none")
    monkeypatch.setenv("AUTOANNOTATE_BATCH_SIZE", "6")
    assert main(["label-studio", "serve", "--host", "127.0.0.1", "--interactive", "none", "--num-workers", "2"]) == 0
    settings, kw = served[-1]
    assert (settings.host, settings.port, settings.tracker, settings.interactive) == ("127.0.0.1", 9999, None, None)
    assert (settings.batch_size, settings.num_workers, settings.function) == (6, 2, "yolox")
    assert main(["label-studio", "serve", "--port", "1234", "-p", "model=str:yolox_s"]) == 0
    assert served[-1][0].port == 1234 and served[-1][0].params == {"model": "yolox_s"}


@pytest.mark.parametrize(
    "args, kind",
    [
        (["--function", "grabcut"], "an interactive"),
        (["--function", "sam2", "-p", "pretrained=false"], "an interactive"),
        (["--function", "opencv_tracker"], "a tracking"),
    ],
)
def test_annotate_refuses_a_function_that_is_not_a_detector(folder, tmp_path, capsys, args, kind):
    d, _ = folder
    assert main(["annotate", str(d), "--output", str(tmp_path / "o.json"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: '{args[1]}' is {kind} function, but a detection function is needed here"), err
    assert "`autoannotate functions --kind detection` lists them: " in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_label_studio_annotate_refuses_a_function_of_another_kind_naming_where_it_came_from(
    fake_annotate_project, monkeypatch, capsys, workers
):
    base = ["label-studio", "annotate", "--project", "4", "--url", "http://ls", "--api-key", "k", *workers]
    monkeypatch.setenv("AUTOANNOTATE_FUNCTION", "sam_tracker")
    assert main(base) == 2
    assert capsys.readouterr().err.startswith(
        "error: AUTOANNOTATE_FUNCTION='sam_tracker': 'sam_tracker' is a tracking function, but a detection function"
    )
    assert main([*base, "--function", "edgetam"]) == 2
    assert capsys.readouterr().err.startswith("error: --function='edgetam': 'edgetam' is an interactive function")
    assert main([*base, "--function", "yolox", "--num-workers", "-1"]) == 2
    assert capsys.readouterr().err == "error: --num-workers=-1 must be >= 0\n"
    assert fake_annotate_project == []


@pytest.mark.parametrize(
    "params, code, message",
    [
        # the QA command: box_score_thresh typed as FasterRCNN declares it (0.05: a float)
        (["box_score_thresh=0.3", "min_size=64", "max_size=64"], 0, ""),
        (["box_scor_thresh=0.3"], 2, "error: fasterrcnn_mobilenet_v3_large_320_fpn takes no option 'box_scor_thresh'"),
        (["weights_backbone=IMAGENET1K_V1"], 2, "error: weights_backbone='IMAGENET1K_V1'"),
    ],
)
def test_annotate_with_torchvision_model_options(tmp_path, capsys, params, code, message):
    """Options of the model constructor are checked and typed before any image is processed."""
    pytest.importorskip("torchvision")
    d = tmp_path / "imgs"
    d.mkdir()
    PIL.Image.new("RGB", (40, 30), "red").save(d / "a.png")
    ps = [
        x for p in ["model_name=fasterrcnn_mobilenet_v3_large_320_fpn", "pretrained=false", *params] for x in ("-p", p)
    ]
    out = tmp_path / "o.json"
    assert (
        main(["annotate", str(d), "--output", str(out), "--no-progress", "--function", "torchvision_detection", *ps])
        == code
    )
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err and "TypeError" not in err, err
    assert out.exists() == (code == 0)
    if code == 0:
        assert [im["file_name"] for im in json.loads(out.read_text())["images"]] == ["a.png"]


@pytest.mark.parametrize(
    "function, params, message",
    [
        ("torchvision_detection", ["model_name=resnet18"], "error: resnet18 is a torchvision classification model"),
        ("torchvision_classification", ["model_name=resnet18", "topk=0"], "error: topk must be >= 1"),
    ],
)
def test_annotate_refuses_a_bad_torchvision_model_or_topk_with_exit_2(
    folder, tmp_path, capsys, function, params, message
):
    pytest.importorskip("torchvision")
    d, _ = folder
    ps = [x for p in [*params, "pretrained=false"] for x in ("-p", p)]
    out = tmp_path / "o.json"
    assert main(["annotate", str(d), "--output", str(out), "--no-progress", "--function", function, *ps]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err, err
    assert not out.exists()
