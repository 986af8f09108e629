"""The chapter's four 128 px experiments on Imagenette, and how much the training loop costs.

    python benchmarks/chapter14.py                          # all four nets, 5 epochs each (long!)
    python benchmarks/chapter14.py --only simple_cnn        # one net
    python benchmarks/chapter14.py --limit 512 --epochs 1   # a smoke run on 512 train images

Settings are the chapter's: presize 160, random-resized crop 128 (min_scale 0.5) with the
aug_transforms-style batch augmentation, bs 128, Adam(W) with fastai's defaults, lr 3e-3,
fit_one_cycle(5). The book's numbers (their GPU): 65.9%, 66.8%, 69.3%, 75.7%.

Besides accuracy and wall time per epoch it measures, for each net, the model-only training
step rate (forward, loss, backward, step on one fixed batch, same precision and memory format
as the Learner) and compares the Learner's epoch throughput against it: the loop, loading and
augmentation included, should reach >= 90% of it. lr_find runs once (on the first net).
Results: a table on stdout and benchmarks/results/chapter14.json. The machine is shared, so
timings are noisy; run it when the CPU is otherwise idle.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import resnette
from resnette.models import create_model
from resnette.train.optim import make_optimizer
from resnette.train.precision import autocast
from resnette.utils import atomic_write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-224sq"
RESULTS = Path(__file__).resolve().parent / "results" / "chapter14.json"
NETS = {"simple_cnn": 65.9, "resblock_cnn": 66.8, "resblock2_cnn": 69.3, "xresnet18": 75.7}


def model_only_rate(learn, name: str, steps: int = 8, warmup: int = 2) -> float:
    """Images/s of forward+loss+backward+step on one fixed batch, as the Learner runs them."""
    model = create_model(name, n_out=learn.dls.c).to(learn.device)
    if learn.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(learn.settings.opt, model, 3e-3, learn.settings.wd)
    x, y = next(iter(learn.dls.train))
    x, y = x.clone(), y.clone()
    times = []
    for _ in range(steps + warmup):
        start = time.perf_counter()
        with autocast(learn.precision, learn.device.type):
            loss = learn.loss_func(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss.detach())   # wait for the device
        times.append(time.perf_counter() - start)
    return len(y) / float(np.median(times[warmup:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=list(NETS), help="run one net")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--limit", type=int, help="use a random subset of N images per split (smoke run)")
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--lr-find-it", type=int, default=100, help="lr_find iterations (0: skip it)")
    ap.add_argument("--data", type=Path, default=DATA, help="an Imagenette folder (train/, val/)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data}")
    root = args.data
    if args.limit:
        root = make_subset(root, args.limit)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    results = {"machine": device_name or platform.machine(), "threads": torch.get_num_threads(),
               "data": str(args.data), "date": time.strftime("%Y-%m-%d"),
               "epochs": args.epochs, "bs": args.bs, "lr": args.lr, "limit": args.limit, "nets": {}}
    for i, name in enumerate([args.only] if args.only else list(NETS)):
        dls = resnette.data.folder(root, size=128, presize=160, bs=args.bs, min_scale=0.5, seed=0,
                                   device=args.device)
        torch.manual_seed(0)
        learn = resnette.Learner(dls, create_model(name, n_out=dls.c), lr=args.lr,
                                 metrics=["accuracy"], precision=args.precision, seed=0)
        entry = {"precision": learn.precision}
        if i == 0 and args.lr_find_it:
            start = time.perf_counter()
            found = learn.lr_find(num_it=args.lr_find_it)
            entry["lr_find"] = {"minimum/10": found.minimum, "steep": found.steepest,
                                "valley": found.valley, "seconds": time.perf_counter() - start}
            found.plot(args.out.with_name(args.out.stem + "_lr_find.png"))
            print(f"lr_find ({name}): minimum/10 {found.minimum:.2e}, steep {found.steepest:.2e}, "
                  f"valley {found.valley:.2e}")
        learn.fit_one_cycle(args.epochs, args.lr)
        # measured right after the epochs, so both see the same machine state (it is shared)
        rate = model_only_rate(learn, name)
        print(f"{name}: model-only training step {rate:.1f} img/s ({learn.precision})")
        rows = learn.recorder.rows
        n_train = len(dls.train) * dls.train.bs
        # an epoch's time includes validation; the train part alone is what the rate compares to
        start = time.perf_counter()
        learn.validate()
        valid_s = time.perf_counter() - start
        train_rate = n_train / (np.median([r["time"] for r in rows]) - valid_s)
        entry.update(accuracy=rows[-1]["accuracy"], book=NETS[name] / 100, rows=rows,
                     epoch_seconds=[r["time"] for r in rows], model_only_img_s=rate,
                     epoch_img_s=train_rate, loop_efficiency=train_rate / rate,
                     total_minutes=sum(r["time"] for r in rows) / 60, valid_seconds=valid_s)
        results["nets"][name] = entry
    print("\nnet            accuracy  book    s/epoch  model-only img/s  epoch img/s  loop/model")
    for name, e in results["nets"].items():
        print(f"{name:<14}{e['accuracy']:>8.1%}  {e['book']:.1%}  {np.median(e['epoch_seconds']):>7.0f}"
              f"  {e['model_only_img_s']:>16.1f}  {e['epoch_img_s']:>11.1f}  {e['loop_efficiency']:>10.0%}")
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    print(f"wrote {args.out}")


def make_subset(src: Path, limit: int, valid_limit: int | None = None) -> Path:
    """A folder of symlinks to a seeded random `limit` images per split (`valid_limit` for val)."""
    import tempfile
    dst = Path(tempfile.mkdtemp(prefix="resnette-ch14-"))
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        files = sorted((src / split).glob("*/*"))
        n = valid_limit if split == "val" and valid_limit is not None else limit
        for i in rng.permutation(len(files))[:n]:
            f = files[i]
            (dst / split / f.parent.name).mkdir(parents=True, exist_ok=True)
            (dst / split / f.parent.name / f.name).symlink_to(f)
    return dst


if __name__ == "__main__":
    main()
