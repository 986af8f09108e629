"""The hostile-name fuzzer (issue 23, item 6, second property): a class name and a run name
drawn from a hostile alphabet (control characters, `$`, `<`, quotes, newline, RTL marks, CJK,
up to 255 bytes) go through train, predict, evaluate, report, runs, cache and export, and come
out escaped: one row per item, no control character raw on the terminal, valid JSON, escaped
HTML, plots drawn; exit 0, or 2 with one `error:` line; never a traceback.

The commands run in this process (`resnette.cli.main`): torch is imported once, so an example
(a 1-epoch training of the chapter's plain net on 12 images of 32 px, then every command) costs
a few seconds. File systems refuse '/' and NUL in a name: those are not drawn. Profiles: see
test_fuzz.py (`ci`: the named examples and a few drawn ones, derandomized; `long`:
HYPOTHESIS_PROFILE=long).
"""
from __future__ import annotations

import html
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from PIL import Image

import test_fuzz  # noqa: F401  (registers and loads the Hypothesis profiles)
from resnette.cli import main
from resnette.display import term
from resnette.measures import TOP_K

FEW = max(2, settings.default.max_examples // 3)
# what no terminal may receive raw: C0 (but the newline between lines and predict's tab
# between path and classes, counted there), DEL, C1, bidi controls
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
HOSTILE = (st.sampled_from([chr(c) for c in range(1, 32)] + ["\x7f", "\x85", "\x9b"])
           | st.sampled_from(list("$<>&\"'\\` *?[]{}%;|~#!=")) | st.sampled_from(
               ["\u202e", "\u202d", "\u2066", "\u2069", "\u200f", "\u061c", "\u2028", "\u2029",
                "中", "文", "ا", "ע",
                "é", "😀", "\ufeff", "\u00a0"])
           | st.characters(codec="utf-8", exclude_characters="/\x00"))
# a name of 255 bytes, the most a file system holds: 85 three-byte characters
LONG = ("中\u202e文" * 29)[:85]


def _name(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _long(text: str) -> str:
    """`text` repeated to the most of 255 UTF-8 bytes that whole characters fill."""
    out = ""
    while len((out + text[len(out) % len(text)]).encode("utf-8", "surrogatepass")) <= 255:
        out += text[len(out) % len(text)]
    return out


NAMES = st.one_of(st.text(HOSTILE, min_size=1, max_size=12),
                  st.text(HOSTILE, min_size=1, max_size=3).map(_long))
NAMES = NAMES.map(_name).filter(lambda s: s not in ("b", ".", "..") and not s.startswith(".")
                                and "/" not in s and len(s.encode("utf-8", "surrogatepass")) <= 255
                                and _name(s) == s)


def images(root: Path, name: str) -> Path:
    """`root/{train,valid}/{name,b}/*.png`: two classes a net tells apart by brightness."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("valid", 2)):
        for label, level in ((name, 60), ("b", 190)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                px = np.clip(level + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(folder / f"{i}.png")
    return root


def shown(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run one command; check the invariants every command keeps with any name."""
    code = main(argv)
    out, err = capsys.readouterr()
    for stream in (out, err):
        assert not RAW.search(stream), (argv, stream[-2000:])
        assert "Traceback" not in stream
    assert code in (0, 2), (argv, code, err)
    assert all(line.startswith(("warning: ", "error: ")) for line in err.splitlines()), err
    if code == 2:
        assert len(err.splitlines()) == 1 + err.count("\nwarning: ") - err.startswith("warning")
    return code, out, err


def strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"{token} in JSON")
    return json.loads(text, parse_constant=refuse)


@settings(max_examples=FEW)
@given(cls=NAMES, run_name=NAMES)
@example(cls="$\\notacmd$<script>\"'&", run_name="esc\x1b[31m\nbell\x07")
@example(cls=LONG, run_name="中文\u202eexe.jpg")
def test_any_name_comes_out_escaped_in_one_row_from_every_command(
        tmp_path_factory, monkeypatch, capsys, cls, run_name):
    here = tmp_path_factory.mktemp("names")
    monkeypatch.chdir(here)
    monkeypatch.setenv("RESNETTE_HOME", str(here / "home"))
    data = images(here / cls, cls)   # the data folder is named by the class too (cache source)
    train = ["train", "--data", str(data), "--arch", "simple_cnn", "--size", "32", "--presize",
             "32", "--bs", "4", "--epochs", "1", "--seed", "1", "--device", "cpu",
             "--precision", "fp32", "--quiet"]
    code, out, err = shown(capsys, train + ["--name", run_name])
    if code == 2:   # a run name with control characters, or over 237 bytes, is refused
        assert "is not a run name" in err or "give a shorter --name" in err, err
        run_name = "r"
        code, out, err = shown(capsys, train + ["--name", run_name])
    assert code == 0, err
    run = Path("runs") / run_name
    assert out.splitlines() == [f"run saved in {term(run)}  (next: resnette report {term(run)})"]

    code, out, _ = shown(capsys, ["predict", str(run), str(data / "valid")])
    rows = out.splitlines()[1:]                                   # after the header
    assert code == 0 and len(rows) == 4                           # one row per image
    assert all(row.count("\t") == 1 for row in rows)              # path <tab> classes
    assert sum(row.startswith(term(data / "valid" / cls)) for row in rows) == 2
    code, out, _ = shown(capsys, ["predict", str(run), str(data / "valid"), "--json"])
    assert {p["predictions"][0]["class"] for p in strict_json(out)} <= {cls, "b"}

    code, out, _ = shown(capsys, ["evaluate", str(run)])
    per_class = out.split("per class:\n")[1].splitlines()
    assert code == 0 and len(per_class) == 2                      # one row per class
    assert any(row.startswith(f"  {term(cls)}  ") for row in per_class), per_class
    code, out, _ = shown(capsys, ["evaluate", str(run), "--json"])
    ev = strict_json(out)
    assert sorted(ev["names"]) == sorted([cls, "b"]) and TOP_K not in ev            # 2 classes: no top-5

    code, out, _ = shown(capsys, ["report", str(run)])
    page = (run / "report.html").read_text(encoding="utf-8")
    assert code == 0 and html.escape(term(cls)) in page and html.escape(term(run_name)) in page
    assert {"confusion_matrix.png", "top_losses.png"} <= {p.name for p in (run / "plots").iterdir()}

    code, out, _ = shown(capsys, ["runs"])
    assert code == 0 and len(out.splitlines()) == 2 and term(run_name) in out
    code, out, _ = shown(capsys, ["runs", "--json"])
    assert [r["name"] for r in strict_json(out)] == [run_name]
    for action, out_file in (("plot", "runs.png"), ("html", "runs.html")):
        code, out, _ = shown(capsys, ["runs", action, "-o", out_file])
        assert code == 0 and (here / out_file).stat().st_size > 0
    assert html.escape(term(run_name)) in (here / "runs.html").read_text(encoding="utf-8")

    code, out, _ = shown(capsys, ["cache"])
    assert code == 0 and term(data.resolve()) in out or term(data) in out
    code, out, _ = shown(capsys, ["cache", "--json"])
    assert len(strict_json(out)) == 1

    code, out, _ = shown(capsys, ["export", str(run), "--format", "safetensors", "--out",
                                  str(here / "exported")])
    assert code == 0 and out.startswith("exported ")
