"""A dataset that cannot be fetched says what to do where the user is (issue 24 #4): at the
command line, the variable before the command or `--data <folder>`; in a notebook,
untar_data's `url=`; in the chapter's notebook (resnette.book), its data-switch cell. Checked
in this process and in a real Jupyter kernel."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnette.book import URLs, untar_data as book_untar_data
from resnette.data import untar_data
from resnette.utils import ResnetteError

REFUSED = "http://127.0.0.1:9/mnist_tiny.tgz"   # nothing listens on port 9: as if offline
UNKNOWN = "nope://mirror/mnist_tiny.tgz"         # refused at once, with the same advice


def _message(fn) -> str:
    with pytest.raises(ResnetteError) as e:
        fn()
    return str(e.value)


def test_outside_a_notebook_the_advice_is_the_command_lines(tmp_path):
    msg = _message(lambda: untar_data("mnist-tiny", tmp_path, url=REFUSED, retries=0))
    assert "check the network" in msg
    assert "RESNETTE_URL_MNIST_TINY=" in msg and "--data <folder>" in msg
    assert "url=" not in msg and "data-switch" not in msg


def test_the_books_untar_data_names_the_data_switch_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETTE_HOME", str(tmp_path))
    monkeypatch.setenv("RESNETTE_URL_MNIST_TINY", UNKNOWN)
    msg = _message(lambda: book_untar_data(URLs.MNIST_TINY))
    assert "data-switch cell" in msg and "os.environ['RESNETTE_URL_MNIST_TINY']" in msg
    assert "--data" not in msg and "before the command" not in msg


nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.slow
def test_in_a_kernel_the_advice_names_untar_datas_url_and_the_data_switch_cell(tmp_path):
    pytest.importorskip("ipykernel")
    code = (
        "import json, os\n"
        f"os.environ['RESNETTE_HOME'] = {str(tmp_path / 'home')!r}\n"
        "from resnette.utils import ResnetteError\n"
        "from resnette.data import untar_data\n"
        "from resnette.book import URLs, untar_data as book_untar_data\n"
        "said = []\n"
        f"try:\n    untar_data('mnist-tiny', url={REFUSED!r}, retries=0)\n"
        "except ResnetteError as e:\n    said.append(str(e))\n"
        f"os.environ['RESNETTE_URL_MNIST_TINY'] = {UNKNOWN!r}\n"
        "try:\n    book_untar_data(URLs.MNIST_TINY)\n"
        "except ResnetteError as e:\n    said.append(str(e))\n"
        "print(json.dumps(said))")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    python, book = json.loads(nb.cells[0].outputs[0]["text"])
    assert "check the network" in python and "untar_data('mnist-tiny', url=...)" in python
    assert "--data" not in python and "before the command" not in python
    assert "data-switch cell" in book and "--data" not in book
