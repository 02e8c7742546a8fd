"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import PIL.Image

README = Path(__file__).resolve().parents[2] / "README.md"


def test_custom_function_example_runs(tmp_path, monkeypatch, capsys):
    block = re.search(r"```python\n(import numpy as np\nimport autoannotate as aa.*?)```", README.read_text(), re.S)
    assert block, "the README's custom function example is missing"
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[10:20, 5:25] = (230, 20, 20)
    PIL.Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    PIL.Image.fromarray(arr).save(tmp_path / "b.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "images processed:   2" in out and "('rectangle', 0," in out


def test_the_field_naming_the_readme_states_is_the_products():
    """The README's examples of where each kind of label goes are what a run plans."""
    import autoannotate as aa
    from autoannotate.fiftyone.plan import make_plan, parse_classes

    text = " ".join(README.read_text().split())
    coco = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light")
    coco += ("fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog")
    spec = aa.DetectionFunctionSpec(labels=tuple(aa.label_spec(n, i, type="rectangle") for i, n in enumerate(coco)))
    stated = [
        ('`classes="person:polygon, car:bbox"`', {"polylines": "auto", "detections": "auto_detections"}),
        (
            '`"car:bbox, person:polygon"` both store the polygons in `label_field` and the boxes in '
            "`<label_field>_detections`",
            {"polylines": "auto", "detections": "auto_detections"},
        ),
        (
            '`"car:bbox, dog:polygon"` stores the boxes in `label_field` and the polygons in `<label_field>_polylines`',
            {"detections": "auto", "polylines": "auto_polylines"},
        ),
    ]
    for sentence, fields in stated:
        assert sentence in text, f"the README no longer says {sentence}"
        classes = re.search(r'"([^"]+)"', sentence).group(1)
        plan = make_plan(
            spec, label_field="auto", classes=parse_classes(classes), label_map=None, dataset_classes=None, review=None
        )
        assert plan.fields == fields, (classes, plan.fields)


def test_the_readme_says_how_to_open_the_app_on_a_dataset():
    text = README.read_text()
    assert "### Open the App on a dataset" in text and "fiftyone app launch my-photos" in text
    assert "fo.launch_app(" in text and "Browse operations" in text
