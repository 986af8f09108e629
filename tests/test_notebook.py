"""examples/chapter14.ipynb executed headless in a real Jupyter kernel (nbclient + ipykernel).

The notebook is the book's chapter 14 cells with `from resnette.book import *`. Here it runs
on a tiny Imagenette-like archive served through RESNETTE_URL_IMAGENETTE_160/_320 (so
untar_data really downloads, checks and extracts), with RESNETTE_HOME in a temporary folder.
What the test changes, in its in-memory copy only (the file stays the book's):
- the parameters cell: the URLs, RESNETTE_HOME and LATER_EPOCHS = 1 (the data switch's use),
  without the committed run's injected cell and report (its outputs are cleared as it runs);
- three literals, so 2 CPU cores finish in about a minute: images 64 px decoded / 32 px
  trained instead of 160/128 and 320/224, and batches of 16 instead of 128 (the dataset has
  40 training images); every `fit_one_cycle(5, ...)` keeps its 5 epochs;
- one cell appended: plot_loss and the confusion matrix, the pictures a reader asks for next.
Then it checks what a reader sees: the epoch tables (HTML, columns and rows), the progress
bars, the pictures (inline PNGs), lr_find's SuggestedLRs, and no error or warning anywhere.
"""
import base64
import os
import re
import tarfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from fakes import CHROMIUM, image_folder, rendered_images  # noqa: E402

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "chapter14.ipynb"
CLASSES = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
           "n03417042", "n03425413", "n03445777", "n03888257")   # Imagenette's ten
SMALLER = {"get_data(URLs.IMAGENETTE_160, 160, 128)": "get_data(URLs.IMAGENETTE_160, 64, 32)",
           "presize=320, resize=224": "presize=64, resize=32", "bs=128": "bs=16"}
EXTRA = ("learn.recorder.plot_loss()\n"
         "from resnette.train import ClassificationInterpretation\n"
         "ClassificationInterpretation.from_learner(learn).plot_confusion_matrix()")
COLUMNS = ["epoch", "train_loss", "valid_loss", "accuracy", "time"]


def imagenette_like(tmp: Path, folder: str) -> Path:
    """<folder>.tgz holding <folder>/train|val/<wnid>/*.png: 4 training and 2 validation
    images per class, each class its own grey level plus noise (learnable in a few epochs)."""
    root = image_folder(tmp / "src" / folder, n_train=4, n_valid=2, classes=CLASSES, size=40,
                        levels=tuple(range(20, 240, 22)))
    (root / "valid").rename(root / "val")
    archive = tmp / f"{folder}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=folder)
    return archive


def prepared(tmp: Path) -> "nbformat.NotebookNode":
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The committed notebook carries a real run (examples/execute_chapter14.py): its injected
    # data cell and its report are that run's, not this one's (as papermill re-injects).
    nb.cells = [c for c in nb.cells
                if not {"injected-parameters", "run-report"} & set(c.metadata.get("tags", []))]
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook's data switch is the one cell tagged 'parameters'"
    urls = {k: imagenette_like(tmp, f).as_uri() for k, f in (("160", "imagenette2-160"),
                                                              ("320", "imagenette2-320"))}
    params[0].source = (f"import os\nos.environ['RESNETTE_HOME'] = {str(tmp / 'home')!r}\n"
                        f"os.environ['RESNETTE_URL_IMAGENETTE_160'] = {urls['160']!r}\n"
                        f"os.environ['RESNETTE_URL_IMAGENETTE_320'] = {urls['320']!r}\n"
                        "LATER_EPOCHS = 1\nBOTTLENECK_EPOCHS = None")
    for old, new in SMALLER.items():
        hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        assert len(hits) == 1 and hits[0].source.count(old) == 1, old
        hits[0].source = hits[0].source.replace(old, new)
    nb.cells.append(nbformat.v4.new_code_cell(EXTRA))
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chapter14")
    nb = prepared(tmp)
    # Jupyter, IPython and matplotlib keep their files under $HOME unless told otherwise.
    env = {"JUPYTER_RUNTIME_DIR": tmp / "jupyter" / "runtime", "JUPYTER_DATA_DIR": tmp / "jupyter",
           "IPYTHONDIR": tmp / "ipython", "MPLCONFIGDIR": tmp / "mpl",
           "RESNETTE_HOME": tmp / "home", "PYTHONWARNINGS": "default"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, str(value))
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp)}})
        client.execute(env=dict(os.environ))
    return nb, tmp


def code_cells(nb, text: str) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and text in c.source]


def html_of(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def pngs(cell) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in cell.outputs
            if "image/png" in o.get("data", {})]


def test_untar_data_really_fetched_and_extracted_both_archives(executed):
    _, tmp = executed
    for folder in ("imagenette2-160", "imagenette2-320"):
        assert (tmp / "home" / folder / ".resnette-complete").is_file()
        assert len(list((tmp / "home" / folder / "val").glob("*/*.png"))) == 20


def test_no_cell_failed_or_warned(executed):
    nb, _ = executed
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for out in cell.outputs:
            assert out.output_type != "error", f"{cell.source[:60]!r}: {out.get('evalue')}"
            assert out.get("name") != "stderr", f"{cell.source[:60]!r} wrote: {out.get('text')}"


def test_every_fit_shows_the_epoch_table_as_html(executed):
    nb, _ = executed
    fits = code_cells(nb, "fit_one_cycle(")
    assert len(fits) == 5
    for cell in fits:
        tables = re.findall(r"<table.*?</table>", html_of(cell), re.S)
        assert len(tables) == 1, cell.source
        head = re.findall(r"<th>(.*?)</th>", tables[0])
        assert head == COLUMNS
        rows = re.findall(r"<tr>(.*?)</tr>", tables[0], re.S)
        assert len(rows) == (5 if "fit_one_cycle(5," in cell.source else 1), cell.source
        cells = re.findall(r"<td>(.*?)</td>", rows[-1])
        assert cells[0] == str(len(rows) - 1) and 0 <= float(cells[3]) <= 1
        assert re.fullmatch(r"\d\d:\d\d", cells[4])


def test_progress_is_shown_as_a_bar(executed):
    nb, _ = executed
    for cell in code_cells(nb, "fit_one_cycle("):
        assert "<progress" in html_of(cell), cell.source


def test_pictures_are_inline_pngs(executed):
    nb, _ = executed
    for text in ("show_batch(max_n=4)", "lr_find()"):
        (cell,) = code_cells(nb, text)
        images = pngs(cell)
        assert len(images) == 1 and images[0].startswith(b"\x89PNG") and len(images[0]) > 5000
    (cell,) = code_cells(nb, "show_batch(max_n=4)")   # fastai's returns None: no Out[] line
    assert [o.output_type for o in cell.outputs] == ["display_data"]
    extra = nb.cells[-1]
    assert extra.source == EXTRA and len(pngs(extra)) == 2   # loss curve, confusion matrix


def test_lr_find_answers_with_suggested_lrs(executed):
    nb, _ = executed
    (cell,) = code_cells(nb, "lr_find()")
    text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs
                   if o.output_type == "execute_result")
    assert re.fullmatch(r"SuggestedLRs\(valley=[\d.e-]+, steep=[\d.e-]+, minimum=[\d.e-]+\)",
                        text.strip()), text


def test_the_chapters_own_cells_print_what_the_book_prints(executed):
    nb, _ = executed
    (stem,) = [c for c in nb.cells if c.source == "_resnet_stem(3,32,32,64)"]
    text = "".join(o.get("data", {}).get("text/plain", "") for o in stem.outputs)
    assert text.count("ConvLayer(") == 3 and "MaxPool2d(kernel_size=3, stride=2, padding=1" in text


def test_the_executed_notebook_renders_as_html(executed, tmp_path):
    nb, _ = executed
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(nb)
    page = tmp_path / "chapter14.html"
    page.write_text(body)
    assert body.count("data:image/png;base64,") >= 4 and "<table" in body
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt: chromium): the page was not opened")
    decoded, images = rendered_images(body, tmp_path)
    assert decoded == images >= 4
