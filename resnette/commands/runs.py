"""`resnette runs`: the run folders side by side, read only (resnette/run/compare*.py).

    resnette runs [PATH|GLOB ...] [--sort KEY] [--where KEY=VALUE ...] [--json]
    resnette runs diff A B
    resnette runs plot A B C [-o curves.png]
    resnette runs html [PATH ...] [-o runs.html]

A run is named by its folder or by its name under runs/. Nothing is imported at module level
beyond the standard library, and none of this imports torch: listing answers at once.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ACTIONS = ("diff", "plot", "html")
ROOT = "runs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's flags (resnette/cli.py calls this when `runs` is the command)."""
    p.add_argument("items", nargs="*", metavar="[diff|plot|html] RUN",
                   help="run folders, folders of runs or globs (default: runs/); a first word "
                   "diff (two runs), plot or html for those views")
    p.add_argument("--sort", metavar="KEY", help="name, data, arch, size, epochs, accuracy "
                   "(acc), top_k_accuracy (top5), valid_loss (loss), train_loss, time, date, state "
                   "or a config key (accuracies: best first)")
    p.add_argument("--where", action="append", metavar="KEY=VALUE", help="keep runs whose "
                   "column or config key matches (also !=, <, <=, >, >=; wildcards); repeatable")
    p.add_argument("--reverse", action="store_true", help="reverse the order")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("-o", "--out", help="plot: the PNG file (default: runs.png); html: the page "
                   "(default: runs.html)")


def main(args: argparse.Namespace) -> None:
    from resnette.utils import ResnetteError

    items = list(args.items)
    action = items.pop(0) if items and items[0] in ACTIONS else "list"
    if args.out and action not in ("plot", "html"):
        raise ResnetteError("-o/--out is for `resnette runs plot` and `resnette runs html`")
    if action == "diff":
        _diff(items)
        return
    runs = _selected(items, args.where, args.sort, args.reverse)
    if action == "plot":
        _plot(runs, "runs.png" if args.out is None else args.out)
    elif action == "html":
        _html(runs, "runs.html" if args.out is None else args.out)
    elif args.json:
        from resnette.display import to_json
        from resnette.run.compare_view import as_json
        print(to_json([as_json(s) for s in runs]))
    else:
        _list(runs, items, args.where)


def resolve(item: str) -> Path:
    """A run given by path, or by its name under runs/ (`resnette runs diff a b`)."""
    path = Path(item)
    if not path.exists() and not any(c in item for c in "*?[") and (Path(ROOT) / item).is_dir():
        return Path(ROOT) / item
    return path


def _selected(items: list[str], where: list[str] | None, sort: str | None, reverse: bool):
    from resnette.run.compare import load_runs
    from resnette.run.compare_select import select

    paths = [resolve(i) for i in items] or [Path(ROOT)]
    if not items and not Path(ROOT).is_dir():
        return []
    return select(load_runs(paths), where or (), sort, reverse)


def _list(runs, items: list[str], where: list[str] | None) -> None:
    from resnette.display import term
    from resnette.run.compare_view import table

    if not runs:
        place = term(" ".join(items) or f"{ROOT}/")
        there = len(_selected(items, None, None, False)) if where else 0
        if there:   # the runs are there, the tests left none: say so, not "no runs"
            tests = " ".join(f"--where {term(w)}" for w in where or ())
            print(f"none of the {there} run(s) in {place} passes {tests}", file=sys.stderr)
        else:
            print(f"no runs in {place} (train one: resnette train --data digits)",
                  file=sys.stderr)
        return
    print(table(runs))


def _diff(items: list[str]) -> None:
    from resnette.run.compare import load_runs
    from resnette.run.compare_view import diff_text
    from resnette.utils import ResnetteError

    if len(items) != 2:
        raise ResnetteError(f"`resnette runs diff` compares two runs, got {len(items)}: "
                            "resnette runs diff RUN_A RUN_B")
    pair = []
    for item in items:
        found = load_runs([resolve(item)])
        if len(found) != 1:
            raise ResnetteError(f"{item} is not one run folder ({len(found)} runs there); "
                                "name one run")
        pair.append(found[0])
    print(diff_text(*pair))


def _plot(runs, out: str) -> None:
    from resnette.display import term
    from resnette.run.compare_view import plot_runs
    from resnette.utils import ResnetteError

    drawn = [s for s in runs if s.metrics]
    if not drawn:
        raise ResnetteError("none of these runs has a finished epoch (metrics.csv) to draw")
    plot_runs(drawn, _output(out, "runs plot"))
    print(f"{len(drawn)} run(s) drawn in {term(out, raw_bytes=True)}")


def _html(runs, out: str) -> None:
    from resnette.display import term
    from resnette.run.compare_view import page
    from resnette.files import write_text

    text = page(runs)
    write_text(_output(out, "runs html"), text)
    print(f"{len(runs)} run(s) compared in {term(out, raw_bytes=True)}")


def _output(out: str, verb: str) -> Path:
    """-o's file, never a run's own file, a FIFO or a folder (resnette/files/owned.py)."""
    from resnette.files import output

    return output(out, verb)
