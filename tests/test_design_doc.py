"""docs/DESIGN.md is the contract, so what it names must exist: every file and folder path,
every dotted `resnette.` name (module, then attribute), every callback event (and the doc
lists every event the Learner fires), every callback class."""
from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "resnette"
DOC = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
CODE = re.findall(r"`([^`\n]+)`", DOC) + re.findall(r"^    .*$", DOC, re.M)   # inline + blocks
TOP = ("resnette/", "tests/", "benchmarks/", "docs/", "examples/", ".ci/")


def named_paths() -> set[str]:
    """`train/learner.py`, `run/`, `display.py`, `tests/test_layout.py`: relative to the repo
    when it starts with a top-level folder, else to the package. Paths inside a run folder
    or the cache (`plots/`, `decoded/`) are not the repository's and are left out."""
    found = set()
    for text in CODE:
        found |= set(re.findall(r"(?<![\w./<>-])((?:\.ci/)?[A-Za-z_][\w-]*(?:/[\w.-]+)*"
                                r"(?:\.py|\.md|/))(?![\w/])", text))
    ours = {p.name for p in PACKAGE.iterdir()} | {t.rstrip("/") for t in TOP}
    return {p for p in found if p.split("/")[0] in ours}


def where(path: str) -> Path:
    return ROOT / path if path.startswith(TOP) else PACKAGE / path


def dotted_names() -> set[str]:
    return {m for text in CODE for m in re.findall(r"\bresnette(?:\.[A-Za-z_]\w*)+", text)}


def resolve(name: str) -> bool:
    """The longest importable module prefix of `name`, then its attributes one by one."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:   # a parent that is a module, not a package
            continue
        obj = importlib.import_module(module)
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end > 0 else None]


def test_every_path_the_doc_names_exists():
    paths = named_paths()
    assert len(paths) > 20   # the doc names the layout; the pattern finds it
    assert sorted(p for p in paths if not where(p).exists()) == []


def test_every_dotted_name_the_doc_names_exists():
    names = dotted_names()
    assert len(names) > 10
    assert sorted(n for n in names if not resolve(n)) == []


def test_the_callback_events_are_the_learners_and_all_of_them():
    from resnette.train.callbacks import EVENTS
    listed = set(re.findall(r"`((?:before|after)_[a-z_]+)`", section("Callback events")))
    named_anywhere = set(re.findall(r"\b((?:before|after)_[a-z]+(?:_[a-z]+)?)\b", DOC))
    assert listed == set(EVENTS)
    assert sorted(named_anywhere - set(EVENTS) - {"after_create"}) == []


def test_every_callback_class_the_doc_names_is_defined():
    classes = set(re.findall(r"`([A-Z]\w+)(?:\([^`]*\))?`", section("Callback events")))
    assert classes   # the section names the callbacks
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    assert sorted(c for c in classes if not re.search(rf"^class {c}\b", source, re.M)) == []


@pytest.mark.parametrize("path", ["train/distributed.py", "resnette/train/nothing.py"])
def test_a_path_that_does_not_exist_is_caught(path):
    assert not where(path).exists()
