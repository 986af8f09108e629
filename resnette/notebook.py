"""Output in a Jupyter notebook: is this a kernel, and how to show a picture or live HTML there.

A leaf (no torch, no matplotlib, no IPython at import). A Jupyter kernel is recognised by its
IPython shell, never by `isatty` (a kernel's stdout is no terminal, and neither is a pipe):
IPython is only looked at when it is already imported, which every kernel has done before
running a cell, so a script or the command line never imports it.

`Live` is one output area updated in place (IPython's `display(..., display_id=True)` handle,
as fastprogress draws its bars): the training bar and the epoch table that grows row by row.
"""
from __future__ import annotations

import contextlib
import html
import io
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KERNEL_SHELLS = ("ZMQInteractiveShell",)   # ipykernel's shell: Jupyter, JupyterLab, VS Code


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel), False in a terminal IPython, a script or a pipe."""
    ipython = sys.modules.get("IPython")
    if ipython is None:   # every kernel imports IPython before running a cell
        return False
    shell = ipython.get_ipython()
    if shell is None:
        return False
    return type(shell).__name__ in KERNEL_SHELLS or "IPKernelApp" in getattr(shell, "config", {})


def show_figure(fig: "Figure") -> None:
    """Display a matplotlib figure inline as a PNG (drawn here, so no pyplot backend is needed).

    The picture methods both show their figure and return it (fastai's return None). A cell
    ending in one would then show it a second time as the cell's value, so the figure is told
    which cell showed it: IPython asks an object's `_ipython_display_` first, and this one
    draws nothing in that same cell and the picture again in any later cell (`fig` alone).
    """
    from IPython.display import Image, display
    display(Image(data=figure_png(fig), format="png"))
    shown_in = _cell_number()

    def _ipython_display_() -> None:
        if _cell_number() != shown_in:
            display(Image(data=figure_png(fig), format="png"))

    fig._ipython_display_ = _ipython_display_


def _cell_number() -> int | None:
    """The number of the cell the kernel is running (IPython's execution_count)."""
    shell = sys.modules["IPython"].get_ipython()
    return getattr(shell, "execution_count", None)


def figure_png(fig: "Figure", dpi: int = 100) -> bytes:
    """The figure as PNG bytes, drawn on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with quiet_glyphs():
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


@contextlib.contextmanager
def quiet_glyphs() -> Iterator[None]:
    """Drawing without matplotlib's warning per missing glyph ("Glyph 20013 missing from
    font(s) DejaVu Sans", once per character): resnette.plots.as_text says it once, naming
    the font to install."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font")
        yield


class Live:
    """One HTML output area of the running cell, replaced in place by `update(html)`."""

    def __init__(self, text: str = "") -> None:
        from IPython.display import HTML, display
        self._html = HTML
        self.handle = display(HTML(text), display_id=True)

    def update(self, text: str) -> None:
        self.handle.update(self._html(text))


def progress_html(value: int, total: int, label: str) -> str:
    """An HTML5 <progress> bar with a label, as fastprogress draws one."""
    return (f"<div><progress value='{value}' max='{max(total, 1)}' style='width:300px; "
            f"height:20px; vertical-align:middle;'></progress> {html.escape(label)}</div>")


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned table in the look of fastai's epoch table (pandas' 'dataframe' class)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return (f'<table border="1" class="dataframe"><thead><tr style="text-align: left;">{head}'
            f"</tr></thead><tbody>{body}</tbody></table>")
