"""What to do when a named dataset cannot be fetched, said for where the user is: the command
line (a variable set before the command, `--data <folder>`), a notebook (untar_data's `url=`)
or the chapter's notebook (resnette.book: its data-switch cell). Every fetch error of
data/sources.py ends with it.
"""
from __future__ import annotations

from resnette.notebook import in_notebook


def url_env_var(name: str) -> str:
    """`imagenette-160` -> `RESNETTE_URL_IMAGENETTE_160`."""
    return "RESNETTE_URL_" + name.upper().replace("-", "_")


def copy_advice(name: str, book: bool = False) -> str:
    """What to do without the network, worded for where the user is: the chapter's notebook
    (`book`: resnette.book, whose data-switch cell sets the address), another notebook
    (untar_data's `url=`), else the command line (a variable before the command, or
    `--data <folder>`)."""
    var = url_env_var(name)
    if book:
        return (f"to use a copy, set os.environ['{var}'] = 'file:///path/to/folder-or-archive' "
                "(or a mirror's address) in the notebook's data-switch cell (the cell tagged "
                "parameters; docs/BOOK.md, The data switch), then run the notebook again")
    if in_notebook():
        return (f"to use a copy, pass its address or file:// path: untar_data('{name}', "
                f"url=...) (or set os.environ['{var}'] first), or read a folder you have: "
                "get_data('<folder>')")
    return (f"to use a copy, set {var}=<its address or file:// path> (before the command), "
            "or train on a folder you have: --data <folder>")
