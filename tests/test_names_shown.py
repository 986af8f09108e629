"""One gate for every name shown (issue 23, items 2 and 3): a class name, a run folder, a path
or a config value comes from outside, and reaches the user through one rule per medium.

- the terminal: `display.term` escapes control characters and bidi controls (no ESC, BEL,
  newline or U+202E reaches a terminal raw; a name stays on its row);
- plots: text drawn as text, never mathtext (`$\\notacmd$` crashed every plot), escaped as in
  the terminal, CJK with a font that has it or one warning naming the font to install;
- HTML: escaped (report.html, `runs html`);
- JSON: always valid (no NaN/Infinity tokens, dates as ISO strings): `display.to_json`;
- Python warnings: `warning: <message>`, one line on stderr, no source file or code line.
"""
from __future__ import annotations

import datetime
import html
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from resnette import plots
from resnette.display import has_controls, show, term, to_json, warning_line
from resnette.measures import TOP_K

# the names every picture and page is drawn with
HOSTILE = ["$\\notacmd$", "<script>alert(1)</script>", "esc\x1b[31mred", "new\nline", "中文类",
           "\u202eexe.jpg", "bell\x07", "quote\"'", "é" * 127]   # the last: 254 bytes
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
ALPHABET = st.characters(codec="utf-8") | st.sampled_from(list("\x1b\x07\n\r\t\x7f\x85\x9b$<>\"'\\")
                                                          + ["\u202e", "\u2066", "\u200f", "\u2028", "中"])


@given(st.text(ALPHABET, max_size=40))
def test_term_shows_any_name_as_one_line_of_plain_characters(name):
    shown = term(name)
    assert not CONTROLS.search(shown) and "\n" not in shown
    assert term(shown) == shown                    # escaping twice changes nothing
    if not has_controls(name):
        assert shown == name                       # a plain name is shown as it is


def test_term_escapes_as_a_reader_can_type_back():
    assert term("a\x1b[31mb\nc\td\x7f\x85\u202ee") == "a\\x1b[31mb\\nc\\td\\x7f\\x85\\u202ee"
    assert term("raw\udcff") == "raw\\xff"         # a file-name byte that is not UTF-8
    assert term("中文 $x$ <b> \u05d0") == "中文 $x$ <b> \u05d0"   # letters of any script stay


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(ALPHABET, max_size=8)
    | st.dates() | st.datetimes() | st.times(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(ALPHABET, max_size=5),
                                                                 inner, max_size=4),
    max_leaves=12)


def _strict(text: str):
    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


@settings(max_examples=200)
@given(JSON_VALUES)
def test_json_is_always_valid(value):
    back = _strict(to_json(value))
    if isinstance(value, float):
        assert back == (value if math.isfinite(value) else None)
    if isinstance(value, datetime.date):
        assert back == value.isoformat()


def test_json_maps_what_it_cannot_hold():
    data = {"loss": math.nan, "time": math.inf, "date": datetime.date(2026, 12, 6),
            "sizes": (128, 160), "at": datetime.datetime(2026, 12, 6, 10, 30)}
    assert _strict(to_json(data)) == {"loss": None, "time": None, "date": "2026-12-06",
                                      "sizes": [128, 160], "at": "2026-12-06T10:30:00"}


def test_an_infinite_time_is_shown_not_a_traceback():
    assert show("time", math.inf) == "inf" and show("accuracy", -math.inf) == "-inf"
    assert show("time", 75.0) == "01:15"


# --------------------------------------------------------------------------- warnings

def test_a_warning_is_the_clis_own_line(monkeypatch, capsys):
    from resnette import cli
    from resnette.commands import recipes

    def warns(args):
        warnings.warn("skipped 2 unreadable images under photos\x1b[2J", UserWarning)
    monkeypatch.setattr(recipes, "main", warns)
    before = warnings.showwarning
    assert cli.main(["recipes"]) == 0
    err = capsys.readouterr().err
    assert err == "warning: skipped 2 unreadable images under photos\\x1b[2J\n"
    assert warnings.showwarning is before          # main's hook ends with main


def test_warning_line_says_warning_once():
    assert warning_line("warning: a\nb") == "warning: a\\nb"


# --------------------------------------------------------------------------- plots

def _texts(fig) -> list[str]:
    from matplotlib.text import Text
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _drawn_quietly(draw):
    """Draw; return the figure and the warnings: at most one, naming the font package."""
    from resnette import plotfonts
    plotfonts.warn_no_font.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = draw()
    messages = [str(w.message) for w in caught]
    assert not any("Glyph" in m for m in messages), messages       # never one per glyph
    assert len(messages) <= 1 and all(plotfonts.FONT_PACKAGE in m for m in messages), messages
    return fig


def test_every_plot_draws_hostile_names_as_their_text(tmp_path):
    n = len(HOSTILE)
    fig = _drawn_quietly(lambda: plots.plot_confusion(np.eye(n, dtype=int) * 3, HOSTILE,
                                                      tmp_path / "cm.png"))
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [term(name) for name in HOSTILE]          # escaped, one line each
    assert all(not t.get_parse_math() for t in fig.axes[0].get_xticklabels())
    titles = plots.top_loss_titles(HOSTILE, HOSTILE[::-1], [1.0] * n, [0.5] * n)
    fig = _drawn_quietly(lambda: plots.plot_images(np.zeros((n, 8, 8, 3), np.uint8), titles,
                                                   tmp_path / "top.png"))
    assert f"{term(HOSTILE[0])} / {term(HOSTILE[-1])}\nloss 1.00, p 0.50" in _texts(fig)
    for name in ("cm.png", "top.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_a_log_axis_keeps_its_math(tmp_path):
    """Only resnette's own texts are plain: matplotlib's numbers (10^-3 on a log axis) stay."""
    fig = _drawn_quietly(lambda: plots.plot_lr_find([1e-5, 1e-3, 1e-1], [1.0, 0.5, 2.0],
                                                    tmp_path / "lr.png", {"valley": 1e-3}))
    labels = fig.axes[0].get_xticklabels()
    assert any("$" in t.get_text() and t.get_parse_math() for t in labels)


def test_cjk_is_drawn_with_a_font_that_has_it_or_named_once(tmp_path):
    from matplotlib import font_manager
    from resnette import plotfonts
    fig = _drawn_quietly(lambda: plots.plot_confusion(np.eye(2), ["中文", "b"], tmp_path / "c.png"))
    label = fig.axes[0].get_xticklabels()[0]
    fallback = plotfonts._font_with(frozenset("中文"))
    if fallback is None:       # this machine has no CJK font: the warning named the package
        assert label.get_fontfamily() == ["sans-serif"]
    else:                      # drawn with one that has the glyphs
        assert label.get_fontfamily()[-1] == fallback
        assert ord("中") in plotfonts._charmap(font_manager.findfont(fallback))


def test_runs_curves_and_page_escape_run_names(tmp_path):
    from resnette.run.compare import RunSummary
    from resnette.run.compare_view import curves_figure, page, table
    runs = [RunSummary(Path(f"runs/{i}"), name, config={"epochs": 2, "lr": 0.01 * (i + 1)},
                       metrics={"epoch": [0, 1], "valid_loss": [1.0, 0.5],
                                "train_loss": [1.2, 0.6], "accuracy": [0.5, 0.7]},
                       done=2, state="finished") for i, name in enumerate(HOSTILE)]
    fig = _drawn_quietly(lambda: curves_figure(runs))
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [term(name) for name in HOSTILE]
    text = page(runs)                                   # draws the curves too
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "\x1b" not in text and "esc\\x1b[31mred" in text and "new\\nline" in text
    lines = table(runs).splitlines()
    assert len(lines) == 1 + len(HOSTILE) and not any(CONTROLS.search(line) for line in lines)


# --------------------------------------------------------------------------- what is shown

def test_top5_is_left_out_for_five_classes_or_fewer():
    import torch
    from resnette.train.evaluation import summarize
    probs = torch.softmax(torch.randn(12, 5), 1)
    targets = torch.arange(12) % 5
    assert TOP_K not in summarize(probs, targets, list("abcde"))
    probs = torch.softmax(torch.randn(12, 6), 1)
    assert 0 <= summarize(probs, targets, list("abcdef"))[TOP_K] <= 1


def test_evaluate_prints_names_one_row_each_and_no_top5_for_few_classes():
    from resnette.commands.evaluate import format_evaluation
    ev = {"n": 4, "accuracy": 0.5, "loss": 0.7,
          "per_class": {"a\nb": {"accuracy": 1.0, "n": 2}, "\x1b[2J": {"accuracy": 0.0, "n": 2}}}
    lines = format_evaluation(ev).splitlines()
    assert "top-5" not in "\n".join(lines)
    assert lines[-2].split() == ["a\\nb", "1.000000", "(2", "images)"]
    assert lines[-1].split()[0] == "\\x1b[2J"


def test_predict_keeps_a_name_with_a_newline_on_its_row():
    from resnette.commands.predict import Prediction, format_predictions
    preds = [Prediction("photos/new\nline.png", [("cat\ndog", 0.75), ("\u202ebad", 0.25)]),
             Prediction("photos/b.png", [("x", 1.0)])]
    lines = format_predictions(preds).splitlines()[1:]   # after the header
    assert lines == ["photos/new\\nline.png\tcat\\ndog  75.0%   \\u202ebad  25.0%",
                     "photos/b.png\tx 100.0%"]


# --------------------------------------------------------------------------- the CLI

@pytest.fixture
def folders(tmp_path, monkeypatch):
    from test_runs_compare import make_run
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "runs", "plain")
    make_run(tmp_path / "runs", "hostile").rename(tmp_path / "runs" / "esc\x1b[31mred\nrow\u202e")
    return tmp_path / "runs"


def test_runs_lists_hostile_folder_names_escaped_one_row_each(folders, capsys):
    from resnette.cli import main
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert not CONTROLS.search(out.replace("\n", "")) and len(out.splitlines()) == 3
    assert "esc\\x1b[31mred\\nrow\\u202e" in out


def test_runs_json_takes_a_toml_date(folders, capsys):
    from resnette.cli import main
    config = folders / "plain" / "config.toml"
    config.write_text(config.read_text().replace('data = "digits"', "data = 2026-12-06"))
    assert main(["runs", "--json"]) == 0
    rows = {r["name"]: r for r in _strict(capsys.readouterr().out)}
    assert rows["plain"]["data"] == "2026-12-06"


def test_where_matches_the_columns_as_shown(folders, capsys):
    import time
    from resnette.cli import main
    today = time.strftime("%Y-%m-%d")
    for where, n in ((f"date={today}*", 2), ("date>2000", 2), ("time>00:00", 2),
                     ("time>01:00", 0), ("time=00:08", 2), ("epochs=3/3", 2), ("epochs>=3", 2),
                     ("epochs=2/3", 0), ("acc>=0.9", 2)):
        assert main(["runs", "--where", where]) == 0, where
        captured = capsys.readouterr()
        assert len(captured.out.splitlines()) == (1 + n if n else 0), (where, captured)
        if not n:
            assert captured.err == f"none of the 2 run(s) in runs/ passes --where {where}\n"


@pytest.mark.parametrize("where", ["acc=>0.5", "acc>high", "time>soon", "epochs>3/3"])
def test_a_where_that_cannot_match_is_one_error_line(folders, capsys, where):
    from resnette.cli import main
    assert main(["runs", "--where", where]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --where") and len(err.splitlines()) == 1
    assert "no runs" not in err


def test_cache_limit_zero_is_shown_as_the_limit_it_acts_as(tmp_path, monkeypatch, capsys):
    from resnette import cachedir
    from resnette.cli import main
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path))
    monkeypatch.setenv(cachedir.LIMIT_ENV, "0")
    assert cachedir.cache_limit() == 0
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "no limit" not in out and "of its 0 B limit (RESNETTE_CACHE_LIMIT: 0 keeps only entries in use)" in out


@pytest.mark.parametrize("run_dir", ["runs/esc\x1b[2Jx", "runs/bell\x07", "runs/a\nb",
                                     "runs/\u202eexe"])
def test_run_dir_refuses_control_characters_as_name_does(tmp_path, monkeypatch, capsys, run_dir):
    from resnette.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "digits", "--run-dir", run_dir, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds control characters" in err and len(err.splitlines()) == 1
    assert not CONTROLS.search(err.replace("\n", "")) and not (tmp_path / "runs").exists()


def test_a_result_path_keeps_its_latin1_bytes_for_scripts_but_never_a_c1_control():
    import os
    path = os.fsdecode(b"caf\xe9/\x9b2J.png")
    assert term(path, raw_bytes=True) == os.fsdecode(b"caf\xe9/") + "\\x9b2J.png"
    assert term(path) == "caf\\xe9/\\x9b2J.png"


def test_a_character_the_default_font_lacks_is_drawn_with_an_installed_font_that_has_it(tmp_path):
    """The fallback mechanism on whatever fonts this machine has: a character the default font
    lacks but another installed font has is drawn with that font, without a missing glyph."""
    from matplotlib import font_manager
    from resnette import plotfonts
    default = plotfonts._charmap(font_manager.findfont(font_manager.FontProperties()))
    others = sorted({c for e in font_manager.fontManager.ttflist if e.name not in
                     plotfonts.NOT_FALLBACKS for c in plotfonts._charmap(e.fname)} - default)
    found = next((chr(c) for c in others[::max(1, len(others) // 200)]
                  if c > 0x2000 and chr(c).isprintable()
                  and plotfonts._font_with(frozenset(chr(c))) is not None), None)
    if found is None:
        pytest.skip("every installed font has only the default font's characters")
    fig = _drawn_quietly(lambda: plots.plot_confusion(np.eye(2), [found * 3, "b"]))
    label = fig.axes[0].get_xticklabels()[0]
    assert label.get_fontfamily()[-1] == plotfonts._font_with(frozenset(found))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()                       # matplotlib itself finds every glyph
    assert not [w for w in caught if "Glyph" in str(w.message)]


def test_the_report_leaves_out_a_stored_top5_of_five_classes_or_fewer():
    from resnette.commands.report import _measure
    few = {"n": 4, TOP_K: 1.0, "names": list("abc")}
    many = {"n": 4, TOP_K: 0.75, "names": list("abcdef")}
    assert _measure(few, TOP_K) is None and _measure(many, TOP_K) == 0.75
    assert _measure({"n": 4, TOP_K: 0.9}, TOP_K) == 0.9   # classes unknown: as stored
