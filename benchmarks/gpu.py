"""Check resnette's CUDA paths and time them, in one short run on a lent GPU.

    python benchmarks/gpu.py --data PATH_TO_IMAGENETTE --out results/gpu.json

What it checks (each a real training run, asserted, not just "it did not crash"):
- bf16 autocast (the default on GPUs that support it), fp16 with a GradScaler, fp32:
  one epoch each of xresnet18 learns (accuracy well above chance) and no loss is NaN;
- channels-last is on by default on CUDA and the loader's GPU augmentation runs there;
- torch.compile: two epochs of xresnet18, the first paying for compilation;
and what it times: the model-only training step and inference rate of the chapter's nets and
xresnet18/34/50 at 128 and 224 px in fp32/bf16 and NCHW/channels-last, with the GPU's bf16
matrix-product rate measured in the same run, and the train loader's images/s on the GPU.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import resnette
from resnette.bench import inference_rate, matmul_rate, train_flops_per_image, train_rate
from resnette.models import create_model, summary


def timed(fn):
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def precision_checks(data: Path, results: dict) -> None:
    """One epoch of xresnet18 per precision, plus torch.compile; each must learn."""
    for precision, compile_ in (("bf16", False), ("fp16", False), ("fp32", False), ("bf16", True)):
        dls = resnette.data.folder(data, size=128, presize=160, bs=128, device="cuda", seed=0)
        learn = resnette.Learner(dls, create_model("xresnet18", n_out=dls.c), lr=3e-3,
                                 precision=precision, compile=compile_, quiet=True, seed=0)
        assert learn.channels_last, "channels-last should be the default on CUDA"
        epochs = 2 if compile_ else 1
        _, seconds = timed(lambda: learn.fit_one_cycle(epochs, 3e-3))
        rows = learn.recorder.rows
        acc, loss = rows[-1]["accuracy"], rows[-1]["train_loss"]
        ok = acc > 0.2 and loss == loss
        key = f"{precision}{'+compile' if compile_ else ''}"
        results["precision"][key] = dict(accuracy=acc, train_loss=loss, seconds=seconds,
                                         epoch_seconds=[r["time"] for r in rows], ok=ok,
                                         scaler=learn.scaler is not None)
        print(f"{key:<14} {epochs} epoch(s): accuracy {acc:.3f} loss {loss:.3f} "
              f"epochs {[round(r['time'], 1) for r in rows]} s  {'OK' if ok else 'FAILED'}")


def loader_rate(data: Path, results: dict) -> None:
    dls = resnette.data.folder(data, size=128, presize=160, bs=256, device="cuda", seed=0)
    n, start = 0, time.perf_counter()
    for x, _ in dls.train:
        n += len(x)
    torch.cuda.synchronize()
    rate = n / (time.perf_counter() - start)
    results["loader_img_s"] = rate
    print(f"train loader on the GPU (bs 256, 128 px, augmented): {rate:,.0f} img/s")


def model_rates(results: dict, quick: bool) -> None:
    peak = matmul_rate(torch.bfloat16, n=8192, reps=5, device="cuda")
    results["bf16_matmul_flops"] = peak
    print(f"bf16 matrix product: {peak / 1e12:.0f} TFLOP/s")
    nets = ["simple_cnn", "resblock_cnn", "resblock2_cnn", "xresnet18", "xresnet34", "xresnet50"]
    print(f"{'net':<14}{'size':>5}{'prec':>6}{'layout':>7}{'train img/s':>12}{'infer img/s':>12}{'of bf16 peak':>13}")
    for name in nets:
        for size in (128,) if quick else (128, 224):
            macs = summary(create_model(name, n_out=10), size=size).macs
            for precision in ("fp32", "bf16"):
                for cl in (False, True):
                    kw = dict(bs=128, size=size, precision=precision, channels_last=cl, device="cuda")
                    tr = train_rate(create_model(name, n_out=10).cuda(), steps=10, warmup=3, **kw)
                    inf = inference_rate(create_model(name, n_out=10).cuda(), steps=10, warmup=3, **kw)
                    frac = tr * train_flops_per_image(macs) / peak
                    results["models"].append(dict(net=name, size=size, precision=precision,
                                                  channels_last=cl, train_img_s=tr, infer_img_s=inf,
                                                  fraction_of_bf16_peak=frac))
                    print(f"{name:<14}{size:>5}{precision:>6}{'NHWC' if cl else 'NCHW':>7}"
                          f"{tr:>12,.0f}{inf:>12,.0f}{frac:>13.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    ap.add_argument("--quick", action="store_true", help="128 px only in the model table")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%d"), "precision": {}, "models": []}
    print(results["device"], "torch", torch.__version__)
    for step in (lambda: precision_checks(args.data, results), lambda: loader_rate(args.data, results),
                 lambda: model_rates(results, args.quick)):
        try:
            step()
        except Exception as e:  # keep going: one failing path must not hide the others' numbers
            results.setdefault("errors", []).append(repr(e))
            print("FAILED:", repr(e))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
