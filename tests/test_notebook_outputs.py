"""The committed examples/chapter14.ipynb: its outputs are a real run's, and belong to its code.

examples/execute_chapter14.py executes the chapter on the real Imagenette and commits it with
its outputs, so GitHub shows the tables and pictures. These tests read the committed file only
(tests/test_notebook.py executes a copy on tiny data): every code cell that ran still has the
source it ran with (metadata.resnette.source_sha256; editing a cell without regenerating the
notebook fails here), the cells ran once, in order, without an error; each fit shows its epoch
table (the chapter's columns, one row per epoch it ran) and its progress bar; show_batch and
lr_find show their pictures; the run-report cell agrees with the tables; nothing of this machine
(absolute paths, terminal escapes) leaked into the file.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "chapter14.ipynb"
sys.path.insert(0, str(REPO / "benchmarks"))
from book_parts import table_accuracy  # noqa: E402

COLUMNS = ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
BOOK = [0.659, 0.668, 0.693, 0.757, 0.873]   # the chapter's printed final accuracies, in order
CHARS = st.characters(exclude_categories=("Cs",))   # any character UTF-8 can encode
MACHINE = re.compile(r"(?<![\w.])/(?:work|tmp|root|home|Users|var|opt)/")


@pytest.fixture(scope="module")
def nb():
    return nbformat.read(NOTEBOOK, as_version=4)


def code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def ran(nb) -> list:
    return [c for c in code(nb) if c.execution_count is not None]


def sha(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def stale(nb) -> list[str]:
    """Code cells whose outputs do not belong to their source: edited since the run, or outputs
    with no record of the source they came from."""
    bad = []
    for c in code(nb):
        if c.outputs or c.execution_count is not None:
            stored = c.metadata.get("resnette", {}).get("source_sha256")
            if stored != sha(c.source):
                bad.append(c.source[:60])
    return bad


def injected_settings(nb) -> dict:
    (cell,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    return {k: (None if v == "None" else int(v))
            for k, v in re.findall(r"^(LATER_EPOCHS|BOTTLENECK_EPOCHS) = (None|\d+)$",
                                   cell.source, re.M)}


def epochs_of(cell, values: dict) -> int:
    """The epochs a fit cell runs: its first argument evaluated with the run's settings."""
    (expr,) = re.findall(r"fit_one_cycle\(([^,]+),", cell.source)
    return int(eval(expr, {"__builtins__": {}}, dict(values)))


def html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def pngs(cell) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in cell.outputs
            if "image/png" in o.get("data", {})]


def fits(nb) -> list:
    return [c for c in code(nb) if "fit_one_cycle(" in c.source]


def test_the_notebook_is_valid_nbformat_and_small(nb):
    nbformat.validate(nb)
    assert NOTEBOOK.stat().st_size < 2_000_000
    json.loads(NOTEBOOK.read_text())   # plain JSON too, as GitHub's renderer reads it


def test_every_output_belongs_to_the_committed_source(nb):
    assert ran(nb), "the committed notebook has no outputs: run examples/execute_chapter14.py"
    assert stale(nb) == [], ("cells edited since the committed run (regenerate: "
                             "python examples/execute_chapter14.py --data <imagenette folder>)")


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_editing_any_executed_cell_is_caught(nb, data):
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    cell = data.draw(st.sampled_from(ran(copy)))
    edit = data.draw(st.sampled_from(["append", "prepend", "replace_char", "strip"]))
    text = data.draw(st.text(CHARS, min_size=1, max_size=5))
    if edit == "append":
        cell.source += text
    elif edit == "prepend":
        cell.source = text + cell.source
    elif edit == "replace_char":
        i = data.draw(st.integers(0, len(cell.source) - 1))
        new = data.draw(CHARS.filter(lambda ch: ch != cell.source[i]))
        cell.source = cell.source[:i] + new + cell.source[i + 1:]
    else:
        cell.source = cell.source.rstrip() + " \n" if cell.source.strip() else "x"
    assert len(stale(copy)) == 1


def test_the_cells_ran_once_in_order_up_to_where_the_run_stopped(nb):
    counts = [c.execution_count for c in code(nb)]
    n = len(ran(nb))
    assert counts[:n] == list(range(1, n + 1)), "one run, top to bottom"
    assert all(c.execution_count is None and not c.outputs for c in code(nb)[n:])
    (report,) = [c for c in nb.cells if "run-report" in c.metadata.get("tags", [])]
    if n < len(code(nb)):
        assert "The run stopped" in report.source
    else:
        assert "The run stopped" not in report.source


def test_the_data_switch_and_the_report_sit_at_the_top(nb):
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    i = tags.index(["parameters"])
    assert tags[i + 1] == ["injected-parameters"] and tags[i + 2] == ["run-report"]
    assert sum("injected-parameters" in t for t in tags) == 1
    injected = nb.cells[i + 1].source
    assert "RESNETTE_URL_IMAGENETTE_160" in injected and "RESNETTE_URL_IMAGENETTE_320" in injected
    assert "224" in injected   # says that the 320 section reads the 224 px copy
    assert set(injected_settings(nb)) == {"LATER_EPOCHS", "BOTTLENECK_EPOCHS"}


def test_no_error_no_stderr_no_escape_codes_no_machine_paths(nb):
    for c in code(nb):
        assert not MACHINE.search(c.source), c.source
        for o in c.outputs:
            assert o.output_type != "error", f"{c.source[:60]!r}: {o.get('evalue')}"
            assert o.get("name") != "stderr", f"{c.source[:60]!r}: {o.get('text')}"
            text = json.dumps({k: v for k, v in o.get("data", {}).items() if k != "image/png"})
            text += o.get("text", "")
            assert "\x1b" not in text and "\\u001b" not in text, c.source[:60]
            assert not MACHINE.search(text), (c.source[:60], MACHINE.search(text))
            for mime in o.get("data", {}):
                assert mime in {"text/plain", "text/html", "image/png"}, mime


def test_every_fit_that_ran_shows_its_whole_epoch_table_and_bar(nb):
    values = injected_settings(nb)
    done = [c for c in fits(nb) if c.execution_count is not None]
    assert len(done) >= 2, "the plain and the first ResBlock net (always 5 epochs) ran"
    for cell in done:
        tables = re.findall(r"<table.*?</table>", html(cell), re.S)
        assert len(tables) == 1, cell.source
        assert re.findall(r"<th>(.*?)</th>", tables[0]) == COLUMNS
        rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>",
                                                                       tables[0], re.S)]
        rows = [r for r in rows if r]
        assert [r[0] for r in rows] == [str(e) for e in range(epochs_of(cell, values))]
        for r in rows:
            assert float(r[1]) > 0 and float(r[2]) > 0 and 0 <= float(r[3]) <= 1
            assert re.fullmatch(r"\d\d:\d\d(:\d\d)?", r[4])
        assert "<progress" in html(cell), cell.source


def test_fits_at_the_books_epochs_reach_the_books_accuracy(nb):
    """Within 3 points of the chapter's printed accuracy (a GPU's fastai run, one seed)."""
    values = injected_settings(nb)
    book_epochs = [5, 5, 5, 5, 20]
    for i, cell in enumerate(fits(nb)):
        if cell.execution_count is not None and epochs_of(cell, values) == book_epochs[i]:
            assert table_accuracy(cell) >= BOOK[i] - 0.03, (cell.source, table_accuracy(cell))


def test_the_report_states_what_the_tables_show(nb):
    (report,) = [c for c in nb.cells if "run-report" in c.metadata.get("tags", [])]
    rows = [r for r in re.findall(r"^\| (.+) \|$", report.source, re.M)
            if not r.startswith(("section", "---"))]
    assert len(rows) == 5
    values = injected_settings(nb)
    for row, cell in zip(rows, fits(nb)):
        cols = [x.strip() for x in row.split(" | ")]
        if cell.execution_count is None:
            assert cols[1].startswith("not run")
            continue
        assert cols[1].split()[0] == str(epochs_of(cell, values))
        assert cols[3] == f"{table_accuracy(cell):.1%}"
        assert float(cols[2].split()[0]) * 60 == pytest.approx(
            cell.metadata["resnette"]["seconds"], abs=3.1)
    for flag in ("avx2", "cores", "torch "):
        assert flag in report.source


def test_the_pictures_are_there(nb):
    from PIL import Image
    for text in ("show_batch(max_n=4)", "lr_find()"):
        (cell,) = [c for c in code(nb) if text in c.source]
        (png,) = pngs(cell)
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and min(image.size) >= 200, image.size
        assert sum(map(bool, image.convert("L").histogram())) > 50, "a picture, not a blank"
    (lr,) = [c for c in code(nb) if "lr_find()" in c.source]
    text = "".join(o.get("data", {}).get("text/plain", "") for o in lr.outputs
                   if o.output_type == "execute_result")
    assert re.fullmatch(r"SuggestedLRs\(valley=[\d.e-]+, steep=[\d.e-]+, minimum=[\d.e-]+\)",
                        text.strip()), text


# The regeneration script's own decisions, on copies of the committed notebook.

def script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("execute_chapter14",
                                                  REPO / "examples" / "execute_chapter14.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_of(nb):
    return nbformat.from_dict(json.loads(json.dumps(nb)))


def test_clean_gives_back_the_code_as_committed(nb):
    cleaned = script().clean(copy_of(nb))
    tags = [t for c in cleaned.cells for t in c.metadata.get("tags", [])]
    assert tags == ["parameters"]
    assert all(not c.outputs and c.execution_count is None and "resnette" not in c.metadata
               for c in code(cleaned))
    assert [c.source for c in code(cleaned)] == [
        c.source for c in code(nb) if "injected-parameters" not in c.metadata.get("tags", [])]


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_a_cell_killed_mid_run_is_cleared_with_every_cell_below_it(nb, data):
    """A dead kernel leaves the running cell with an execution count (and maybe half a table)
    but no recorded hash; an error leaves a traceback. Either way, the reader must see the run
    stop there: that cell and those below are cleared, those above untouched."""
    mod, copy = script(), copy_of(nb)
    cells = ran(copy)
    k = data.draw(st.integers(0, len(cells) - 1))
    if data.draw(st.booleans()):
        cells[k].metadata.pop("resnette")
    else:
        cells[k].outputs.append(nbformat.v4.new_output("error", ename="KeyboardInterrupt",
                                                       evalue="", traceback=[]))
    before = [json.dumps(c) for c in cells[:k]]
    assert mod.stop_at_unfinished(copy) == cells[k].source.splitlines()[-1]
    assert [json.dumps(c) for c in cells[:k]] == before
    assert all(not c.outputs and c.execution_count is None for c in code(copy)[k:])
    assert mod.stop_at_unfinished(copy) is None   # nothing half-run is left
    text = mod.report(copy, mod.injected_plan(copy), "head", "in the cell `x`")
    assert text.count("| not run (") == sum(c.execution_count is None for c in fits(copy))


def test_a_missing_data_folder_is_one_line_and_exit_2(tmp_path, capsys):
    import argparse
    args = argparse.Namespace(data=tmp_path / "nowhere", smoke=False, later_epochs=None,
                              bottleneck_epochs=None, out=tmp_path / "x.ipynb", home=None,
                              last_start=None)
    assert script().execute(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "train/" in err
    assert not (tmp_path / "x.ipynb").exists()
