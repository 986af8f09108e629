"""Regenerate examples/chapter14.ipynb with its outputs: the chapter executed for real.

    python examples/execute_chapter14.py --data ../shared/data/imagenette2-224sq

Executes the notebook in a real Jupyter kernel (nbclient + ipykernel), as a reader would run it,
so that GitHub shows every table, progress bar and picture. Papermill-style, ONE visible cell is
injected right after the `parameters` cell (tagged `injected-parameters`): it points both of the
chapter's URLs (IMAGENETTE_160 and IMAGENETTE_320) at --data, a folder laid out as the archives
(`train/`, `val/`), and sets LATER_EPOCHS / BOTTLENECK_EPOCHS. After the run a markdown cell
(tagged `run-report`) right after that one says which sections ran at the book's epochs, which
were shortened and to how many, the CPU, torch, the date, and each fit's time and final accuracy
beside the book's. Every executed code cell gets `metadata.resnette.source_sha256` (the sha256 of
its source as executed) and `seconds`, so tests/test_notebook_outputs.py can tell outputs that
belong to the code from outputs left under an edited cell.

The notebook is read as committed, less a previous run's injected cell, report and outputs; it is
written atomically (a temporary file, then a rename): an interrupted run leaves the old file as it
was. A failing cell stops the run; what ran is still written, the report saying where it stopped;
`kill PID` (SIGTERM) interrupts the running cell and does the same; --last-start HH:MM (UTC)
ends the run cleanly before the first cell that would start later (to end a long run in time).
--smoke: a 20-images-per-class subset, every fit 1 epoch, written to --out (default: a file in
the temporary folder), to check the mechanics in a minute. The decode caches go to --home
(default: a new temporary folder: the run then includes building them, as a reader's first run).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "chapter14.ipynb"
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from book_parts import table_accuracy  # noqa: E402  (the epoch table's last accuracy)

# The fits in order: (section, the book's epochs, the book's final accuracy, from the chapter's
# printed tables: 14_resnet, "epoch train_loss valid_loss accuracy time").
SECTIONS = [("plain net", 5, 0.659108), ("first ResBlock net", 5, 0.667771),
            ("two-ResBlock net", 5, 0.692739), ("ResNet-18, `ResNet(dls.c, [2,2,2,2])`", 5, 0.757197),
            ("ResNet-50 bottleneck, 224 px", 20, 0.872611)]
INJECTED = """\
# Injected by examples/execute_chapter14.py for the committed run (papermill-style; not the book's).
# Both of the chapter's URLs point at one local Imagenette folder (official train/ and val/).
# That copy stores every image squashed to 224x224 px: the 160 sections decode it at 160 px as
# the chapter does, and the 320 section (ResNet-50 at 224 px) reads these 224 px images
# (Resize(320) upsamples them), where the book read imagenette2-320.
import os
from pathlib import Path
os.environ['RESNETTE_URL_IMAGENETTE_160'] = Path({rel!r}).resolve().as_uri()
os.environ['RESNETTE_URL_IMAGENETTE_320'] = Path({rel!r}).resolve().as_uri()
LATER_EPOCHS = {later!r}
BOTTLENECK_EPOCHS = {bottleneck!r}"""


class TimeUp(Exception):
    """--last-start passed: the run ends cleanly before the next cell (nothing interrupted)."""


def source_sha256(source: str) -> str:
    """The hash a code cell's outputs are tied to (tests compare it with the committed source)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as committed, less a previous run: its injected cell, report, outputs, hashes."""
    nb.cells = [c for c in nb.cells if not {"injected-parameters", "run-report"} & tags(c)]
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
            c.metadata.pop("resnette", None)
            c.metadata.pop("execution", None)
    return nb


def cpu() -> dict:
    """The CPU as /proc/cpuinfo names it, the flags that decide resnette's precision, the cores."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    found = re.search(r"flags\s*:\s*(.*)", info)
    flags = set(found.group(1).split()) if found else set()
    have = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return dict(model=model.group(1).strip() if model else platform.processor() or "?",
                flags=have, cores=os.cpu_count())


def fits_plan(later: int | None, bottleneck: int | None) -> list[int]:
    """The epochs each fit runs, as the notebook's cells compute them."""
    return [5, 5, later or 5, later or 5, bottleneck or later or 20]


def header(info: dict) -> str:
    """The report's first paragraph: how, where, on what and when the notebook was executed."""
    import torch
    return ("**This run** (written by `examples/execute_chapter14.py`, which regenerates this "
            "notebook in one command; see the README). "
            f"Executed {info['date']} on {info['cpu']['model']} "
            f"({', '.join(info['cpu']['flags']) or 'no AVX2'}; {info['cpu']['cores']} cores, "
            f"shared with other work), torch {torch.__version__}, resnette at commit "
            f"{info['commit']}, on {info['data']} (official split, {info['n_train']:,} training "
            f"and {info['n_valid']:,} validation images, stored squashed to 224 px; see the "
            f"injected cell above). The whole notebook took {info['wall_min']:.0f} min.")


def finished(cell: nbformat.NotebookNode) -> bool:
    """A code cell that ran to its end: executed() recorded its hash, and it raised nothing."""
    return ("source_sha256" in cell.metadata.get("resnette", {})
            and not any(o.get("output_type") == "error" for o in cell.get("outputs", [])))


def stop_at_unfinished(nb: nbformat.NotebookNode) -> str | None:
    """The last line of the first code cell that started but did not finish (an error, an
    interrupt, a dead kernel), after clearing it and every code cell below it: a reader sees
    where the run stopped, never a half table or a traceback. None when every started cell ended."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    first = next((i for i, c in enumerate(cells)
                  if (c.execution_count is not None or c.outputs) and not finished(c)), None)
    if first is None:
        return None
    for c in cells[first:]:
        c.outputs, c.execution_count = [], None
        c.metadata.pop("resnette", None)
        c.metadata.pop("execution", None)
    return cells[first].source.splitlines()[-1]


def report(nb: nbformat.NotebookNode, plan: list[int], head: str, stopped: str | None) -> str:
    """The run-report cell's markdown, from the notebook's own cells: each fit's time from its
    metadata, its accuracy from its epoch table (the numbers a reader sees below)."""
    fits = [c for c in nb.cells if c.cell_type == "code" and "fit_one_cycle(" in c.source]
    done = [finished(c) for c in fits]
    full = [SECTIONS[i][0] for i in range(len(fits)) if done[i] and plan[i] == SECTIONS[i][1]]
    short = [f"{SECTIONS[i][0]}: {plan[i]} epoch{'s' * (plan[i] != 1)} (book {SECTIONS[i][1]})"
             for i in range(len(fits)) if done[i] and plan[i] != SECTIONS[i][1]]
    lines = [head, "",
             "- At the book's epochs: " + (", ".join(full) if full else "none") + ".",
             "- Shortened: " + ("; ".join(short) if short else "none") + "."]
    if stopped:
        lines.append(f"- **The run stopped** {stopped}; that cell and the cells after it have "
                     "no outputs.")
    lines += ["", "| section | epochs (book) | time | accuracy | book's accuracy |",
              "|---|---|---|---|---|"]
    for i, (name, book_epochs, book_acc) in enumerate(SECTIONS):
        if i < len(fits) and done[i]:
            acc = table_accuracy(fits[i])
            seconds = fits[i].metadata["resnette"]["seconds"]
            lines.append(f"| {name} | {plan[i]} ({book_epochs}) | {seconds / 60:.1f} min "
                         f"| {'-' if acc is None else f'{acc:.1%}'} | {book_acc:.1%} after "
                         f"{book_epochs} |")
        else:
            lines.append(f"| {name} | not run ({book_epochs}) | - | - | {book_acc:.1%} after "
                         f"{book_epochs} |")
    lines += ["", "The book's times are a GPU's; a shortened fit is a shorter 1cycle schedule, so "
              "its accuracy is not the book's to compare with."]
    return "\n".join(lines)


def write(nb: nbformat.NotebookNode, out: Path) -> None:
    """Validated, then atomically: a temporary file beside `out`, renamed over it."""
    nbformat.validate(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, out.stat().st_mode & 0o777 if out.exists() else 0o666 & ~umask)
    os.replace(partial, out)


def injected_plan(nb: nbformat.NotebookNode) -> list[int]:
    """The epochs per fit that the notebook's injected cell set."""
    (cell,) = [c for c in nb.cells if "injected-parameters" in tags(c)]
    found = dict(re.findall(r"^(LATER_EPOCHS|BOTTLENECK_EPOCHS) = (None|\d+)$", cell.source,
                            re.M))
    value = {k: None if v == "None" else int(v) for k, v in found.items()}
    return fits_plan(value.get("LATER_EPOCHS"), value.get("BOTTLENECK_EPOCHS"))


def finish(path: Path, why: str) -> int:
    """An executed notebook whose run was killed mid-cell (a dead kernel leaves that cell half
    done): clear the unfinished cell and those below, rewrite the report's body, keep its header."""
    nb = nbformat.read(path, as_version=4)
    (rep,) = [c for c in nb.cells if "run-report" in tags(c)]
    cell = stop_at_unfinished(nb)
    rest = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is None]
    stopped = (f"in the cell `{cell}` ({why})" if cell else
               f"before the cell `{rest[0].source.splitlines()[-1]}` ({why})" if rest else None)
    rep.source = report(nb, injected_plan(nb), rep.source.split("\n\n")[0], stopped)
    write(nb, path)
    print(f"finished {path}: " + (f"stopped {stopped}" if stopped else "every started cell ended"))
    return 0


def smoke_data(root: Path, per_class: int, tmp: Path) -> Path:
    """A subset of `root`: `per_class` images per class in train/ and val/ (symbolic links)."""
    out = tmp / "smoke-data"
    for split in ("train", "val"):
        for cls in sorted((root / split).iterdir()):
            (out / split / cls.name).mkdir(parents=True)
            for f in sorted(cls.iterdir())[:per_class]:
                (out / split / cls.name / f.name).symlink_to(f)
    return out


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def execute(args: argparse.Namespace) -> int:
    if args.data is None:
        print("error: give --data <an extracted Imagenette folder>", file=sys.stderr)
        return 2
    if not (args.data / "train").is_dir() or not (args.data / "val").is_dir():
        print(f"error: {args.data} has no train/ and val/ folders: give --data an extracted "
              "Imagenette (official split)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="chapter14-run-"))
    data = smoke_data(args.data.resolve(), 20, tmp) if args.smoke else args.data.resolve()
    later, bottleneck = (1, 1) if args.smoke else (args.later_epochs, args.bottleneck_epochs)
    out = args.out or (tmp / "chapter14.ipynb" if args.smoke else NOTEBOOK)
    home = args.home or tmp / "home"
    nb = clean(nbformat.read(NOTEBOOK, as_version=4))
    params = [i for i, c in enumerate(nb.cells) if "parameters" in tags(c)]
    if len(params) != 1:
        print("error: the notebook needs exactly one cell tagged 'parameters'", file=sys.stderr)
        return 2
    rel = os.path.relpath(data, NOTEBOOK.parent)
    injected = nbformat.v4.new_code_cell(
        INJECTED.format(rel=rel, later=later, bottleneck=bottleneck),
        metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(params[0] + 1, injected)
    plan = fits_plan(later, bottleneck)
    starts: dict[int, float] = {}

    def started(cell, cell_index, **_) -> None:
        if last_start is not None and datetime.datetime.now(datetime.timezone.utc) > last_start:
            raise TimeUp(f"--last-start {args.last_start} UTC passed before this cell")
        starts[cell_index] = time.perf_counter()

    def executed(cell, cell_index, **_) -> None:
        seconds = round(time.perf_counter() - starts[cell_index], 1)
        cell.metadata["resnette"] = {"source_sha256": source_sha256(cell.source),
                                     "seconds": seconds}
        last = cell.source.splitlines()[-1][:60] if cell.source else ""
        extra = ""
        if "fit_one_cycle(" in cell.source:
            extra = f"  accuracy {table_accuracy(cell)}"
        print(f"{time.strftime('%H:%M:%S')} [cell {cell_index:>2}] {seconds:>8.1f} s  {last}"
              f"{extra}", flush=True)

    last_start = None
    if args.last_start:
        now = datetime.datetime.now(datetime.timezone.utc)
        hour, minute = (int(x) for x in args.last_start.split(":"))
        last_start = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    env = dict(os.environ, RESNETTE_HOME=str(home))
    client = NotebookClient(nb, kernel_name="python3", timeout=None, startup_timeout=600,
                            record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
                            on_cell_execute=started, on_cell_executed=executed)
    info = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                cpu=cpu(), commit=commit(),
                data=("a 20-images-per-class subset of the shared Imagenette copy" if args.smoke
                      else "the shared Imagenette copy"),
                n_train=sum(1 for f in (data / "train").glob("*/*")),
                n_valid=sum(1 for f in (data / "val").glob("*/*")))
    print(f"executing {NOTEBOOK.name} (commit {info['commit']}) on {data}; RESNETTE_HOME={home};"
          f" epochs per fit {plan}", flush=True)
    interrupted = []

    def interrupt(signum, frame) -> None:   # `kill PID`: stop the running cell, keep what ran
        interrupted.append(signum)
        provisioner = getattr(client.km, "provisioner", None) if client.km else None
        if provisioner is not None and provisioner.pid:
            os.kill(provisioner.pid, signal.SIGINT)

    signal.signal(signal.SIGTERM, interrupt)
    t0, stopped = time.perf_counter(), None
    try:
        client.execute(env=env)
    except TimeUp as e:   # out of time: the cells from here on stay unexecuted
        stopped = "before the cell `" + next(
            c.source.splitlines()[-1] for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and i > max(starts, default=-1)) + f"`: {e}"
        print(f"[stopped] {e}", flush=True)
    except Exception as e:  # an error, an interrupt, a dead kernel: keep what ended before it
        cell = stop_at_unfinished(nb)
        why = ("interrupted" if interrupted else
               str(e).strip().splitlines()[-1][:120] if str(e).strip() else type(e).__name__)
        stopped = f"in the cell `{cell}` ({why})" if cell else f"({why})"
        print(f"[stopped] {type(e).__name__}: {str(e)[-400:]}", flush=True)
    info["wall_min"] = (time.perf_counter() - t0) / 60
    nb.cells.insert(params[0] + 2, nbformat.v4.new_markdown_cell(
        report(nb, plan, header(info), stopped), metadata={"tags": ["run-report"]}))
    write(nb, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {info['wall_min']:.1f} min"
          + (f"; stopped {stopped}" if stopped else ""), flush=True)
    return 1 if stopped else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None,
                    help="an extracted Imagenette folder (train/, val/), used for both URLs")
    ap.add_argument("--later-epochs", type=int, default=None,
                    help="LATER_EPOCHS (default None: the book's)")
    ap.add_argument("--bottleneck-epochs", type=int, default=None,
                    help="BOTTLENECK_EPOCHS, the ResNet-50 section's (default None: the book's 20)")
    ap.add_argument("--home", type=Path, default=None,
                    help="RESNETTE_HOME for the decode caches (default: a new temporary folder)")
    ap.add_argument("--out", type=Path, default=None, help="default: examples/chapter14.ipynb")
    ap.add_argument("--last-start", default=None, metavar="HH:MM",
                    help="UTC: start no cell after this time (the rest stay unexecuted, the report"
                         " says so); a long fit is never cut in the middle")
    ap.add_argument("--smoke", action="store_true",
                    help="20 images per class, 1-epoch fits, written to a temporary folder")
    ap.add_argument("--finish", type=Path, default=None, metavar="NOTEBOOK",
                    help="only tidy an executed notebook whose run was killed mid-cell")
    ap.add_argument("--why", default="killed: out of time", help="with --finish: the reason")
    args = ap.parse_args()
    return finish(args.finish, args.why) if args.finish else execute(args)


if __name__ == "__main__":
    sys.exit(main())
