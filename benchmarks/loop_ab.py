"""The training step before and after a change, interleaved: benchmarks/loop.py on two trees.

    git worktree add /work/wt-before 6eef584
    python benchmarks/loop_ab.py --before /work/wt-before --after . --rounds 3

Issue 17's "the step must not slow down with the new callback events": runs this tree's
benchmarks/loop.py (the same script for both) in fresh processes with PYTHONPATH at each tree's
root, so `import resnette` is that tree's code, alternating which goes first round by round
(before/after, after/before, ...), each with its own empty RESNETTE_HOME. Compares the medians of
the epoch's img/s (a whole Learner training epoch with quiet output: loader, the step, the
callback machinery, the schedule) and of epoch/model-only (the same run's model-only step rate,
which takes out part of the machine's changing load). Writes benchmarks/results/loop_ab.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(tree: Path, args: argparse.Namespace) -> list[dict]:
    """One loop.py process on `tree`'s resnette; its rows, with the load average at its end."""
    out = Path(tempfile.mkdtemp(prefix="loop-ab-")) / "loop.json"
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()),
               RESNETTE_HOME=tempfile.mkdtemp(prefix="loop-ab-home-"))
    check = subprocess.run([sys.executable, "-c", "import resnette; print(resnette.__file__)"],
                           env=env, capture_output=True, text=True, check=True,
                           cwd=tempfile.gettempdir()).stdout.strip()   # not the cwd's resnette
    assert check.startswith(str(tree.resolve())), f"{check} is not under {tree}"
    cmd = [sys.executable, str(HERE / "loop.py"), "--nets", *args.nets, "--train", str(args.train),
           "--bs", str(args.bs), "--out", str(out)]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    rows = json.loads(out.read_text())["rows"]
    for r in rows:
        r["load"] = os.getloadavg()[0]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, default=HERE.parent)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nets", nargs="+", default=["simple_cnn"])
    ap.add_argument("--train", type=int, default=1280)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "loop_ab.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for i in range(args.rounds):
        order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
        for side in order:
            rows = one(getattr(args, side), args)
            runs[side] += rows
            print(f"round {i} {side:<7}" + "".join(
                f"  {r['net']}: epoch {r['epoch_img_s']:.0f} img/s, model-only "
                f"{r['model_only_img_s']:.0f}, ratio {r['ratio']:.0%}, load {r['load']:.1f}"
                for r in rows), flush=True)
    summary = {}
    print(f"{'net':<12}{'side':<8}{'epoch img/s':>12}{'model img/s':>12}{'epoch/model':>12}")
    for net in args.nets:
        for side in ("before", "after"):
            rs = [r for r in runs[side] if r["net"] == net]
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("epoch_img_s", "model_only_img_s", "ratio")}
            summary[f"{net}/{side}"] = med
            print(f"{net:<12}{side:<8}{med['epoch_img_s']:>12.1f}{med['model_only_img_s']:>12.1f}"
                  f"{med['ratio']:>12.1%}")
        b, a = summary[f"{net}/before"], summary[f"{net}/after"]
        print(f"{net}: after/before epoch img/s {a['epoch_img_s'] / b['epoch_img_s']:.3f}, "
              f"epoch/model ratio {a['ratio'] / b['ratio']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        before=str(args.before), after=str(args.after),
                                        args={k: str(v) for k, v in vars(args).items()},
                                        runs=runs, medians=summary), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
