"""How much the training loop costs on top of the model: Learner epoch vs model-only steps.

    python benchmarks/loop.py --nets simple_cnn xresnet18 --train 1280

For each net, on the same machine state (measured back to back, model-only before and after
the epoch, their mean used): the model-only training step (forward, loss, backward, Adam
step on one fixed batch, like benchmarks/chapter14.py) and a whole Learner training epoch
over `--train` Imagenette images (loading from the warm cache, augmentation, the schedule,
the progress bookkeeping and the loss reads included; validation excluded by giving the
Learner a one-batch validation set and subtracting its time). The target (issue 4): the
epoch runs at >= 90% of the model-only rate. Writes benchmarks/results/loop.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import resnette
from chapter14 import DATA, model_only_rate, make_subset
from resnette.models import create_model


def measure(name: str, root: Path, bs: int) -> dict:
    dls = resnette.data.folder(root, size=128, presize=160, bs=bs, seed=0)
    learn = resnette.Learner(dls, create_model(name, n_out=dls.c), lr=3e-3, quiet=True, seed=0)
    before = model_only_rate(learn, name)
    start = time.perf_counter()
    learn.fit_one_cycle(1, 3e-3)
    total = time.perf_counter() - start
    start = time.perf_counter()
    learn.validate()
    valid = time.perf_counter() - start
    after = model_only_rate(learn, name)
    n = len(dls.train) * bs
    epoch_rate = n / (total - valid)
    model_rate = (before + after) / 2
    return dict(net=name, images=n, model_only_img_s=model_rate, model_only_before=before,
                model_only_after=after, epoch_img_s=epoch_rate, ratio=epoch_rate / model_rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["simple_cnn", "xresnet18"])
    ap.add_argument("--train", type=int, default=1280, help="training images in the timed epoch")
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "loop.json")
    args = ap.parse_args()
    # a subset: `--train` training images and one batch of validation images
    root = make_subset(DATA, args.train, valid_limit=args.bs)
    rows = [measure(n, root, args.bs) for n in args.nets]
    print(f"{'net':<14}{'model-only img/s':>18}{'epoch img/s':>13}{'epoch/model':>13}")
    for r in rows:
        print(f"{r['net']:<14}{r['model_only_img_s']:>18.1f}{r['epoch_img_s']:>13.1f}{r['ratio']:>13.0%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
