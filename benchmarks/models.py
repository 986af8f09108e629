"""How fast do the chapter's nets and XResNet-18/34/50 train and infer on this machine?

    python benchmarks/models.py            # quick: the chapter nets and xresnet18, ~2 min on 2 idle cores
    python benchmarks/models.py --full     # + xresnet34/50, bf16 for every model, 3 timed steps

For each model x precision (fp32, bf16 autocast) x memory format (NCHW, channels-last):
training images/s (forward, cross-entropy, backward, SGD step; bs 64, 128 px), inference
images/s (eval mode), and the training step's achieved FLOP/s (6 x forward multiply-adds per
image) as a fraction of this machine's bf16 and fp32 matrix-product rates measured in the
same run (measured before and after the models, the faster one counts as the peak; their
spread shows how much other processes disturbed the run). Prints a table and writes benchmarks/results/models.json.

Timings are medians of a few steps on a shared machine: expect +-15% between runs, more when
other jobs share the cores.
Where bfloat16 is emulated (CPUs without AVX-512-BF16 or AMX), a bf16 step at bs 64 takes
minutes, so bf16 is then timed at a small batch (--slow-bf16-bs), one step, and only for
xresnet18 channels-last unless --full: images/s stay comparable, within small-batch losses.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from resnette.commands import bench
from resnette.models import create_model, summary
from resnette.utils import atomic_write

QUICK_MODELS = ["simple_cnn", "resblock_cnn", "resblock2_cnn", "xresnet18"]
FULL_MODELS = [*QUICK_MODELS, "xresnet34", "xresnet50"]
RESULTS = Path(__file__).resolve().parent / "results" / "models.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def matmul_rates(device: str) -> dict[str, float]:
    return {"bf16": bench.matmul_rate(torch.bfloat16, n=512, reps=3, device=device),
            "fp32": bench.matmul_rate(torch.float32, n=512, reps=3, device=device)}


def run_config(name: str, precision: str, channels_last: bool, bs: int, args, rates) -> dict:
    model = create_model(name, n_out=10)
    macs = summary(model, size=args.size).macs
    kw = dict(bs=bs, size=args.size, precision=precision, channels_last=channels_last,
              device=args.device)
    steps = 1 if bs != args.bs else args.steps
    t0 = time.perf_counter()
    train = bench.train_rate(model, steps=steps, warmup=1, **kw)
    infer = bench.inference_rate(model, steps=steps, warmup=1, **kw)
    flops = bench.train_flops_per_image(macs) * train
    return {"model": name, "precision": precision,
            "memory_format": "channels_last" if channels_last else "nchw", "bs": bs,
            "size": args.size, "steps": steps, "gmacs_per_image": macs / 1e9,
            "train_img_s": train, "infer_img_s": infer, "infer_over_train": infer / train,
            "train_tflops": flops / 1e12,
            "frac_of_bf16_matmul": flops / rates["bf16"], "frac_of_fp32_matmul": flops / rates["fp32"],
            "seconds": time.perf_counter() - t0}


def table(rows: list[dict]) -> str:
    head = (f"{'model':<14} {'prec':<5} {'format':<14} {'bs':>3} {'train img/s':>11} "
            f"{'infer img/s':>11} {'inf/train':>9} {'GFLOP/s':>8} {'%bf16 mm':>8} {'%fp32 mm':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<14} {r['precision']:<5} {r['memory_format']:<14} {r['bs']:>3} "
                     f"{r['train_img_s']:>11.1f} {r['infer_img_s']:>11.1f} {r['infer_over_train']:>9.1f} "
                     f"{r['train_tflops'] * 1e3:>8.1f} {100 * r['frac_of_bf16_matmul']:>7.0f}% "
                     f"{100 * r['frac_of_fp32_matmul']:>7.0f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="xresnet34/50 too, bf16 everywhere, 3 steps")
    p.add_argument("--models", nargs="+", default=None, help="default: see --full")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--slow-bf16-bs", type=int, default=2,
                   help="batch size for bf16 where this machine emulates bfloat16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.steps = 3 if args.full else 1
    args.models = args.models or (FULL_MODELS if args.full else QUICK_MODELS)

    before = matmul_rates(args.device)
    rates = before
    fast_bf16 = rates["bf16"] >= rates["fp32"]
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.device}")
    print(f"matrix product (512^2): bf16 {rates['bf16'] / 1e9:.1f} GFLOP/s, "
          f"fp32 {rates['fp32'] / 1e9:.1f} GFLOP/s" + ("" if fast_bf16 else
          "  -> bf16 is emulated here; bf16 timed at a small batch"))
    rows = []
    for name in args.models:
        for precision in ("fp32", "bf16"):
            slow = precision == "bf16" and not fast_bf16
            if slow and not args.full and name != "xresnet18":
                continue
            bs = args.slow_bf16_bs if slow else args.bs
            for channels_last in (False, True):
                if slow and not args.full and not channels_last:
                    continue
                rows.append(run_config(name, precision, channels_last, bs, args, rates))
                print(table(rows[-1:]).splitlines()[-1], f"({rows[-1]['seconds']:.0f} s)", flush=True)
    after = matmul_rates(args.device)
    print(f"\nmatrix product after the run: bf16 {after['bf16'] / 1e9:.1f}, fp32 "
          f"{after['fp32'] / 1e9:.1f} GFLOP/s (before: {before['bf16'] / 1e9:.1f}, "
          f"{before['fp32'] / 1e9:.1f}); fractions use the faster of the two (the machine's\n"
          "peak: other jobs on the cores only ever slow a measurement down)\n")
    peak = {k: max(before[k], after[k]) for k in before}
    for r in rows:
        flops = r["train_tflops"] * 1e12
        r["frac_of_bf16_matmul"], r["frac_of_fp32_matmul"] = flops / peak["bf16"], flops / peak["fp32"]
    print(table(rows))
    result = {"machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "device": args.device,
                          "bf16_matmul_flops": before["bf16"], "fp32_matmul_flops": before["fp32"],
                          "bf16_matmul_flops_after": after["bf16"],
                          "fp32_matmul_flops_after": after["fp32"], "bf16_is_fast": fast_bf16},
              "command": " ".join(["python", "benchmarks/models.py", *sys.argv[1:]]),
              "rows": rows}
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
