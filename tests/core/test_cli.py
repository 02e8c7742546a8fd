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
    code = main(["annotate", str(d), "--function-file", str(fn), "-p", "score=float:0.8",
                 "--conf-threshold", "0.5", "--output", str(out), "--overlays", str(tmp_path / "ov"), "--no-progress"])
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


def test_functions_lists_predefined_functions(capsys):
    assert main(["functions"]) == 0
    text = capsys.readouterr().out
    for name in ("yolox", "torchvision_detection", "torchvision_instance_segmentation",
                 "torchvision_keypoint_detection", "torchvision_classification", "sam", "grabcut"):
        assert f"\n{name}\n" in "\n" + text
    assert "model_name: str" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--function", "nope"], "not a predefined function"),
        (["-p", "score=float:high"], "not a valid float"),
        (["--conf-threshold", "2"], "conf_threshold must be in [0, 1]"),
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


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "autoannotate.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "annotate" in r.stdout
