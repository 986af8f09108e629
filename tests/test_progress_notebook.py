"""Training output in a real Jupyter kernel (nbclient + ipykernel): one HTML area with the
epoch bar and the table growing row by row, no text table and no tqdm on stderr; pictures
inline as PNG. Outside a kernel: the printed table, and no bar when stderr is no terminal."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from fakes import FakeDataLoaders, tiny_net
from resnette.notebook import in_notebook
from resnette.train import Learner
from resnette.train.progress import FitProgress

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TESTS = Path(__file__).resolve().parent

CELLS = [
    f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
    "import torch\n"
    "from fakes import FakeDataLoaders, tiny_net\n"
    "from resnette.notebook import in_notebook\n"
    "from resnette.train import Learner\n"
    "torch.manual_seed(0)\n"
    "learn = Learner(FakeDataLoaders(), tiny_net(), lr=1e-2)\n"
    "print('kernel:', in_notebook())",
    "learn.fit_one_cycle(3)",
    "fig = learn.recorder.plot_loss()",
    "learn.lr_find(num_it=12)",
    "learn.recorder.plot_loss()",   # a cell ending in a picture method: the picture once
    "fig",                          # the figure again, in a later cell
]


@pytest.mark.slow
def test_a_kernel_gets_a_live_html_table_and_bar_and_inline_pictures(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    setup, fit, loss, lr, ending, again = (cell.outputs for cell in nb.cells)
    assert [o.get("text") for o in setup] == ["kernel: True\n"]
    # the fit: one display (updated in place), no printed table, nothing on stderr (no tqdm)
    assert [o.output_type for o in fit] == ["display_data"]
    html = fit[0].data["text/html"]
    assert re.search(r"<progress value='3' max='3'", html) and "3/3 epochs" in html
    head = re.findall(r"<th>(.*?)</th>", html)
    assert head == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    rows = re.findall(r"<tr><td>(\d+)</td>", html)
    assert rows == ["0", "1", "2"]
    assert re.search(r"<td>\d\.\d{6}</td>", html) and re.search(r"<td>\d\d:\d\d</td>", html)
    # pictures: a PNG shown inline; the sweep's answer as fastai's repr
    assert [o.output_type for o in loss] == ["display_data"] and "image/png" in loss[0].data
    pngs = [o for o in lr if o.output_type == "display_data" and "image/png" in o.data]
    result = [o for o in lr if o.output_type == "execute_result"]
    assert len(pngs) == 1 and len(result) == 1
    assert re.fullmatch(r"SuggestedLRs\(valley=\S+, steep=\S+, minimum=\S+\)",
                        result[0].data["text/plain"])
    # shown by the method, not a second time (nor as '<Figure ...>') as the cell's value
    assert [(o.output_type, "image/png" in o.data) for o in ending] == [("display_data", True)]
    assert [(o.output_type, "image/png" in o.data) for o in again] == [("display_data", True)]
    assert not [o for cell in nb.cells for o in cell.outputs
                if o.output_type == "error" or o.get("name") == "stderr"]


def test_outside_a_kernel_the_table_prints_and_a_pipe_gets_no_bar(capsys):
    assert not in_notebook()
    progress = FitProgress(["epoch", "train_loss"], 1)
    progress.start_epoch(0, 5)
    assert progress.live is None and not progress.bar.enabled   # stderr is no terminal here
    progress.update(5, 0.5)
    progress.end_epoch()
    progress.write_row({"epoch": 0, "train_loss": 0.5})
    out, err = capsys.readouterr()
    assert out.split() == ["epoch", "train_loss", "0", "0.500000"] and err == ""


def test_the_terminal_output_of_a_fit_is_unchanged(capsys):
    learn = Learner(FakeDataLoaders(), tiny_net(), lr=1e-2)
    learn.fit(1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert len(lines) == 2 and "<" not in lines[1] and sys.stdout is not None
