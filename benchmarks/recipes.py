"""Accuracy against wall-clock minutes: the named recipes and the chapter's nets, one process each.

    python benchmarks/recipes.py --runs fast                       # one recipe (~12 min on 2 cores)
    python benchmarks/recipes.py --runs fast chapter:simple_cnn    # a recipe, a chapter net
    python benchmarks/recipes.py --cold --runs fast                # count the decode-cache build too
    python benchmarks/recipes.py --home /tmp/h --runs fast --tag 1st --extra --compile   # twice:
    python benchmarks/recipes.py --home /tmp/h --runs fast --tag 2nd --extra --compile   # warm

Each entry runs `resnette train --recipe NAME [--arch ARCH] --data DATA` as a fresh process and
times it from start to exit: imports, cache build (with --cold: a fresh, empty RESNETTE_HOME),
training, validation and the run folder's files; this is the time a user waits. The accuracy
is the last epoch's on the official validation split (no test-time augmentation; the `fast`
recipe validates at its --test-size, which docs/RECIPES.md explains). Writes a table, the
JSON (benchmarks/results/recipes.json, merged with earlier entries) and a plot of accuracy
against minutes (benchmarks/results/recipes.png) with the book's 75.7% as a line.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-224sq"
RESULTS = Path(__file__).resolve().parent / "results"
BOOK = 0.757   # the chapter's XResNet-18, 5 epochs at 128 px


def run_one(entry: str, data: Path, cold: bool, extra: list[str], home: Path | None = None) -> dict:
    """`entry` is a recipe name, or `recipe:arch` for a recipe with another architecture."""
    recipe, _, arch = entry.partition(":")
    # ignore_cleanup_errors: the background `resnette report` may still be writing plots/
    with tempfile.TemporaryDirectory(prefix="resnette-recipes-", ignore_cleanup_errors=True) as tmp:
        env = dict(os.environ)
        if cold or home:
            env["RESNETTE_HOME"] = str(home or Path(tmp) / "home")
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "resnette", "train", "--recipe", recipe, "--data", str(data),
               "--run-dir", str(run_dir), "--device", "cpu", *(["--arch", arch] if arch else []), *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{entry} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        config = (run_dir / "config.toml").read_text()
    epochs_s = sum(float(r["time"]) for r in rows)
    return {"entry": entry, "accuracy": float(rows[-1]["accuracy"]), "wall_minutes": wall / 60,
            "epochs_minutes": epochs_s / 60, "outside_epochs_s": wall - epochs_s, "cold": cold,
            "epochs": len(rows), "config": config, "command": " ".join(cmd[1:]),
            "machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def plot(entries: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, e in entries.items():
        ax.scatter(e["wall_minutes"], e["accuracy"] * 100)
        ax.annotate(name, (e["wall_minutes"], e["accuracy"] * 100), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.axhline(BOOK * 100, ls="--", c="grey", lw=1)
    ax.text(ax.get_xlim()[1], BOOK * 100, " book 75.7%", va="center", fontsize=8, c="grey")
    ax.set_xlabel("wall-clock minutes, whole `resnette train` process (2 CPU cores)")
    ax.set_ylabel("Imagenette validation accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=["fast"], help="recipe or recipe:arch entries")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--cold", action="store_true", help="a fresh RESNETTE_HOME: the cache build counts")
    ap.add_argument("--home", type=Path, default=None,
                    help="this RESNETTE_HOME, kept: a second run finds its caches (decoded images, "
                         "torch.compile's) warm")
    ap.add_argument("--tag", default="", help="added to the entry's name, e.g. warm")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train flags")
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data} (the shared Imagenette); nothing measured")
    out = RESULTS / "recipes.json"
    entries = json.loads(out.read_text()) if out.exists() else {}
    for entry in args.runs:
        e = run_one(entry, args.data, args.cold, args.extra, args.home)
        name = " ".join([entry, *args.extra, *([f"({args.tag})"] if args.tag else [])])
        entries[name + (" (cold)" if args.cold else "")] = e
        out.write_text(json.dumps(entries, indent=1))
    print(f"{'entry':<28}{'accuracy':>9}{'wall min':>10}{'epochs min':>12}{'outside s':>11}")
    for name, e in sorted(entries.items(), key=lambda kv: kv[1]["wall_minutes"]):
        print(f"{name:<28}{e['accuracy']:>9.1%}{e['wall_minutes']:>10.1f}{e['epochs_minutes']:>12.1f}"
              f"{e['outside_epochs_s']:>11.0f}")
    plot(entries, RESULTS / "recipes.png")
    print(f"wrote {out} and {RESULTS / 'recipes.png'}")


if __name__ == "__main__":
    main()
