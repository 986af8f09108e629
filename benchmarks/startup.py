"""How long `resnette train` spends outside its epochs: starting (imports, data, model,
Learner) and finishing (evaluation, plots, exit). Issue 13's target on a CPU: < 2 s.

    python benchmarks/startup.py                      # --data digits, 1 and 2 epochs, 3 rounds
    python benchmarks/startup.py --before /tmp/old    # and an older checkout, round by round
    python benchmarks/startup.py --cli --rounds 7     # `resnette --version`, `--help`, `recipes`,
                                                      # `runs`, `cache`: wall time, fresh processes

Each round runs `python -m resnette train --data digits --epochs N --quiet` in a fresh
process (after one warm-up run, so the OS file cache is warm, as it is for a user's second
run) and measures its wall time from outside. metrics.csv gives each epoch's time (from the
epoch's start to the end of its validation); metrics.csv is rewritten after every epoch, so
its modification time marks the end of the last epoch's save. Then

    outside = wall - sum(epoch times)                 what the issue measures
    finish  = process exit - metrics.csv written      evaluation, plots, teardown
    start   = outside - finish                        everything before and between epochs

Prints a table (medians over the rounds) and writes benchmarks/results/startup.json.
With --cli it times the commands that should answer at once (issue 19: < 0.3 s on 2 cores,
no torch) and writes benchmarks/results/startup_cli.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "startup.json"
CLI_RESULTS = RESULTS.with_name("startup_cli.json")
CLI_COMMANDS = (["--version"], ["--help"], ["recipes"], ["runs"], ["cache"])


def cli_time(args: list[str], src: str | None) -> float | None:
    """Wall seconds of `python -m resnette ARGS` in a fresh process (None: it failed, e.g. a
    command the older checkout does not have), with an empty home and working folder."""
    with tempfile.TemporaryDirectory(prefix="resnette-cli-") as tmp:
        env = {**os.environ, "RESNETTE_HOME": tmp}
        if src:
            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "resnette", *args], env=env, cwd=tmp,
                              capture_output=True)
        wall = time.perf_counter() - t0
    return wall if proc.returncode == 0 else None


def cli_main(sources: dict, rounds: int, out: Path) -> None:
    for src in sources.values():
        cli_time(["--version"], src)   # warm-up: the OS file cache, bytecode caches
    times: dict = {label: {" ".join(a): [] for a in CLI_COMMANDS} for label in sources}
    for _ in range(rounds):   # alternating commands and checkouts: both see the same load
        for args in CLI_COMMANDS:
            for label, src in sources.items():
                times[label][" ".join(args)].append(cli_time(args, src))
    rows = []
    print(f"python -m resnette ARGS in a fresh process, median of {rounds} (wall s)")
    print(f"{'command':>10} " + " ".join(f"{label:>8}" for label in sources))
    for args in CLI_COMMANDS:
        name = " ".join(args)
        meds = {label: (None if None in times[label][name] else
                        round(statistics.median(times[label][name]), 3)) for label in sources}
        rows.append({"command": name, **meds, "rounds": {k: times[k][name] for k in sources}})
        print(f"{name:>10} " + " ".join(f"{'failed' if v is None else f'{v:.3f}':>8}"
                                        for v in meds.values()))
    write(out, {"commands": rows})


def write(out: Path, record: dict) -> None:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "load_1min_at_end": load,
              "python": platform.python_version(), **record}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} (load average {load})")


def one_run(epochs: int, src: str | None, data: str) -> dict:
    # the detached `resnette report` may still be drawing into the run when we clean up
    with tempfile.TemporaryDirectory(prefix="resnette-startup-", ignore_cleanup_errors=True) as tmp:
        run = Path(tmp) / "run"
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "resnette", "train", "--data", data, "--epochs", str(epochs),
               "--run-dir", str(run), "--quiet"]
        t0 = time.time()
        proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        t1 = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        with open(run / "metrics.csv", newline="") as f:
            epoch_times = [float(r["time"]) for r in csv.DictReader(f)]
        saved = (run / "metrics.csv").stat().st_mtime
    wall = t1 - t0
    outside = wall - sum(epoch_times)
    finish = t1 - saved
    return {"wall_s": wall, "epochs_s": sum(epoch_times), "outside_s": outside,
            "start_s": outside - finish, "finish_s": finish}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--before", metavar="DIR", help="also run this checkout (a folder holding "
                    "resnette/, e.g. `git archive OLD resnette | tar -x -C DIR`), alternating "
                    "with the installed one round by round, so both see the same machine load")
    ap.add_argument("--after", metavar="DIR", help="run this checkout as `after` instead of the "
                    "installed resnette (e.g. HEAD's committed files only, like --before)")
    ap.add_argument("--cli", action="store_true", help="time the at-once commands instead")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    sources = {"after": args.after, **({"before": args.before} if args.before else {})}
    if args.cli:
        return cli_main(sources, args.rounds, Path(args.out or CLI_RESULTS))
    args.out = args.out or str(RESULTS)
    for src in sources.values():
        one_run(1, src, args.data)   # warm-up: the OS file cache, Python's bytecode cache
    rows = []
    for epochs in args.epochs:
        runs: dict[str, list[dict]] = {label: [] for label in sources}
        for _ in range(args.rounds):
            for label, src in sources.items():
                runs[label].append(one_run(epochs, src, args.data))
        for label, got in runs.items():
            med = {k: statistics.median(r[k] for r in got) for k in got[0]}
            rows.append({"code": label, "epochs": epochs, **{k: round(v, 3) for k, v in med.items()},
                         "rounds": [{k: round(v, 3) for k, v in r.items()} for r in got]})

    print(f"resnette train --data {args.data} --epochs N --quiet, median of {args.rounds} "
          f"(after: the installed resnette; before: {args.before})")
    print(f"{'code':>6} {'epochs':>6} {'wall s':>8} {'epochs s':>9} {'outside s':>10} "
          f"{'start s':>8} {'finish s':>9}")
    for r in rows:
        print(f"{r['code']:>6} {r['epochs']:>6} {r['wall_s']:>8.2f} {r['epochs_s']:>9.2f} "
              f"{r['outside_s']:>10.2f} {r['start_s']:>8.2f} {r['finish_s']:>9.2f}")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    record = {"data": args.data, "before": args.before, "date": time.strftime("%Y-%m-%d"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_1min_at_end": load, "python": platform.python_version(), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
