"""`resnette report runs/<name>`: one self-contained HTML page about a run.

Self-contained means the page is a single file that can be mailed or archived: the plots
are embedded as base64 `data:` URIs, the style is inline, and nothing is fetched.
"""
from __future__ import annotations

import argparse
import base64
import html
from pathlib import Path
from typing import Any, Callable, Sequence

from resnette.display import PAGE_STYLE, show, show_setting, term
from resnette.run.claim import open_existing
from resnette.run.outputs import guard_output
from resnette.measures import (ACCURACY, EVALUATION, TOP_K, TOP_K_K, VALID_LOSS, sizes_text,
                               words)
from resnette.run.config import as_dict, eval_size
from resnette.run.drawing import draw_run
from resnette.run.folder import PLOT_NAMES, Run
from resnette.run.reading import (check_run_files, other_evaluations, read_config,
                                  read_evaluation, read_metrics)
from resnette.run.lock import lock_run
from resnette.run.setup import sizes_per_epoch
from resnette.files import make_folder, read_bytes, write_text

_STYLE = PAGE_STYLE

_CAPTIONS = {
    "curves": "The training and validation objective (left) and the metrics (right) after "
              "each epoch that measured them; each line's last value is written beside it.",
    "lr_find": "Learning rate finder: loss while the learning rate grows exponentially.",
    "confusion": "Confusion matrix on the validation set (rows: actual, columns: predicted).",
    "batch": "A batch of augmented training images, as the model saw them.",
    "top_losses": "The validation images with the highest loss.",
}


def build_report(run_path: str | Path, out: str | Path | None = None) -> Path:
    """Draw the run's plots from its files (resnette.run.drawing), then write the report
    of the run at `run_path` (default `run_path/report.html`)."""
    run = open_existing(run_path)
    # the page's place (also the default one: a FIFO there), and every file it is made from,
    # are checked before anything is drawn: a refused report changes nothing
    out = guard_output(out or run.report, ("report.html",), "report")
    check_run_files(run)
    make_folder(run.plots, "the run's plots")
    draw_run(run)
    page = render(run)
    return write_text(out, page)


def render(run: Run) -> str:
    """The page, from the run's files, each checked (resnette.run.reading)."""
    cfg = read_config(run.config)
    config = as_dict(cfg)
    metrics = read_metrics(run.metrics)
    evaluation = read_evaluation(run.evaluation)
    others = other_evaluations(run)
    sizes = sizes_per_epoch(cfg)
    parts = [f"<h1>resnette run: {_e(run.name)}</h1>",
             _summary(config, metrics, evaluation, sizes_text(sizes, eval_size(cfg)))]
    if metrics:
        parts += ["<h2>Training</h2>", _training(metrics, config, sizes)]
    if evaluation:
        parts.append(_evaluation(evaluation))
    if others:
        parts += ["<h2>Other evaluations</h2>", "<p>Kept beside the run's own evaluation "
                  "(evaluations/*.json); the numbers above and the plots are not these.</p>",
                  _table(["evaluated", "n", *EVALUATION],
                         [(describe(ev), ev["n"], *(_measure(ev, k) for k in EVALUATION))
                          for ev in others])]
    on = describe(evaluation) if evaluation else "the validation set"
    captions = {**_CAPTIONS,
                "confusion": _CAPTIONS["confusion"].replace("the validation set", on),
                "top_losses": _CAPTIONS["top_losses"].replace("validation images",
                                                              f"images of {on}")}
    figures = [_figure(run.plot(k), captions[k]) for k in PLOT_NAMES if run.plot(k).is_file()]
    if figures:
        parts += ["<h2>Plots</h2>", *figures]
    parts += ["<h2>Configuration</h2>",
              _table(["key", "value"], sorted(config.items()), show_setting, by_row=True)]
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>resnette: {_e(run.name)}</title><style>{_STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def describe(ev: dict) -> str:
    """What an evaluation measured, in words: `the validation set at 128 px, with flip TTA`."""
    split = ev.get("split", "valid")
    what = {"valid": "the validation set", "train": "the training set"}.get(
        split, f"the folder {ev.get('folder', split)}")
    size = f" at {ev['size']} px" if isinstance(ev.get("size"), int) else ""
    return what + size + (", with flip TTA" if ev.get("tta") else "")


def _summary(config: dict, metrics: dict, evaluation: dict | None, sizes: str) -> str:
    """The run at a glance: a two-column table whose left column names each row."""
    items = [("data", config.get("data")), ("architecture", config.get("arch")),
             ("image sizes (training per epoch; test: evaluate, predict, export)", sizes),
             ("epochs", len(metrics.get("epoch", [])))]
    for key in (ACCURACY, VALID_LOSS):
        if metrics.get(key):
            items.append((f"final {key}: {words(key, config)}", show(key, metrics[key][-1])))
    if evaluation:   # the run's own: its validation set (older runs may say otherwise)
        items.append((f"accuracy on {describe(evaluation)}",
                      show(ACCURACY, evaluation.get(ACCURACY))))
    return _table(None, items)


def _training(metrics: dict[str, list], config: dict, sizes: list[int]) -> str:
    """The epoch table as the console and metrics.csv show it (fastai's column names), with
    each epoch's training image size after it, then what each column is."""
    columns = [*metrics, "size"]
    epochs = metrics.get("epoch") or [None] * len(next(iter(metrics.values()), []))
    rows = [[*r, sizes[e] if isinstance(e, int) and 0 <= e < len(sizes) else None]
            for r, e in zip(zip(*metrics.values()), epochs)]
    said = [(k, words(k, config)) for k in metrics if k not in ("epoch", "time")] + [
        ("time", "the epoch's wall-clock time (mm:ss)"),
        ("size", "the epoch's training image size in pixels (progressive resizing)")]
    legend = "".join(f"<li><code>{_e(k)}</code>: {_e(w)}</li>" for k, w in said)
    note = ("<p>The columns are fastai's, as in the epoch table and metrics.csv; an epoch that "
            "was not validated has its validation columns empty.</p>")
    return _table(columns, rows) + note + f"<ul>{legend}</ul>"


def _measure(ev: dict[str, Any], key: str) -> Any:
    """A measure of an evaluation as the report shows it: top-5 only above 5 classes (an
    older evaluation.json may hold its meaningless 1.0)."""
    classes = ev.get("names") or ev.get("per_class")   # unknown in the oldest: shown as stored
    if key == TOP_K and classes and len(classes) <= TOP_K_K:
        return None
    return ev.get(key)


def _evaluation(ev: dict[str, Any]) -> str:
    rows = [("n", ev["n"], "images evaluated")] + [
        (k, ev[k], words(k)) for k in EVALUATION if _measure(ev, k) is not None]
    out = ["<h2>Evaluation</h2>", f"<p>On {_e(describe(ev))} (evaluation.json). Its loss is "
           "plain cross-entropy, whatever the run trained on, so runs with and without label "
           "smoothing compare.</p>",
           _table(["measure", "value", "what it is"], rows, by_row=True)]
    per_class = ev.get("per_class") or {}
    if per_class:
        out.append(_table(["class", ACCURACY, "n"],
                          [(name, v["accuracy"], v["n"]) for name, v in per_class.items()]))
    return "\n".join(out)


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(read_bytes(path, "plot")).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(path.stem)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]],
           fmt: Callable[[str, Any], str] = show, by_row: bool = False) -> str:
    """An HTML table (no header row when `header` is None). Each cell is written by
    resnette.display's rule for its column's name or, with `by_row` (a key/value table), for
    its row's name."""
    def cell(row: Sequence[Any], j: int) -> str:
        if by_row:
            return str(row[0]) if j == 0 else fmt(str(row[0]), row[j])
        return fmt(header[j] if header else "", row[j])

    head = "" if header is None else ("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header)
                                      + "</tr></thead>")
    body = "".join("<tr>" + "".join(f"<td>{_e(cell(row, j))}</td>" for j in range(len(row)))
                   + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _e(v: Any) -> str:
    """HTML text of a name as the terminal shows it (resnette.display.term: control
    characters escaped, a byte of a file name that is not UTF-8 as \\xNN)."""
    return html.escape(term(v))


def main(args: argparse.Namespace) -> None:
    # the plots are drawn into the run folder: locked (shared) like evaluate and export
    with lock_run(open_existing(args.run).path, "resnette report", "report draws its plots there: "
                  "make it writable, or copy the run to a writable place", shared=True):
        print(f"report: {term(build_report(args.run, args.out), raw_bytes=True)}")
