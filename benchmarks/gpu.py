"""Check resnette's CUDA paths and time them, in short runs on a lent GPU (see benchmarks/gpu.sh).

    python benchmarks/gpu.py checks --data PATH_TO_IMAGENETTE --out results/gpu.json
    python benchmarks/gpu.py steps --out steps.json [--bs 128 256 512] [--budget 120]
    python benchmarks/gpu.py table --out table.json
    python benchmarks/gpu.py summary STAGES_DIR --out summary.json

`checks`:
What it checks (each a real training run, asserted, not just "it did not crash"):
- bf16 autocast (the default on GPUs that support it), fp16 with a GradScaler, fp32:
  one epoch each of xresnet18 learns (accuracy well above chance) and no loss is NaN;
- channels-last is on by default on CUDA and the loader's GPU augmentation runs there;
- torch.compile: two epochs of xresnet18, the first paying for compilation;
and what it times: the model-only training step and inference rate of the chapter's nets and
xresnet18/34/50 at 128 and 224 px in fp32/bf16 and NCHW/channels-last, with the GPU's bf16
matrix-product rate measured in the same run, and the train loader's images/s on the GPU.
`table` is that model table alone (128 px). `steps`: xresnet18's model-only training step
(bf16, channels-last, fused AdamW) at several batch sizes, eager, torch.compile and CUDA
graphs (compile mode "reduce-overhead"), compile time reported apart, with MFU (training
FLOPs / the bf16 matrix-product rate measured in the same run). `summary` gathers the
stage files of gpu.sh into one table and JSON. `--device cpu` runs `steps`/`table` on the
CPU in fp32 (a smoke test of the script, not a measurement).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import resnette
from resnette.commands.bench import inference_rate, matmul_rate, train_flops_per_image, train_rate
from resnette.models import create_model, summary


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


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
                                         scaler=learn.scaler.is_enabled())
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
    results["loader_placement"] = dls.train.placement
    print(f"train loader on the GPU (bs 256, 128 px, augmented; {dls.train.placement}): {rate:,.0f} img/s")


def peak_rate(device: str) -> tuple[str, float]:
    """The yardstick for MFU: bf16 matrix products on a GPU, float32 on the CPU."""
    if device.startswith("cuda"):
        return "bf16", matmul_rate(torch.bfloat16, n=8192, reps=5, device=device)
    return "fp32", matmul_rate(torch.float32, n=512, reps=3, device=device)


def model_rates(results: dict, quick: bool, device: str = "cuda", out: Path | None = None) -> None:
    kind, peak = peak_rate(device)
    results[f"{kind}_matmul_flops"] = peak
    print(f"{kind} matrix product: {peak / 1e12:.1f} TFLOP/s")
    nets = ["simple_cnn", "resblock_cnn", "resblock2_cnn", "xresnet18", "xresnet34", "xresnet50"]
    cpu = not device.startswith("cuda")
    if cpu:
        nets = nets[:1]
    print(f"{'net':<14}{'size':>5}{'prec':>6}{'layout':>7}{'train img/s':>12}{'infer img/s':>12}{'MFU':>13}")
    for name in nets:
        for size in (128,) if quick else (128, 224):
            macs = summary(create_model(name, n_out=10), size=size).macs
            for precision in ("fp32",) if cpu else ("fp32", "bf16"):
                for cl in (False, True):
                    kw = dict(bs=8 if cpu else 128, size=size, precision=precision, channels_last=cl,
                              device=device)
                    n = 2 if cpu else 10
                    tr = train_rate(create_model(name, n_out=10).to(device), steps=n, warmup=1, **kw)
                    inf = inference_rate(create_model(name, n_out=10).to(device), steps=n, warmup=1, **kw)
                    frac = tr * train_flops_per_image(macs) / peak
                    results["models"].append(dict(net=name, size=size, precision=precision,
                                                  channels_last=cl, train_img_s=tr, infer_img_s=inf,
                                                  mfu=frac))
                    print(f"{name:<14}{size:>5}{precision:>6}{'NHWC' if cl else 'NCHW':>7}"
                          f"{tr:>12,.0f}{inf:>12,.0f}{frac:>13.1%}", flush=True)
                    if out is not None:  # as it goes: a stage stopped by its timeout keeps its rows
                        write_json(out, results)




# ---- model-only training steps: eager, torch.compile, CUDA graphs ----------------------------
# Priority order: a stage stopped by its timeout still has the most useful rows. Eager rows
# are cheap; each compiled row costs ~30 s of compilation on an H100/H200.
STEP_ORDER = [("eager", 128), ("eager", 256), ("eager", 512), ("cudagraphs", 128), ("compile", 512),
              ("cudagraphs", 512), ("compile", 128), ("cudagraphs", 256), ("compile", 256)]


def step_rate(mode: str, bs: int, size: int, device: str, reps: int, steps: int) -> dict:
    """One model-only training configuration: seconds to the first steady step, then img/s."""
    torch._dynamo.reset()  # each compiled row starts from nothing: its compile time is its own
    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = create_model("xresnet18", n_out=10).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=cuda)
    fwd = model if mode == "eager" else torch.compile(
        model, mode="reduce-overhead" if mode == "cudagraphs" else None)
    x = torch.randn(bs, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (bs,), device=device)

    def step() -> None:
        if mode == "cudagraphs":
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=cuda):
            loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(3):   # compilation (and CUDA graph capture) happens in these
        step()
    sync(device)
    first = time.perf_counter() - start
    rates = []
    for _ in range(reps):  # several steps per timing, one sync: the host never waits per step
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        rates.append(bs * steps / (time.perf_counter() - t))
    return dict(mode=mode, bs=bs, size=size, first_3_steps_s=first, img_s=statistics.median(rates))


def step_rates(out: Path, device: str, bs_list: list[int], modes: list[str], size: int,
               budget: float) -> None:

    cuda = device.startswith("cuda")
    deadline = time.perf_counter() + budget
    kind, peak = peak_rate(device)
    flops = train_flops_per_image(summary(create_model("xresnet18", n_out=10), size=size).macs)
    res = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), f"{kind}_matmul_flops": peak, "train_flops_per_image": flops,
           "rows": [], "skipped": []}
    todo = [(m, b) for m, b in STEP_ORDER if m in modes and b in bs_list]
    todo += [(m, b) for m in modes for b in bs_list if (m, b) not in todo]
    print(f"{'mode':<11}{'bs':>5}{'img/s':>9}{'MFU':>7}{'first 3 steps (s)':>19}", flush=True)
    for mode, bs in todo:
        left = deadline - time.perf_counter()
        if left < (10 if mode == "eager" else 45):
            res["skipped"].append(f"{mode} bs {bs}: {left:.0f} s of the budget left")
            continue
        try:
            row = step_rate(mode, bs, size, device, reps=3 if cuda else 1, steps=20 if cuda else 1)
        except Exception as e:  # one failing mode (e.g. out of memory) must not hide the others
            row = dict(mode=mode, bs=bs, size=size, error=repr(e)[:300])
            print(f"{mode:<11}{bs:>5}  FAILED {row['error']}", flush=True)
        else:
            row["mfu"] = row["img_s"] * flops / peak
            print(f"{mode:<11}{bs:>5}{row['img_s']:>9,.0f}{row['mfu']:>7.1%}{row['first_3_steps_s']:>19.1f}",
                  flush=True)
        res["rows"].append(row)
        write_json(out, res)
    for line in res["skipped"]:
        print("skipped:", line)
    write_json(out, res)


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


# ---- the summary of a gpu.sh run ----------------------------------------------------------
def read_metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) if k != "epoch" else int(float(v)) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def summarize(stages: Path, out: Path, n_train: int | None = None) -> dict:
    """One row per training stage: whole-process wall, sum of epoch times, accuracy; plus the
    step table and the ratios the issue's targets name. Reads what each stage left behind."""
    rows, res = [], {"stages": {}}
    for t in sorted(stages.glob("*.time")):
        wall, rc = t.read_text().split()[:2]
        res["stages"][t.stem] = {"wall_s": float(wall), "rc": int(rc)}
    for m in sorted(stages.glob("*_metrics.csv")):
        name = m.name[: -len("_metrics.csv")]
        epochs = read_metrics(m)
        if not epochs:
            continue
        st = next((v for k, v in res["stages"].items() if k.endswith(name)), {})
        rows.append(dict(run=name, epochs=len(epochs), epoch_sum_s=sum(e["time"] for e in epochs),
                         epoch_s=[round(e["time"], 2) for e in epochs], accuracy=epochs[-1].get("accuracy"),
                         wall_s=st.get("wall_s")))
    fa = stages / "fastai.json"
    if fa.exists():
        d = json.loads(fa.read_text())
        st = next((v for k, v in res["stages"].items() if k.endswith("fastai")), {})
        rows.append(dict(run="fastai", epochs=len(d.get("epochs", [])), epoch_sum_s=d.get("fit_s"),
                         epoch_s=[e.get("time") for e in d.get("epochs", [])], accuracy=d.get("accuracy"),
                         wall_s=st.get("wall_s")))
    res["runs"] = rows
    by = {r["run"]: r for r in rows}
    if "fastai" in by and "resnette_warm" in by and by["resnette_warm"]["wall_s"]:
        res["fastai_wall_over_resnette_warm_wall"] = by["fastai"]["wall_s"] / by["resnette_warm"]["wall_s"]
    comp, warm = by.get("resnette_compile"), by.get("resnette_warm")
    if comp and warm and len(comp["epoch_s"]) > 1:   # steady epochs: the first one compiles
        steady = statistics.median(comp["epoch_s"][1:])
        res["compile_steady_speedup"] = statistics.median(warm["epoch_s"][1:] or warm["epoch_s"]) / steady
        res["compile_first_epoch_extra_s"] = comp["epoch_s"][0] - steady
    lb = [by[k]["accuracy"] for k in ("recipe_leaderboard_s0", "recipe_leaderboard_s1") if k in by]
    if lb and all(isinstance(a, float) for a in lb):
        res["leaderboard_mean_accuracy"] = sum(lb) / len(lb)
    steps = stages / "steps.json"
    if steps.exists():
        res["steps"] = json.loads(steps.read_text())
        eager128 = next((r for r in res["steps"]["rows"] if r.get("mode") == "eager" and r["bs"] == 128
                         and "img_s" in r), None)
        warm = by.get("resnette_warm")
        if eager128 and warm and n_train:   # whole epochs (validation included) vs the model-only step
            res["warm_epoch_img_s"] = n_train / min(warm["epoch_s"])
            res["warm_epoch_over_model_only_bs128"] = res["warm_epoch_img_s"] / eager128["img_s"]
    print(f"{'run':<26}{'epochs':>7}{'sum of epochs (s)':>19}{'accuracy':>10}{'whole process (s)':>19}")
    for r in rows:
        acc = f"{r['accuracy']:.1%}" if isinstance(r["accuracy"], float) else "-"
        wall = f"{r['wall_s']:.1f}" if r["wall_s"] else "-"
        es = f"{r['epoch_sum_s']:.1f}" if r["epoch_sum_s"] else "-"
        print(f"{r['run']:<26}{r['epochs']:>7}{es:>19}{acc:>10}{wall:>19}")
    for k in ("fastai_wall_over_resnette_warm_wall", "warm_epoch_img_s", "warm_epoch_over_model_only_bs128",
              "compile_steady_speedup", "compile_first_epoch_extra_s", "leaderboard_mean_accuracy"):
        if k in res:
            print(f"{k}: {res[k]:.2f}")
    write_json(out, res)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("checks", help="precision paths, compile, loader rate, model table")
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    c.add_argument("--quick", action="store_true", help="128 px only in the model table")
    st = sub.add_parser("steps", help="model-only training steps: eager / compile / CUDA graphs")
    st.add_argument("--out", type=Path, required=True)
    st.add_argument("--bs", type=int, nargs="+", default=[128, 256, 512])
    st.add_argument("--modes", nargs="+", default=["eager", "compile", "cudagraphs"])
    st.add_argument("--size", type=int, default=128)
    st.add_argument("--budget", type=float, help="seconds; rows that would not fit are skipped (default: "
                    "15 s less than gpu.sh's stage timeout, STAGE_SECONDS, else 150)")
    st.add_argument("--device", default="cuda")
    t = sub.add_parser("table", help="train/infer img/s and MFU of the chapter's nets, 128 px")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--device", default="cuda")
    sm = sub.add_parser("summary", help="gather a gpu.sh run's stage files")
    sm.add_argument("stages", type=Path)
    sm.add_argument("--out", type=Path, required=True)
    sm.add_argument("--n-train", type=int, help="training images (for the epoch's img/s)")
    args = ap.parse_args()
    if args.what == "summary":
        summarize(args.stages, args.out, args.n_train)
        return
    if getattr(args, "device", "cuda").startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU (or --device cpu for steps/table)")
    if args.what == "steps":
        budget = args.budget if args.budget is not None else float(os.environ.get("STAGE_SECONDS", 165)) - 15
        step_rates(args.out, args.device, args.bs, args.modes, args.size, budget)
    elif args.what == "table":
        results = {"device": args.device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                   "models": []}
        model_rates(results, quick=True, device=args.device, out=args.out)
        write_json(args.out, results)
    else:
        checks(args)


def checks(args: argparse.Namespace) -> None:
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
        write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
