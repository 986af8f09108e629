"""Where a command may write what the user names with --out: the gate's one rule
(resnette/files/owned.py `output`), said in each command's words.

`report --out` and `export --out` took any path; one inside a run folder could replace its
config, weights or metrics (`report --out runs/x/config.toml`, `runs plot -o
runs/x/model.safetensors` did). Inside a run folder only the command's own outputs
(report.html, model.onnx, export/, ...) may be written; never a FIFO, device, link or folder.
"""
from __future__ import annotations

from pathlib import Path

from resnette.files import output


def guard_output(out: str | Path, own: tuple[str, ...], verb: str, makes_parents: bool = False,
                 folder: bool = False) -> Path:
    """`out` made absolute, or one line why `verb` may not write there: inside a run folder
    only `own` (names or fnmatch patterns at the run's top); `makes_parents`: the command
    creates missing parent folders (lr-find's plot), else a missing one is a typo to report;
    `folder`: the output is a folder (export --format safetensors)."""
    return output(out, verb, own=own, makes_parents=makes_parents, folder=folder)
