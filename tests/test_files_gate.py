"""The file gate (resnette/files/) is the only way to the file system, and what it promises.

The scan: every module of the package but the gate is parsed, and any call that opens, reads,
writes or deletes a file on its own (builtin `open`, `os.open`, `os.fdopen`, `Path.read_text`
and friends, `torch.load`, `json.load`, `tomllib.load`, `shutil.rmtree`, `gzip.open`,
`tarfile.open` on a path) fails the test with its file and line: a new command cannot bring
back the bugs of issue 23 by opening a file its own way.
"""
from __future__ import annotations

import ast
import io
import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from resnette import files
from resnette.utils import ResnetteError

PACKAGE = Path(__file__).resolve().parent.parent / "resnette"
GATE = PACKAGE / "files"
METHODS = {"read_text", "read_bytes", "write_text", "write_bytes"}
QUALIFIED = {("os", "open"), ("os", "fdopen"), ("io", "open"), ("torch", "load"),
             ("json", "load"), ("tomllib", "load"), ("shutil", "rmtree"), ("gzip", "open"),
             ("tarfile", "open")}


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def violations(source: str) -> list[tuple[int, str]]:
    """The calls in `source` that go to the file system around the gate."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "open":
            found.append((node.lineno, "open("))
        elif isinstance(f, ast.Attribute):
            if f.attr in METHODS and _name(f.value) != "files":   # the gate's own functions
                found.append((node.lineno, f".{f.attr}("))
            elif (_name(f.value), f.attr) in QUALIFIED:
                if f.attr == "open" and _name(f.value) == "tarfile" and any(
                        k.arg == "fileobj" for k in node.keywords):
                    continue   # a file object the gate opened
                found.append((node.lineno, f"{_name(f.value)}.{f.attr}("))
    return found


def test_the_scan_finds_each_way_around_the_gate():
    bad = ("open('x')\nos.open(p, 0)\nos.fdopen(3)\nPath('x').read_text()\np.write_bytes(b'')\n"
           "torch.load(p)\njson.load(f)\ntomllib.load(f)\nshutil.rmtree(p)\ngzip.open(p)\n"
           "tarfile.open(p)\np.read_bytes()\nq.write_text('')\n")
    assert len(violations(bad)) == 13
    fine = ("json.loads(s)\ntomllib.loads(s)\ntarfile.open(fileobj=f)\nImage.open(f)\n"
            "files.read_text(p, 'x')\n")
    assert violations(fine) == []


def test_no_module_outside_the_gate_touches_files_on_its_own():
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if GATE not in p.parents]
    assert len(modules) > 50
    found = [f"{p.relative_to(PACKAGE.parent)}:{line}: {what}"
             for p in modules for line, what in violations(p.read_text(encoding="utf-8"))]
    assert found == [], "use resnette.files instead:\n" + "\n".join(found)


# ------------------------------------------------------------------ torch's loader, any bytes

def _saved() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"format": "x", "w": torch.arange(12.0).reshape(3, 4), "n": [1, 2.5, "a"],
                "p": {"e": 3}}, buf)
    return buf.getvalue()


GOOD = _saved()
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
# What a mutated file is made of: random bytes, a cut, flipped bytes, a hole, a zip of junk.
BYTES = st.one_of(
    st.binary(max_size=400),
    st.integers(0, len(GOOD)).map(lambda n: GOOD[:n]),
    st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1,
             max_size=8).map(lambda flips: bytes(_flip(GOOD, flips))),
    st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 64)).map(
        lambda cut: GOOD[:cut[0]] + GOOD[cut[0] + cut[1]:]),
    st.dictionaries(st.sampled_from(["archive/data.pkl", "archive/version", "archive/data/0",
                                     "archive/byteorder", "x/data.pkl", "data.pkl"]),
                    st.binary(max_size=64), max_size=4).map(lambda d: _zip(d)))


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for i, v in flips:
        out[i] = v
    return out


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@settings(max_examples=20000 if LONG else 1500, deadline=None, derandomize=not LONG,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=BYTES)
def test_torch_loader_given_any_bytes_is_a_result_or_one_line(tmp_path_factory, data):
    """On 6000 such files torch.load itself raised RuntimeError, UnpicklingError,
    UnicodeDecodeError, IndexError, KeyError, EOFError, ValueError and struct.error (torch
    2.x): the gate turns every one of them into one line naming the file."""
    path = tmp_path_factory.getbasetemp() / "any.pt"
    path.write_bytes(data)
    try:
        files.load_torch(path, "checkpoint")
    except ResnetteError as e:
        assert "\n" not in str(e) and str(path) in str(e)


def test_torch_loader_refuses_pickled_code_and_a_failed_crc(tmp_path):
    import torch

    class Code:
        def __reduce__(self):
            return (os.system, ("echo never",))

    torch.save({"x": Code()}, tmp_path / "code.pt")
    with pytest.raises(ResnetteError, match="could run code"):
        files.load_torch(tmp_path / "code.pt", "checkpoint")
    with zipfile.ZipFile(io.BytesIO(GOOD)) as z:
        stored = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    start = GOOD.index(b"\x00\x00\x80\x3f")   # a float 1.0 of the tensor: changed, CRC kept
    bad = GOOD[:start] + b"\x00\x00\x00\x40" + GOOD[start + 4:]
    assert stored.file_size == 48
    (tmp_path / "flip.pt").write_bytes(bad)
    with pytest.raises(ResnetteError, match="CRC"):
        files.load_torch(tmp_path / "flip.pt", "checkpoint")
    (tmp_path / "good.pt").write_bytes(GOOD)
    assert files.load_torch(tmp_path / "good.pt", "checkpoint")["w"][2, 3].item() == 11.0
