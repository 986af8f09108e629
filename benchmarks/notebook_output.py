"""What the notebook's live output (train/progress.py's HTML bar and table) costs an epoch.

    python benchmarks/notebook_output.py

Runs in a real Jupyter kernel (nbclient + ipykernel): times one redraw of the HTML area (one
`update_display_data` message to the front end) and one bar update that does not redraw (a
clock read), then trains the same small Learner with the output on and off, interleaved.
The loop updates the bar only where it reads the losses anyway (every SYNC_EVERY batches) and
redraws at most every REDRAW_S seconds and never sooner than 1/REDRAW_SHARE times its last
cost, so the bound is min(redraw_s / REDRAW_S, REDRAW_SHARE) of an epoch plus the updates.
Writes benchmarks/results/notebook_output.json. (B's benchmarks/output_cost.py compares a
kernel with a pipe.)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbclient
import nbformat

TESTS = Path(__file__).resolve().parents[1] / "tests"

CODE = f"""
import sys, time, json, torch
sys.path.insert(0, {str(TESTS)!r})
from fakes import FakeDataLoaders, tiny_net
from resnette.train import Learner
from resnette.train.progress import FitProgress, REDRAW_S, REDRAW_SHARE
p = FitProgress(["epoch", "train_loss", "valid_loss", "accuracy", "time"], 10)
for e in range(5):
    p.write_row({{"epoch": e, "train_loss": 0.5, "valid_loss": 0.4, "accuracy": 0.9, "time": 3}})
p.start_epoch(5, 1000)
t = time.perf_counter()
for _ in range(200):
    p._draw()
redraw = (time.perf_counter() - t) / 200
p.gap = 3600   # no redraw: what every other update costs
t = time.perf_counter()
for _ in range(2000):
    p.update(10, 0.5)
update = (time.perf_counter() - t) / 2000
times = {{"on": [], "off": []}}
for rep in range(3):
    for quiet in (False, True):
        torch.manual_seed(0)
        learn = Learner(FakeDataLoaders(n_train=960, n_valid=16), tiny_net(), lr=1e-2,
                        quiet=quiet)
        t = time.perf_counter()
        learn.fit(2)
        times["off" if quiet else "on"].append((time.perf_counter() - t) / 2)
print(json.dumps(dict(redraw_s=redraw, update_s=update, redraw_every_s=REDRAW_S,
                      redraw_share=REDRAW_SHARE, batches_per_epoch=len(learn.dls.train),
                      epoch_s=times)))
"""


def main() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CODE)])
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3").execute()
    text = [o["text"] for o in nb.cells[0].outputs if o.get("name") == "stdout"][-1]
    r = json.loads(text.strip().splitlines()[-1])
    on, off = sorted(r["epoch_s"]["on"])[1], sorted(r["epoch_s"]["off"])[1]
    bound = min(r["redraw_s"] / r["redraw_every_s"], r["redraw_share"])
    print(f"one redraw {r['redraw_s'] * 1e3:.3f} ms, one update without redraw "
          f"{r['update_s'] * 1e6:.2f} us; bound: redraws cost <= {bound:.2%} of any epoch")
    print(f"epoch ({r['batches_per_epoch']} batches) with output {on:.3f} s, quiet {off:.3f} s "
          f"(medians of 3 interleaved): {on / off - 1:+.1%}")
    out = Path(__file__).parent / "results" / "notebook_output.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "load": os.getloadavg(),
                               **r, "bound": bound}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
