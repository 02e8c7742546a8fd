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
