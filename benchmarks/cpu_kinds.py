"""The measured decision table behind `resnette.train.precision`: per CPU kind, which precision
and memory format train xresnet18 fastest, and what `resolve("auto")` picks there.

    python benchmarks/cpu_kinds.py [--steps 3] [--bs 64] [--size 128] [--kinds native,avx512_bf16,avx2]

One CPU can stand in for the kinds below it: oneDNN (convolutions, matrix products) obeys
ONEDNN_MAX_CPU_ISA and PyTorch's own vectorised kernels (batchnorm, ReLU, pooling, the
optimizer) obey ATEN_CPU_CAPABILITY, so on an AMX Xeon each kind runs in its own process with
both capped:

    native        the machine as it is (AMX where it has it)
    avx512_bf16   AVX512-BF16 without AMX (a Cooper Lake / Zen 4 stand-in)
    avx2          AVX2 only: bf16 is emulated (an AMD EPYC Zen 2/3 stand-in)

A stand-in is not the real chip (its clocks, caches and memory differ), so the table says
which rows were measured natively. For every kind x precision x memory format: xresnet18's
training images/s (`resnette.commands.bench.train_rate`, the median of --steps steps after a
warm-up), the bf16 and fp32 matrix-product rates in the same process, and the step's share of
the rate of its own precision. Prints a table, writes benchmarks/results/cpu_kinds.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cpu_kinds.json"
CAPS = {"native": {}, "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
        "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def child(args: argparse.Namespace) -> None:
    """One kind, in this process: every precision x format, printed as one JSON line."""
    import torch

    from resnette.commands import bench
    from resnette.models import create_model, summary
    from resnette.train.precision import cpu_kind, resolve
    rates = {p: bench.matmul_rate(d, n=512, reps=5) for p, d in
             (("bf16", torch.bfloat16), ("fp32", torch.float32))}
    emulated = os.environ.get("ATEN_CPU_CAPABILITY") == "avx2" or cpu_kind() in ("avx2", "other")
    rows = []
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            # emulated bf16 takes ~1 s an image: a small batch, one step, says enough
            bs, steps = (8, 1) if precision == "bf16" and emulated else (args.bs, args.steps)
            torch.manual_seed(0)
            model = create_model(args.arch, n_out=10)
            macs = summary(model, size=args.size).macs
            t0 = time.perf_counter()
            rate = bench.train_rate(model, bs=bs, size=args.size, precision=precision,
                                    channels_last=channels_last, steps=steps, warmup=1)
            flops = bench.train_flops_per_image(macs) * rate
            rows.append({"precision": precision, "channels_last": channels_last, "bs": bs,
                         "train_img_s": rate, "share_of_matmul": flops / rates[precision],
                         "seconds": time.perf_counter() - t0})
    auto = resolve("auto", "cpu")
    print(json.dumps({"rates": rates, "rows": rows, "flag_kind": cpu_kind(),
                      "auto": [auto.precision, auto.channels_last]}))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="native,avx512_bf16,avx2")
    p.add_argument("--arch", default="xresnet18")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.child:
        return child(args)
    flags = set(Path("/proc/cpuinfo").read_text().split())
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    print(f"{cpu_name()} ({', '.join(have)}), {os.cpu_count()} cores; {args.arch}, "
          f"{args.size} px, bs {args.bs}, median of {args.steps} steps")
    head = f"{'kind':<12} {'precision':<9} {'format':<13} {'img/s':>7} {'% of its matmul':>15}"
    print(head + "\n" + "-" * len(head))
    kinds = {}
    for kind in args.kinds.split(","):
        env = {**os.environ, **CAPS[kind]}
        cmd = [sys.executable, __file__, "--child", "--arch", args.arch, "--bs", str(args.bs),
               "--size", str(args.size), "--steps", str(args.steps)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        kinds[kind] = res = json.loads(out.strip().splitlines()[-1])
        for r in res["rows"]:
            fmt = "channels-last" if r["channels_last"] else "NCHW"
            print(f"{kind:<12} {r['precision']:<9} {fmt:<13} {r['train_img_s']:>7.1f} "
                  f"{100 * r['share_of_matmul']:>14.0f}%  (bs {r['bs']})", flush=True)
        best = max(res["rows"], key=lambda r: r["train_img_s"])
        print(f"{'':<12} fastest: {best['precision']} {'channels-last' if best['channels_last'] else 'NCHW'}; "
              f"matmul bf16 {res['rates']['bf16'] / 1e9:.0f}, fp32 {res['rates']['fp32'] / 1e9:.0f} "
              f"GFLOP/s", flush=True)
    result = {"cpu": cpu_name(), "flags": have, "date": time.strftime("%Y-%m-%d"),
              "command": " ".join(["python", "benchmarks/cpu_kinds.py", *sys.argv[1:]]),
              "arch": args.arch, "bs": args.bs, "size": args.size, "steps": args.steps,
              "kinds": kinds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
