"""The chapter's notebook, executed in a real kernel, with resnette and with fastai (issue 17).

    python benchmarks/book_notebook.py --variant fastai    # needs /work/venv-fastai (BENCHMARKS.md)
    python benchmarks/book_notebook.py --variant resnette
    python benchmarks/book_notebook.py --table             # the side by side from both JSON files

Runs `examples/chapter14.ipynb` through nbclient in a Jupyter kernel, cell by cell, timing each
cell, as a reader would: variant `resnette` as the notebook is (`from resnette.book import *`),
variant `fastai` with that first code cell replaced by `from fastai.vision.all import *`, in the
fastai venv's kernel. One cell is injected after the `parameters` cell, the same text in both
variants: it sets LATER_EPOCHS (default None: the book's 5 epochs) and rebinds `untar_data` so that
`untar_data(URLs.IMAGENETTE_160)` returns --data (the shared Imagenette, official train/ and val/,
stored squashed at 224 px; the chapter's `Resize(160)` then applies in both), so both read
identical files; every other URL goes to the library's own `untar_data`. The cells run through
the --fits-th `fit_one_cycle` cell (default 4: plain net and first ResBlock net at the chapter's
5 epochs, the two-ResBlock net and the ResNet-18 at LATER_EPOCHS); the ResNet-50 at
IMAGENETTE_320/224 px is left out (20 epochs of it would take days on 2 cores). resnette runs with
an empty RESNETTE_HOME (its decode cache is built inside the timed run) unless --home is given.
Writes benchmarks/results/book_notebook_<variant>.json after every cell (cells, seconds, each fit's
final accuracy parsed from its output table, load averages once a minute) and the executed
notebook beside it (.ipynb, not committed). --smoke: a 20-images-per-class subset, 1-epoch fits;
--fit-epochs N: every fit N epochs; --skip TEXT: leave out the cells containing TEXT (e.g.
"lr_find()"); --tag: a suffix for the result files. Both variants at once under the same load,
or back to back on a quiet machine; the CPU seconds per cell are the steadier measure under load.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from book_parts import Loads, table_accuracy, tree_cpu

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NOTEBOOK = REPO / "examples" / "chapter14.ipynb"
RESULTS = HERE / "results"
DATA = REPO.parent / "shared" / "data" / "imagenette2-224sq"
VENV = Path("/work/venv-fastai")
KERNEL = "resnette-bench-fastai"
SECTIONS = ["plain", "resblock", "resblock2", "resnet18", "resnet50"]
BOOK = {"plain": 0.659, "resblock": 0.668, "resblock2": 0.693, "resnet18": 0.757}
INJECTED = ("# Injected by benchmarks/book_notebook.py, the same text in both variants: "
            "the shared data.\n") + '''\
from pathlib import Path as _Path
_library_untar_data = untar_data
def untar_data(url, *args, **kwargs):
    if url == URLs.IMAGENETTE_160: return _Path({data!r})
    return _library_untar_data(url, *args, **kwargs)
LATER_EPOCHS = {later}'''


def build(variant: str, data: Path, later: int, fits: int, fit_epochs: int | None,
          skip: list[str]) -> nbformat.NotebookNode:
    """The notebook to run: import swapped (fastai), the injected cell, cut after `fits` fits;
    `fit_epochs` overrides every fit's epochs, cells containing a `skip` text are left out."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells, seen_import, n_fit = [], False, 0
    for cell in nb.cells:
        if cell.cell_type == "code" and not seen_import:
            seen_import = True
            if variant == "fastai":
                cell.source = "from fastai.vision.all import *"
        if cell.cell_type == "code" and fit_epochs:
            cell.source = re.sub(r"fit_one_cycle\(\d+", f"fit_one_cycle({fit_epochs}", cell.source)
        if cell.cell_type == "code" and any(t in cell.source for t in skip):
            continue
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue   # the committed run's own (examples/execute_chapter14.py): ours replaces it
        cells.append(cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cells.append(nbformat.v4.new_code_cell(INJECTED.format(data=str(data), later=later),
                                                   metadata={"tags": ["injected-parameters"]}))
        if cell.cell_type == "code" and "fit_one_cycle(" in cell.source:
            n_fit += 1
            if n_fit == fits:
                break
    nb.cells = cells
    return nb


def smoke_data(root: Path, per_class: int) -> Path:
    """A subset of `root`: `per_class` images per class in train/ and val/ (symbolic links)."""
    out = Path(tempfile.mkdtemp(prefix="book-smoke-"))
    for split in ("train", "val"):
        for cls in sorted((root / split).iterdir()):
            (out / split / cls.name).mkdir(parents=True)
            for f in sorted(cls.iterdir())[:per_class]:
                (out / split / cls.name / f.name).symlink_to(f)
    return out


def install_kernel(venv: Path) -> None:
    """The fastai venv's ipykernel as kernelspec KERNEL under the venv (found via JUPYTER_PATH)."""
    if not (venv / "share" / "jupyter" / "kernels" / KERNEL).is_dir():
        subprocess.run([str(venv / "bin" / "python"), "-m", "ipykernel", "install", "--prefix",
                        str(venv), "--name", KERNEL, "--display-name", "fastai (benchmark venv)"],
                       check=True)
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(venv / "share" / "jupyter"),
                                                  os.environ.get("JUPYTER_PATH", "")])


def run(args: argparse.Namespace) -> dict:
    data = smoke_data(args.data, 20) if args.smoke else args.data
    fit_epochs = 1 if args.smoke else args.fit_epochs
    nb = build(args.variant, data, args.later_epochs, args.fits, fit_epochs, args.skip)
    tag = args.variant + ("_smoke" if args.smoke else args.tag)
    out = args.out or RESULTS / f"book_notebook_{tag}.json"
    home = None
    if args.variant == "fastai":
        install_kernel(args.venv)
        kernel = KERNEL
    else:
        kernel = "python3"
        home = args.home or Path(tempfile.mkdtemp(prefix="book-home-"))
        os.environ["RESNETTE_HOME"] = str(home)
    loads = Loads()
    loads.start()
    res: dict = dict(variant=args.variant, kernel=kernel,
                     date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), data=str(data),
                     later_epochs=args.later_epochs, fits=args.fits, smoke=args.smoke,
                     fit_epochs=fit_epochs, skip=args.skip,
                     resnette_home=str(home) if home else None, cells=[], loads=loads.rows,
                     cpu=_cpu(), command=" ".join(sys.argv))
    starts: dict[int, float] = {}
    cpu_starts: dict[int, float] = {}
    n_fit = [0]

    def started(cell, cell_index, **_) -> None:
        starts[cell_index] = time.perf_counter()
        cpu_starts[cell_index] = tree_cpu(client.km.provisioner.pid)

    def executed(cell, cell_index, **_) -> None:
        row = dict(index=cell_index, seconds=round(time.perf_counter() - starts[cell_index], 2),
                   cpu_s=round(tree_cpu(client.km.provisioner.pid) - cpu_starts[cell_index], 2),
                   source=cell.source.splitlines()[0][:70] if cell.source else "")
        if "fit_one_cycle(" in cell.source:
            row.update(section=SECTIONS[n_fit[0]], accuracy=table_accuracy(cell))
            n_fit[0] += 1
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            row["error"] = f"{errors[0].get('ename')}: {errors[0].get('evalue')}"[:300]
        res["cells"].append(row)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"[cell {cell_index:>2}] {row['seconds']:>8.1f} s {row['cpu_s']:>8.1f} cpu-s  "
              f"{row['source']}"
              + (f"  accuracy {row['accuracy']}" if "section" in row else ""), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))

    client = NotebookClient(nb, kernel_name=kernel, timeout=None, startup_timeout=600,
                            resources={"metadata": {"path": str(REPO / "examples")}},
                            on_cell_execute=started, on_cell_executed=executed)
    t0 = time.perf_counter()
    try:
        client.execute()
        res["completed"] = True
    except Exception as e:  # a failing cell: keep what ran, say which
        res["completed"] = False
        res["failure"] = f"{type(e).__name__}: {str(e)[-500:]}"
        print(f"[fail] {res['failure']}", flush=True)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["cells_s"] = round(sum(c["seconds"] for c in res["cells"]), 1)
    res["cells_cpu_s"] = round(sum(c["cpu_s"] for c in res["cells"]), 1)
    loads.stop.set()
    loads.rows.append([round(time.time()), *os.getloadavg()])
    out.write_text(json.dumps(res, indent=1))
    nbformat.write(nb, out.with_suffix(".ipynb"))
    if args.smoke:
        shutil.rmtree(data, ignore_errors=True)
    print(f"wrote {out}: wall {res['wall_s']} s (kernel start included), cells {res['cells_s']} s")
    return res


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    avx = "avx512f" if flags and "avx512f" in flags.group(1).split() else "avx2 only, no avx512"
    return f"{model.group(1) if model else '?'}, {os.cpu_count()} cores, {avx}"


def reparse(results: Path) -> None:
    """Each fit's accuracy again from the executed notebooks (after a parser change)."""
    for path in sorted(results.glob("book_notebook_*.json")):
        res, nb = json.loads(path.read_text()), path.with_suffix(".ipynb")
        if nb.exists():
            cells = nbformat.read(nb, as_version=4).cells
            for row in res["cells"]:
                if "section" in row:
                    row["accuracy"] = table_accuracy(cells[row["index"]])
            path.write_text(json.dumps(res, indent=1))


def table(results: Path) -> None:
    """The side by side from the two variants' JSON files."""
    got = {v: json.loads((results / f"book_notebook_{v}.json").read_text())
           for v in ("resnette", "fastai") if (results / f"book_notebook_{v}.json").exists()}
    for r in got.values():   # a run stopped by hand: its interrupted cell ended in an error
        r["cells"] = [c for c in r["cells"] if "error" not in c]
    print(f"{'section':<11}{'epochs':>7}{'book':>7}"
          + "".join(f"{v + ' acc':>14}{v + ' s':>12}" for v in got) + f"{'fastai/ours':>13}")
    for i, sec in enumerate(SECTIONS[:4]):
        epochs = 5 if i < 2 else "/".join(sorted({str(r["later_epochs"] or 5) for r in got.values()}))
        line, secs = f"{sec:<11}{epochs:>7}{BOOK[sec]:>7.1%}", {}
        for v, r in got.items():
            row = next((c for c in r["cells"] if c.get("section") == sec), None)
            acc = row.get("accuracy") if row else None
            secs[v] = row["seconds"] if row else None
            line += f"{(f'{acc:.1%}' if acc is not None else '-'):>14}{str(secs[v] or '-'):>12}"
        if secs.get("fastai") and secs.get("resnette"):
            line += f"{secs['fastai'] / secs['resnette']:>12.2f}x"
        print(line)
    for v, r in got.items():
        loads = [x[1] for x in r["loads"]]
        print(f"{v}: wall {r['wall_s']} s, cells {r.get('cells_s', '?')} s, load (1 min) "
              f"{min(loads):.1f}-{max(loads):.1f}, mean {sum(loads) / len(loads):.1f}; {r['date']}")
    if len(got) == 2:
        both = set.intersection(*({c["index"] for c in r["cells"]} for r in got.values()))
        sums = {v: [sum(c[k] for c in r["cells"] if c["index"] in both)
                    for k in ("seconds", "cpu_s")] for v, r in got.items()}
        print(f"cells both completed ({len(both)}, through cell {max(both)}): "
              + ", ".join(f"{v} {w:.0f} s / {c:.0f} cpu-s" for v, (w, c) in sums.items())
              + f"; fastai/resnette wall {sums['fastai'][0] / sums['resnette'][0]:.2f}x, "
              f"cpu {sums['fastai'][1] / sums['resnette'][1]:.2f}x")
    if len(got) == 2 and all(r.get("completed") for r in got.values()):
        ratio = got["fastai"]["wall_s"] / got["resnette"]["wall_s"]
        print(f"notebook wall, fastai / resnette: {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["resnette", "fastai"])
    ap.add_argument("--table", action="store_true", help="the side by side from the JSON files")
    ap.add_argument("--reparse", action="store_true", help="accuracies again from the .ipynb files")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--later-epochs", type=int, default=None,
                    help="epochs of the two-ResBlock and ResNet-18 fits (default: the book's 5)")
    ap.add_argument("--fits", type=int, default=4, help="run through the N-th fit_one_cycle cell")
    ap.add_argument("--venv", type=Path, default=VENV)
    ap.add_argument("--home", type=Path, default=None, help="RESNETTE_HOME (default: new, empty)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--fit-epochs", type=int, default=None, help="every fit this many epochs")
    ap.add_argument("--skip", nargs="*", default=[], help="leave out cells containing these")
    ap.add_argument("--tag", default="", help="suffix of the result files' names")
    args = ap.parse_args()
    if args.reparse:
        reparse(RESULTS)
    if args.table or args.reparse:
        table(RESULTS)
    elif args.variant:
        run(args)
    else:
        ap.error("give --variant or --table")


if __name__ == "__main__":
    main()
