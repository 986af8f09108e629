"""Tune a recipe honestly: train on 90% of Imagenette's TRAINING set, score on the other 10%.

    python benchmarks/tune.py --name base --epochs 5 --sizes 128           # the chapter's settings
    python benchmarks/tune.py --name p64 --epochs 4 --sizes 64,64,96,112 --test-sizes 128,160

The official validation set is never read here: every choice of docs/RECIPES.md was made on
the tuning split this script carves (seeded, per class, so every class keeps its share), and
only the final recipes were then run on the validation set (benchmarks/recipes.py).
`--sizes` gives one training size per epoch (progressive resizing); `--test-sizes` the
sizes the held-out split is scored at after training (the train/test resolution discrepancy:
random-resized crops make objects look bigger in training than in a plain resize, so the
best test size is usually larger than the last training size). Appends one JSON line per run
to benchmarks/results/tune.jsonl.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import resnette
from resnette.models import create_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-224sq"
OUT = Path(__file__).resolve().parent / "results" / "tune.jsonl"


def tuning_split(src: Path, dst: Path, pct: float = 0.1, seed: int = 0) -> Path:
    """`dst/{train,valid}/<class>/` as symlinks into `src/train`: `pct` of each class held out."""
    if (dst / "valid").is_dir():
        return dst
    rng = np.random.default_rng(seed)
    for cls in sorted(p for p in (src / "train").iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        held = set(rng.permutation(len(files))[:round(pct * len(files))].tolist())
        for i, f in enumerate(files):
            split = "valid" if i in held else "train"
            (dst / split / cls.name).mkdir(parents=True, exist_ok=True)
            (dst / split / cls.name / f.name).symlink_to(f)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--arch", default="xresnet18")
    ap.add_argument("--model-opts", default="{}", help="JSON of model options, e.g. '{\"widen\": 0.5}'")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--sizes", default="128", help="training size per epoch (one value = all epochs)")
    ap.add_argument("--test-sizes", default="128")
    ap.add_argument("--presize", type=int, default=160)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--opt", default="adamw")
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--sched", default="one_cycle", choices=["one_cycle", "flat_cos"])
    ap.add_argument("--pct-start", type=float, default=0.25)
    ap.add_argument("--ls", type=float, default=0.0, help="label smoothing")
    ap.add_argument("--min-scale", type=float, default=0.5)
    ap.add_argument("--aug", default="chapter", choices=["chapter", "flip"], help="flip: crop + flip only (--aug crop_flip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split-dir", type=Path, default=Path("/tmp/resnette-tune"))
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data}")
    root = tuning_split(args.data, args.split_dir)
    sizes = [int(s) for s in args.sizes.split(",")]
    sizes = sizes * args.epochs if len(sizes) == 1 else sizes
    assert len(sizes) == args.epochs, "--sizes needs one value or one per epoch"
    t0 = time.perf_counter()
    dls = resnette.data.folder(root, size=sizes[0], presize=args.presize, bs=args.bs,
                               min_scale=args.min_scale, seed=args.seed,
                               augment="crop_flip" if args.aug == "flip" else "chapter")
    data_s = time.perf_counter() - t0
    torch.manual_seed(args.seed)
    model = create_model(args.arch, n_out=dls.c, **json.loads(args.model_opts))
    progressive = [(e, s) for e, s in enumerate(sizes) if e == 0 or s != sizes[e - 1]]
    learn = resnette.Learner(dls, model, opt=args.opt, lr=args.lr, wd=args.wd, metrics=["accuracy"],
                             label_smoothing=args.ls, progressive=progressive, seed=args.seed)
    t1 = time.perf_counter()
    if args.sched == "one_cycle":
        learn.fit_one_cycle(args.epochs, args.lr, pct_start=args.pct_start)
    else:
        learn.fit_flat_cos(args.epochs, args.lr, pct_start=args.pct_start)
    fit_s = time.perf_counter() - t1
    tests = {}
    for s in [int(s) for s in args.test_sizes.split(",")]:
        dls.valid.size = s
        start = time.perf_counter()
        tests[s] = {**learn.score(), "seconds": time.perf_counter() - start}
        print(f"test size {s}: accuracy {tests[s]['accuracy']:.2%} ({tests[s]['seconds']:.0f} s)")
    row = {"name": args.name, **{k: v for k, v in vars(args).items() if k not in ("data", "split_dir")},
           "sizes": sizes, "data_s": data_s, "fit_s": fit_s, "epochs_s": [r["time"] for r in learn.recorder.rows],
           "acc_by_epoch": [r["accuracy"] for r in learn.recorder.rows], "tests": tests,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in ("name", "fit_s", "acc_by_epoch")}))


if __name__ == "__main__":
    main()
