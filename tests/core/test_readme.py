"""The README's and the docs pages' examples are true: Python examples compile, import only what
exists and, where marked ``<!-- example: run -->``, run as written; every ``autoannotate ...``
command they show names real subcommands and options."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
RUN_MARK = "<!-- example: run -->"


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def code_blocks(page: Path, language: str) -> list[tuple[int, str, bool]]:
    """``(line, code, marked to run)`` of each fenced block of ``language`` on ``page``."""
    blocks, lines = [], page.read_text().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{language}":
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            marked = start >= 2 and lines[start - 2].strip() == RUN_MARK
            blocks.append((start, "\n".join(body) + "\n", marked))
        i += 1
    return blocks


PYTHON = [(page, line, code, run) for page in PAGES for line, code, run in code_blocks(page, "python")]


def _sample_images(folder: Path) -> None:
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[10:20, 5:25] = (230, 20, 20)
    PIL.Image.fromarray(arr).save(folder / "a.jpg", quality=95)
    PIL.Image.fromarray(arr).save(folder / "b.png")


def test_the_pages_have_examples_and_some_run():
    assert {_name(p) for p, *_ in PYTHON} >= {"README.md", "docs/functions.md", "docs/fiftyone.md"}
    assert sum(run for *_, run in PYTHON) >= 3


@pytest.mark.parametrize(("page", "line", "code", "run"), PYTHON, ids=[f"{_name(p)}:{n}" for p, n, *_ in PYTHON])
def test_python_example(page, line, code, run, tmp_path, monkeypatch):
    """Each Python example parses and imports only names that exist; marked ones run (in a
    folder holding ``a.jpg`` and ``b.png``)."""
    where = f"{_name(page)}:{line}"
    tree = ast.parse(code, where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autoannotate"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                    f"{where}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("autoannotate"):
                    importlib.import_module(alias.name)
    if run:
        _sample_images(tmp_path)
        monkeypatch.chdir(tmp_path)
        exec(compile(code, where, "exec"), {"__name__": "example"})


def test_custom_function_example_runs(tmp_path, monkeypatch, capsys):
    found = [
        (p, code)
        for p, _, code, _ in PYTHON
        if code.startswith("import numpy as np\nimport autoannotate as aa\n\nclass RedThings")
    ]
    assert len(found) == 1, "the custom function example (RedThings) is missing"
    _sample_images(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(found[0][1], _name(found[0][0]), "exec"), {})
    out = capsys.readouterr().out
    assert "images processed:   2" in out and "('rectangle', 0," in out


# -- commands -----------------------------------------------------------------------------


def _commands(page: Path) -> list[tuple[str, str]]:
    """``(where, command line)`` for every ``autoannotate ...`` in a bash block or a code span."""
    found = []
    for line, code, _ in code_blocks(page, "bash"):
        joined = re.sub(r"\\\n\s*", " ", code)
        for k, text in enumerate(joined.split("\n")):
            text = re.sub(r"^\S+=\S+\s+", "", text.strip())  # VAR=value autoannotate ...
            if text.startswith("autoannotate "):
                found.append((f"{_name(page)}:{line}+{k}", text.split("#")[0]))
    prose = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for span in re.findall(r"`(autoannotate [a-z][^`]*)`", " ".join(prose.split())):
        found.append((f"{_name(page)} `{span}`", span))
    return found


COMMANDS = [c for page in PAGES for c in _commands(page)]


def _options(parser) -> tuple[set[str], dict]:
    import argparse

    opts, subs = set(), {}
    for action in parser._actions:
        opts.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            subs.update(action.choices)
    return opts, subs


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_names_real_subcommands_and_options(where, command):
    from autoannotate.cli import build_parser

    parser = build_parser()
    words = command.split()[1:]
    path = ["autoannotate"]
    opts, subs = _options(parser)
    for w in words:
        if w in subs:
            parser = subs[w]
            path.append(w)
            opts, subs = _options(parser)
    assert not subs or "..." in words, f"{where}: `{' '.join(path)}` needs one of {sorted(subs)}: {command!r}"
    for raw in re.findall(r"--[\[\]a-z0-9-]+", command):
        raw = raw.rstrip("]").split("=")[0]
        names = {raw.replace("[no-]", ""), raw.replace("[no-]", "no-")} if "[no-]" in raw else {raw}
        for name in names:
            assert name in opts, f"{where}: `{' '.join(path)}` has no option {name} (it has {sorted(opts)})"


# -- text the product's behaviour is checked against ---------------------------------------------


def test_the_field_naming_the_docs_state_is_the_products():
    """docs/fiftyone.md's examples of where each kind of label goes are what a run plans."""
    import autoannotate as aa
    from autoannotate.fiftyone.plan import make_plan, parse_classes

    text = " ".join((ROOT / "docs" / "fiftyone.md").read_text().split())
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
        assert sentence in text, f"docs/fiftyone.md no longer says {sentence}"
        classes = re.search(r'"([^"]+)"', sentence).group(1)
        plan = make_plan(
            spec, label_field="auto", classes=parse_classes(classes), label_map=None, dataset_classes=None, review=None
        )
        assert plan.fields == fields, (classes, plan.fields)


def test_the_docs_say_how_to_open_the_app_on_a_dataset():
    page = (ROOT / "docs" / "fiftyone.md").read_text()
    assert "## Open the App on a dataset" in page and "fiftyone app launch my-photos" in page
    assert "fo.launch_app(" in page and "Browse operations" in page
    readme = README.read_text()
    assert "fiftyone app launch my-photos" in readme and "Browse operations" in readme


def test_the_readme_is_a_newcomers_page():
    text = README.read_text()
    assert len(text.split("\n")) <= 300
    for needed in ("make demo", "make test", "## Install", "docs/architecture.md", "docs/label-studio.md"):
        assert needed in text
    arch = (ROOT / "docs" / "architecture.md").read_text()
    for needed in ("interface.py", "run.py", "driver.py", "functions/<name>.py", "autoannotate.functions"):
        assert needed in arch, f"docs/architecture.md does not name {needed}"
    for entry in ("autoannotate.cli:main", "plugins/autoannotate/__init__.py", "label_studio/app.py", "project.py"):
        assert entry in arch, f"docs/architecture.md does not name the entry point {entry}"
    for page in PAGES:
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not link.startswith("http"):
                assert (page.parent / link).exists(), f"{_name(page)}: broken link {link}"


def test_the_names_the_pages_give_exist():
    """Every dotted ``autoannotate.x.y`` and every source path (``driver.py``, ``fiftyone/annotate.py``,
    ``tests/...``, ``bench/...``) a page names is in the code."""
    src = ROOT / "shared" / "autoannotate"
    folders = (ROOT, ROOT / "shared", src, src / "functions", src / "fiftyone", src / "label_studio", src / "cli")
    folders += (ROOT / "backends" / "label_studio", ROOT / "plugins" / "autoannotate", *(ROOT / "tests").iterdir())
    missing = []
    for page in PAGES:
        text = page.read_text()
        for dotted in set(re.findall(r"`(autoannotate(?:\.[A-Za-z_]\w*)+)", text)):
            parts = dotted.split(".")
            for i in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                break
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    missing.append(f"{_name(page)}: {dotted}")
                    break
                obj = getattr(obj, attr)
        for path in set(re.findall(r"(?<![\w/.-])((?:[a-z_]+/)*[a-z_0-9]+\.py)\b", text)):
            if path not in {"bright_spots_example.py", "my_model.py"} and not any((f / path).exists() for f in folders):
                missing.append(f"{_name(page)}: {path}")
    assert not missing, missing
