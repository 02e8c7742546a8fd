"""The package's import graph: no cycles, no private names imported across modules.

Every module under ``shared/autoannotate`` is parsed with :mod:`ast`; every import counts, at
module level or inside a function (and under ``if TYPE_CHECKING:``), relative (``from .x import
y``) or absolute (``autoannotate.x``). ``from pkg import name`` counts as importing the submodule
``pkg.name`` when there is one, else ``pkg`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import autoannotate

ROOT = Path(autoannotate.__file__).resolve().parent
PACKAGE = "autoannotate"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def resolve(importer: str, is_package: bool, module: str | None, level: int) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """``(imported module, names imported from it, line)`` for every import of the package."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    out.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, is_package, node.module, node.level)
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            plain = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    out.append((sub, [], node.lineno))  # `from pkg import submodule`
                else:
                    plain.append(alias.name)
            if plain:
                out.append((target, plain, node.lineno))
    return out


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between the package's modules, and every private name imported across modules."""
    modules = all_modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for name, path in modules.items():
        for target, names, line in imports_of(name, path, modules):
            while target not in modules and "." in target:  # `import autoannotate.x.y` of a non-module
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                edges[name].add(target)
            for n in names:
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__")):
                    private.append(f"{path.relative_to(ROOT.parent)}:{line} imports {n} from {target}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a list of modules, first repeated at the end) per strongly connected component
    with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return [_one_cycle(c, edges) for c in components]


def _one_cycle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first search)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return list(reversed(path)) + [start]
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    return component


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    edges, _ = graph()
    assert "autoannotate.errors" in edges["autoannotate.mapping"]  # module level, relative
    assert "autoannotate.cli.label_studio" in edges["autoannotate.cli"]  # inside a function
    assert "autoannotate.label_studio.app" in edges["autoannotate.label_studio"]  # `from . import app`
    assert "autoannotate.label_studio.video" in edges["autoannotate.label_studio.backend"]
    assert "autoannotate.label_studio.backend" not in edges["autoannotate.label_studio.video"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph()[0])
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_private_names_imported_across_modules():
    private = graph()[1]
    assert not private, "private names imported from other modules:\n" + "\n".join(private)


def test_private_names_and_cycles_are_found_in_sources(tmp_path):
    """The checks themselves, on a made-up pair of modules importing each other."""
    (tmp_path / "backend.py").write_text("from .video import track\nfrom . import video\n")
    (tmp_path / "video.py").write_text("def f():\n    from .backend import BadRequest, _failure\n")
    modules = {
        "autoannotate.ls": tmp_path,
        "autoannotate.ls.backend": tmp_path / "backend.py",
        "autoannotate.ls.video": tmp_path / "video.py",
    }
    found = imports_of("autoannotate.ls.video", tmp_path / "video.py", modules)
    assert found == [("autoannotate.ls.backend", ["BadRequest", "_failure"], 2)]
    assert imports_of("autoannotate.ls.backend", tmp_path / "backend.py", modules) == [
        ("autoannotate.ls.video", ["track"], 1),
        ("autoannotate.ls.video", [], 2),
    ]
    assert resolve("autoannotate.ls.video", False, "errors", 2) == "autoannotate.errors"
    assert resolve("autoannotate.ls", True, "app", 1) == "autoannotate.ls.app"
