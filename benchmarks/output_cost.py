"""What the notebook's live output costs an epoch: the same fit in a Jupyter kernel and in a pipe.

    python benchmarks/output_cost.py --rounds 3

Issue 17's "notebook-native output adds < 1% to an epoch". The same code (a Learner on a
seeded subset of the shared Imagenette, simple_cnn, 128 px, bs 64, one warm-up fit, then
--fits timed one-epoch fits) runs in a fresh Jupyter kernel through nbclient, where the HTML bar
and the growing table are drawn, and in a fresh `python` whose stdout is a pipe, where neither
is (the text table is printed); kernel and pipe alternate round by round. simple_cnn is the
chapter's fastest net, so a fixed cost per batch shows most there. Each fit's wall time and the
process's CPU time (all its threads) are taken inside the process; medians per side. Writes
benchmarks/results/output_cost.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from chapter14 import DATA, make_subset

HERE = Path(__file__).resolve().parent
CODE = """import json, time, resnette
from resnette.models import create_model
dls = resnette.data.folder({root!r}, size=128, presize=160, bs={bs}, seed=0)
learn = resnette.Learner(dls, create_model('simple_cnn', n_out=dls.c), lr=3e-3, seed=0)
learn.fit_one_cycle(1, 3e-3)
times = []
for _ in range({fits}):
    w, c = time.perf_counter(), time.process_time()
    learn.fit_one_cycle(1, 3e-3)
    times.append([time.perf_counter() - w, time.process_time() - c])
print('TIMES', json.dumps(times))"""


def in_kernel(code: str) -> list[list[float]]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, kernel_name="python3", timeout=None).execute()
    outs = nb.cells[0].outputs
    html = sum("text/html" in o.get("data", {}) for o in outs)
    assert html, "no HTML output in the kernel: the notebook output was not drawn"
    text = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
    return json.loads(text.split("TIMES", 1)[1].strip().splitlines()[0])


def in_pipe(code: str) -> list[list[float]]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.split("TIMES", 1)[1].strip().splitlines()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fits", type=int, default=2)
    ap.add_argument("--train", type=int, default=1280)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "output_cost.json")
    args = ap.parse_args()
    root = make_subset(DATA, args.train, valid_limit=args.bs)
    code = CODE.format(root=str(root), bs=args.bs, fits=args.fits)
    got: dict[str, list] = {"kernel": [], "pipe": []}
    loads = []
    for i in range(args.rounds):
        for side in (["kernel", "pipe"] if i % 2 == 0 else ["pipe", "kernel"]):
            times = (in_kernel if side == "kernel" else in_pipe)(code)
            got[side] += times
            loads.append(os.getloadavg()[0])
            shown = ", ".join(f"{w:.2f} s ({c:.2f} cpu-s)" for w, c in times)
            print(f"round {i} {side:<6} {shown}, load {loads[-1]:.1f}", flush=True)
    med = {s: [statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)]
           for s, v in got.items()}
    for s, (w, c) in med.items():
        print(f"{s:<7} median epoch {w:.2f} s wall, {c:.2f} cpu-s")
    print(f"kernel/pipe: wall {med['kernel'][0] / med['pipe'][0]:.3f}, "
          f"cpu {med['kernel'][1] / med['pipe'][1]:.3f} (target < 1.01)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        args={k: str(v) for k, v in vars(args).items()},
                                        fits=got, medians=med, loads=loads), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
