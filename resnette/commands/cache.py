"""`resnette cache`: the decoded-image cache's entries, and clearing them (resnette/cachedir.py).

    resnette cache                          # list: source folder, presize, size, last used
    resnette cache clear --unused-days 30   # or --missing-source, or --all

An entry in use (a training or evaluation reading it, or a run building it) is never removed;
it is named as kept. Standard library only: this answers without importing torch.
"""
from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's flags (resnette/cli.py calls this when `cache` is the command)."""
    p.add_argument("action", nargs="?", choices=("list", "clear"), default="list")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--unused-days", type=_days, metavar="N",
                     help="clear: entries not used for N days")
    how.add_argument("--missing-source", action="store_true",
                     help="clear: entries whose image folder is gone")
    how.add_argument("--all", action="store_true", help="clear: every entry not in use")
    p.add_argument("--json", action="store_true", help="list as JSON")


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of days (0 or more), got {text!r}")
    return days


def main(args: argparse.Namespace) -> None:
    from resnette import cachedir
    from resnette.compiled import compiled_dir
    from resnette.files import disk_bytes
    from resnette.utils import ResnetteError

    base = cachedir.default_dir()
    limit = cachedir.cache_limit()
    chosen = args.unused_days is not None or args.missing_source or args.all
    if args.action == "list" and chosen:
        raise ResnetteError("--unused-days, --missing-source and --all say what to clear: "
                            "resnette cache clear --all (or the others)")
    if args.action == "clear":
        if not chosen:
            raise ResnetteError("say what to clear: resnette cache clear --unused-days N, "
                                "--missing-source or --all")
        removed, busy = cachedir.clear(base, args.unused_days, args.missing_source, args.all)
        for e in removed:
            print(f"removed  {cachedir.size_text(e.bytes):>9}  {_source(e)}")
        for e in busy:
            print(f"kept     {cachedir.size_text(e.bytes):>9}  {_source(e)} (in use)")
        freed = cachedir.size_text(sum(e.bytes for e in removed))
        print(f"{len(removed)} entr{'y' if len(removed) == 1 else 'ies'} removed ({freed})"
              + (f", {len(busy)} in use kept" if busy else "") + f" in {_text(base)}")
        return
    found = cachedir.entries(base)
    if args.json:
        from resnette.display import to_json
        print(to_json([_json(e) for e in found]))
        return
    if found:
        print(_table(found))
    total = sum(e.bytes for e in found)
    # 0 is a limit (keep nothing but entries in use: each build evicts the rest), not "none"
    bound = "(no limit)" if limit is None else f"of its {cachedir.size_text(limit)} limit"
    env = cachedir.LIMIT_ENV + (": 0 keeps only entries in use" if limit == 0 else "")
    print(f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}, {cachedir.size_text(total)} "
          f"{bound} ({env}) in {_text(base)}")
    folder = compiled_dir()
    if folder.is_dir():   # torch.compile's own files: not entries, never cleared by this command
        print(f"torch.compile's caches (train --compile): "
              f"{cachedir.size_text(disk_bytes(folder))} in {_text(folder)}; delete the "
              "folder to free it")


def _source(e) -> str:
    where = _text(e.source) if e.source else "(unknown source)"
    return f"{where} at {e.presize}px" if e.presize else where


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


def _state(e) -> str:
    if e.damaged:
        return "damaged (rebuilt when next needed)"
    notes = [] if e.source_exists else ["source gone"]
    if e.in_use:
        notes.append("in use")
    return ", ".join(notes) or "ok"


def _table(found) -> str:
    from resnette import cachedir

    rows = [["source", "presize", "images", "size", "last used", "state"]]
    for e in found:   # least recently used first: the first to go when over the limit
        rows.append([_text(e.source or "?"), str(e.presize or ""), str(e.images or ""),
                     cachedir.size_text(e.bytes), _when(e.last_used), _state(e)])
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    right = {1, 2, 3}
    return "\n".join("  ".join(c.rjust(w) if j in right else c.ljust(w)
                               for j, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def _text(v: object) -> str:
    from resnette.display import term
    return term(v)


def _json(e) -> dict:
    return {"key": e.key, "path": str(e.path), "source": e.source, "presize": e.presize,
            "images": e.images, "bytes": e.bytes, "last_used": _when(e.last_used),
            "source_exists": e.source_exists, "in_use": e.in_use, "damaged": e.damaged}
