"""Tune the `digits` preset on a split of the digits TRAINING set (never its validation set).

    python benchmarks/tune_digits.py --arch resblock_cnn --epochs 8 --lr 1e-2 --bs 64

`resnette train --data digits` splits scikit-learn's 1,797 digits 80/20 with seed 0 (the
validation set, 359 images). Here the 1,438 training images are split again, 80/20 with
another seed: 1,150 to train on, 288 to tune on. Each call trains one setting and prints,
per epoch, the tuning-split loss and accuracy, then appends one JSON line to
benchmarks/results/tune_digits.jsonl. The validation set is never built.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from resnette.data.arrays import from_arrays
from resnette.data.digits import DIGITS_SIZE, _load_digits
from resnette.models import create_model
from resnette.train import Learner
from resnette.utils import seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "tune_digits.jsonl"


def tuning_loaders(size: int, bs: int, seed: int, augment: bool | str):
    """The training part of `digits(seed=0)`, split again: (train, tune) Loaders."""
    presize = max(DIGITS_SIZE, size)
    pixels, target = _load_digits()
    small = np.round(pixels * (255 / 16)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((presize, presize),
                                                            Image.Resampling.BILINEAR)) for im in small])
    images = np.repeat(big[..., None], 3, axis=-1)
    n = len(target)
    valid = np.zeros(n, dtype=bool)   # exactly the split resnette's digits() makes with seed 0
    valid[np.random.default_rng(0).permutation(n)[: int(round(n * 0.2))]] = True
    train_idx = np.flatnonzero(~valid)
    tune = np.zeros(n, dtype=bool)
    tune[np.random.default_rng(1234).permutation(train_idx)[: int(round(len(train_idx) * 0.2))]] = True
    fit = ~valid & ~tune
    assert not (tune & valid).any() and not (fit & valid).any()
    vocab = [str(d) for d in range(10)]
    return from_arrays(images, target.astype(np.int64), [f"d/{i}" for i in range(n)], tune, fit,
                       vocab, vocab, size=size, bs=bs, seed=seed, augment=augment)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="resblock_cnn")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--pct-start", type=float, default=0.25)
    ap.add_argument("--augment", default="none")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    seed_everything(args.seed)
    aug = False if args.augment == "none" else args.augment
    dls = tuning_loaders(args.size, args.bs, args.seed, aug)
    model = create_model(args.arch, n_out=10, c_in=3)
    learn = Learner(dls, model, quiet=True, wd=args.wd, label_smoothing=args.label_smoothing)
    t0 = time.time()
    learn.fit_one_cycle(args.epochs, args.lr, pct_start=args.pct_start)
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
            for r in learn.recorder.rows]
    record = {**vars(args), "fit_s": round(time.time() - t0, 1), "rows": rows,
              "final_acc": rows[-1]["accuracy"], "max_valid_loss": max(r["valid_loss"] for r in rows),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    for r in rows:
        print(r)
    print(json.dumps({k: v for k, v in record.items() if k != "rows"}))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
