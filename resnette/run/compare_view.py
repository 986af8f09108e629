"""Runs side by side for people: the text table, JSON, the overlaid curves, the HTML page.

Numbers are shown by resnette.display's one rule (accuracies with 6 decimals, times as mm:ss),
so a row reads exactly like the run's own training table and metrics.csv. The curves figure
is a matplotlib Figure (shown inline in a notebook, as every resnette picture); the page is
one self-contained file in the style of report.html (inline style, the figure as a data: URI).
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from resnette.display import PAGE_STYLE, format_time, show, show_setting, term
from resnette.measures import ACCURACY, TOP_K, TRAIN_LOSS, VALID_LOSS
from resnette.run.compare import RunSummary, load_runs, when
from resnette.run.compare_select import diff

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HEADER = ("name", "data", "arch", "size", "epochs", ACCURACY, TOP_K, "time", "date", "state")


def row(s: RunSummary) -> list[str]:
    """One run as the table's cells (text)."""
    data = s.data if isinstance(s.data, str) else ("" if s.data is None else str(s.data))
    if "/" in data:   # a folder: its name says enough in a table (the config has the path)
        data = Path(data).name or data
    epochs = f"{s.done}/{s.planned}" if s.planned is not None else str(s.done)
    state = f"{s.state}: {s.problem}" if s.problem else s.state
    cells = [s.name, data, s.arch or "", show("size", s.size), epochs,
             show(ACCURACY, s.accuracy), show(TOP_K, s.top_k_accuracy),
             format_time(s.wall) if s.wall is not None else "", when(s.date), state]
    return [_text(c) for c in cells]   # every cell one line of plain characters


def _text(v: Any) -> str:
    """A name as shown (resnette.display.term): control characters escaped, a byte of a file
    name that is not UTF-8 as \\xNN; one line, never a crash."""
    return term(v)


def table(runs: Sequence[RunSummary]) -> str:
    """The runs as an aligned text table (text left, numbers right)."""
    rows = [list(HEADER)] + [row(s) for s in runs]
    widths = [max(len(r[j]) for r in rows) for j in range(len(HEADER))]
    right = {"size", "epochs", ACCURACY, TOP_K, "time"}
    lines = []
    for r in rows:
        cells = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, HEADER)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def as_json(s: RunSummary) -> dict[str, Any]:
    """One run for scripts: the numbers exactly as metrics.csv holds them."""
    return {"name": _text(s.name), "path": _text(s.path), "data": s.data, "arch": s.arch,
            "size": s.size, "epochs": s.done, "planned_epochs": s.planned,
            ACCURACY: s.accuracy, TOP_K: s.top_k_accuracy, VALID_LOSS: s.valid_loss,
            TRAIN_LOSS: s.train_loss, "wall_s": s.wall, "date": when(s.date),
            "state": s.state, "problem": s.problem or None}


def diff_text(a: RunSummary, b: RunSummary) -> str:
    """`resnette runs diff A B`: the settings that differ, then the metrics and B - A."""
    config, metrics = diff(a, b)
    names = (_text(a.name), _text(b.name))
    out = []
    if a.problem or b.problem:
        out += [f"note: {_text(s.name)} is damaged: {_text(s.problem)}" for s in (a, b) if s.problem]
    rows = [["setting", *names]] + [[_text(k), _text(show_setting(k, x)), _text(show_setting(k, y))]
                                    for k, x, y in config]
    out += _aligned(rows) if config else ["the settings are the same"]
    out.append("")
    shown = {"wall": "time", "done": "epochs"}
    mrows = [["metric", *names, "B - A"]]
    for k, x, y, d in metrics:
        key = shown.get(k, k)
        fmt = (lambda v: format_time(v) if v is not None else "") if k == "wall" else \
            (lambda v, key=key: show(key, v))
        delta = "" if d is None else (("+" if d >= 0 else "-") + fmt(abs(d)).lstrip("-"))
        mrows.append([key, fmt(x), fmt(y), delta])
    out += _aligned(mrows)
    return "\n".join(out)


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w)
                      in enumerate(zip(r, widths))).rstrip() for r in rows]


def _points(metrics: dict[str, list[Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of a column, skipping epochs that were not validated (NaN)."""
    xs, ys = [], []
    for e, v in zip(metrics.get("epoch", []), metrics.get(key, [])):
        if isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(float(e))
            ys.append(float(v))
    return xs, ys


def plot_runs(runs: Iterable[RunSummary | str | Path], path: str | Path | None = None
              ) -> "Figure":
    """The runs' curves overlaid: loss (valid solid, train dashed) and accuracy per epoch, one
    colour per run. Returns the Figure (shown inline in a notebook); written as PNG to `path`.

        from resnette.run.compare_view import plot_runs
        plot_runs(["runs/a", "runs/b"])
    """
    from resnette.plots import present

    summaries = [r if isinstance(r, RunSummary) else load_runs([r])[0] for r in runs]
    return present(curves_figure(summaries), path)


def curves_figure(summaries: Sequence[RunSummary]) -> "Figure":
    """The figure of `plot_runs`, drawn and returned, shown nowhere."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4.2))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, s in enumerate(summaries):
        colour, label = f"C{i % 10}", _text(s.name)
        for key, style in (("valid_loss", "-"), ("train_loss", "--")):
            xs, ys = _points(s.metrics, key)
            if xs:
                ax_loss.plot(xs, ys, style, marker="o", ms=3, color=colour,
                             label=f"{label} ({key.split('_')[0]})")
        xs, ys = _points(s.metrics, "accuracy")
        if xs:
            ax_acc.plot(xs, ys, "-", marker="o", ms=3, color=colour, label=label)
    ax_loss.set(title="loss (valid solid, train dashed)", xlabel="epoch")
    ax_acc.set(title="accuracy (validation)", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs: 0, 1, 2, never 0.5
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    from resnette.plotfonts import as_text
    as_text(fig)   # run names drawn as text, never as mathtext
    return fig


_STYLE = PAGE_STYLE + "td.text { text-align: left; } tr.damaged td { color: #a00; }\n"


def _e(v: Any) -> str:
    return html.escape(_text(v))


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                classes: Sequence[str] = ()) -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>"
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def page(runs: Sequence[RunSummary], title: str = "resnette runs") -> str:
    """A self-contained HTML page comparing `runs`: the table, the curves, the settings that
    differ between them."""
    parts = [f"<h1>{_e(title)}</h1>", f"<p>{len(runs)} run(s).</p>",
             _html_table(HEADER, [row(s) for s in runs],
                         ["damaged" if s.problem else "" for s in runs])]
    drawn = [s for s in runs if s.metrics]
    if drawn:
        from resnette.notebook import figure_png

        png = base64.b64encode(figure_png(curves_figure(drawn))).decode("ascii")
        parts += ["<h2>Curves</h2>", f'<figure><img src="data:image/png;base64,{png}" '
                  'alt="curves"><figcaption>Loss and validation accuracy per epoch, one colour '
                  "per run.</figcaption></figure>"]
    configured = [s for s in runs if s.config]   # a damaged run's missing config is no difference
    keys = sorted({k for s in configured for k in s.config} - {"name", "run_dir"})
    differing = [k for k in keys if len({repr(s.config.get(k)) for s in configured}) > 1]
    if differing and len(configured) > 1:
        parts += ["<h2>Settings that differ</h2>",
                  _html_table(["setting", *[s.name for s in configured]],
                              [[k, *[show_setting(k, s.config.get(k)) for s in configured]]
                               for k in differing])]
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
