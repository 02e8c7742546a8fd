"""Packages "installed" for a test: a module plus a ``*.dist-info`` folder (METADATA and
entry_points.txt) in a folder put on ``sys.path`` (and on ``PYTHONPATH`` for subprocesses), which
is all ``importlib.metadata`` needs to find their ``autoannotate.functions`` entry points.

The example function is the one of ``docs/functions.md``, read from the page, so the page's
example is what the tests run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_MODULE = "bright_spots_example"


def docs_example() -> str:
    """The Python block of the "Example" section of docs/functions.md."""
    text = (REPO / "docs" / "functions.md").read_text()
    section = text.split("### Example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/functions.md has no python example under '### Example'"
    return match.group(1)


def write_package(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution ``dist`` with ``modules`` (name -> source) and ``autoannotate.functions``
    ``entry_points`` (name -> "module:attr") under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[autoannotate.functions]\n{lines}")


def install_examples(root: Path) -> Path:
    """Under ``root``: the docs' example (``bright_spots``, also registered as ``json`` to show a
    registered name wins over a module of that name, and as ``yolox`` to show a predefined name
    cannot be taken), and a broken package whose entry point cannot be imported."""
    write_package(
        root,
        "bright-spots",
        {
            "bright_spots": f"{EXAMPLE_MODULE}:create",
            "json": f"{EXAMPLE_MODULE}:create",
            "yolox": f"{EXAMPLE_MODULE}:create",
        },
        {EXAMPLE_MODULE: docs_example()},
    )
    write_package(root, "broken-functions", {"broken_fn": "no_such_module_for_autoannotate:create"}, {})
    return root


def pythonpath(root: Path) -> str:
    """``PYTHONPATH`` for a subprocess that sees the packages under ``root``."""
    return os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """The examples of :func:`install_examples`, on ``sys.path`` for one test (the registry reads
    entry points again whenever ``sys.path`` changes)."""
    root = install_examples(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    return root
