"""The package's shape (docs/DESIGN.md): imports point one way through the layers, no module
imports one above it, no import cycle, no file over 300 lines, nothing that serves tests."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnette"

# lowest first; a module may import its own layer or any below it, never one above
LAYERS = [
    # leaves: plots draws what it is handed; runfiles names a run's files (train/ writes them)
    # files: the one gate to the file system (tests/test_files_gate.py)
    ["resnette.utils", "resnette.files", "resnette.display", "resnette.notebook", "resnette.runfiles",
     "resnette.plots", "resnette.plotfonts", "resnette.cachedir", "resnette.compiled",
     "resnette.measures"],
    ["resnette.data"],
    ["resnette.models"],
    ["resnette.train"],
    ["resnette.book"],   # the book facade: above train, imported by nothing
    ["resnette.run"],
    ["resnette.commands"],
    ["resnette.cli", "resnette.__main__", "resnette"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    """The layer of the longest listed prefix of `name`."""
    best = max((p for group in LAYERS for p in group if name == p or name.startswith(p + ".")), key=len)
    return next(i for i, group in enumerate(LAYERS) if best in group)


def imports(path: Path) -> set[str]:
    """resnette modules imported anywhere in the file (also inside functions)."""
    tree, name = ast.parse(path.read_text()), module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m.split(".")[0] == "resnette" and m != name}


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(f) for f in FILES}


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{module_name(f)} -> {m}" for f in FILES for m in imports(f)
              if m != "resnette" and layer(m) > layer(module_name(f))]
    assert upward == []


def test_there_is_no_import_cycle():
    graph = {module_name(f): {m for m in imports(f) if m in MODULES and m != "resnette"} for f in FILES}
    # a package's __init__ importing its own modules is how Python packages work, not a cycle
    graph = {k: {m for m in v if not m.startswith(k + ".")} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("path", FILES,
                         ids=lambda f: str(f.relative_to(PACKAGE)))
def test_every_file_fits_in_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300


def test_nothing_in_the_package_serves_tests():
    assert not [f for f in FILES if "RESNETTE_TEST_FAULT" in f.read_text()]
