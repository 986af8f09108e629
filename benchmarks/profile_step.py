"""Where a CPU training step's time goes (issue 25 #4): xresnet18's step under torch.profiler,
its operators' own (self) CPU time grouped into what they are.

    python benchmarks/profile_step.py [--arch xresnet18] [--size 128] [--bs 64] [--steps 3]
                                      [--precision auto] [--channels-last auto|yes|no]

The step is the Learner's: forward under autocast, cross-entropy, backward, the Learner's AdamW
(train/optim.make_optimizer: fused on a CPU), zero_grad, in the precision and memory format
`resolve("auto")` picks on this CPU unless told otherwise. Groups: convolutions (forward and
backward, oneDNN), batchnorm, ReLU, pooling, layout conversions and dtype casts (copy_, to,
contiguous, reorders), the optimizer, the loss, and the rest. Prints a table with each
group's share and writes benchmarks/results/profile_step.json, so the next thing to make
faster is visible.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from resnette.models import create_model
from resnette.train.optim import make_optimizer
from resnette.train.precision import autocast, cpu_kind, resolve

RESULTS = Path(__file__).resolve().parent / "results" / "profile_step.json"
# first match wins: (group, substrings of the operator's name)
GROUPS = [("convolution", ("conv", "mkldnn_convolution")),
          ("batchnorm", ("batch_norm", "batchnorm")),
          ("relu", ("relu", "threshold", "clamp_min")),
          ("pooling", ("pool", "mean")),
          ("optimizer", ("_foreach", "adam", "_fused", "lerp", "addcdiv", "addcmul", "sqrt")),
          ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
          ("layout and casts", ("copy_", "to_copy", "contiguous", "reorder", "clone", "_to_dense",
                                "empty_strided")),
          ("linear", ("addmm", "mm", "linear")),
          ("gradient bookkeeping", ("zero_", "fill_", "add_", "sum", "mul"))]


def group_of(name: str) -> str:
    low = name.lower()
    return next((g for g, keys in GROUPS if any(k in low for k in keys)), "other")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="xresnet18")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precision", default="auto")
    p.add_argument("--channels-last", default="auto", choices=("auto", "yes", "no"))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    cl = {"auto": None, "yes": True, "no": False}[args.channels_last]
    compute = resolve(args.precision, "cpu", cl)
    fmt = torch.channels_last if compute.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = create_model(args.arch, n_out=10).to(memory_format=fmt).train()
    x = torch.randn(args.bs, 3, args.size, args.size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (args.bs,))
    opt = make_optimizer("adamw", model, lr=1e-3, wd=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with autocast(compute.precision, "cpu"):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()                                   # warm-up: oneDNN primitives, weight reorders
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - t0) / args.steps
    by_group: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        us = e.self_cpu_time_total / args.steps
        by_group[group_of(e.key)] += us
        by_op[e.key] += us
    total = sum(by_group.values())
    layout = "channels-last" if compute.channels_last else "NCHW"
    print(f"{args.arch}, {args.size} px, bs {args.bs}, {compute.precision}, {layout}, CPU kind "
          f"{cpu_kind()}, {torch.get_num_threads()} threads: {wall:.2f} s a step under the "
          f"profiler ({args.bs / wall:.1f} img/s)")
    print(f"\n{'group':<22} {'ms/step':>8} {'share':>6}")
    for g, us in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"{g:<22} {us / 1e3:>8.1f} {100 * us / total:>5.1f}%")
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:15]
    print(f"\n{'operator (self time)':<44} {'ms/step':>8} {'group':<20}")
    for op, us in top:
        print(f"{op[:44]:<44} {us / 1e3:>8.1f} {group_of(op):<20}")
    result = {"arch": args.arch, "size": args.size, "bs": args.bs, "precision": compute.precision,
              "channels_last": compute.channels_last, "cpu_kind": cpu_kind(),
              "date": time.strftime("%Y-%m-%d"), "seconds_per_step": wall,
              "groups_ms": {g: us / 1e3 for g, us in by_group.items()},
              "top_ops_ms": {op: us / 1e3 for op, us in top}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
