"""Data pipeline benchmark: cold decode rate, warm loader throughput, cache size, memory.

    python benchmarks/data.py [--data ../shared/data/imagenette2-224sq] [--batches 40]
    python benchmarks/data.py --resident [--batches 300] [--rounds 2]

Prints a table and writes benchmarks/results/data.json. With --resident it compares, in
one run, the streaming loader (memory map + prefetch threads, and without threads) with the
resident one (the rows copied once into a tensor on the device, no threads; on the CPU here), alternating
rounds so both see the same load, and writes benchmarks/results/data_resident.json. The decoded cache is built (once) in
the default cache folder ($RESNETTE_HOME/decoded or ~/.cache/resnette/decoded). Numbers on a
shared machine are noisy: rerun before drawing conclusions.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from resnette.data import folder
from resnette.data.cache import decoded_store
from resnette.data.folders import scan_folder

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "imagenette2-224sq"


def rss_anon_mb() -> float:
    """Anonymous resident memory: what the process holds beyond file-backed pages (the memmap)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cold_decode_rate(root: Path, presize: int, n: int) -> float:
    """Images per second per core: one process decoding `n` files into a fresh store."""
    split = scan_folder(root)
    files = split.files[:: max(1, len(split.files) // n)][:n]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        decoded_store(split.root, files, presize, cache_dir=tmp, workers=1)
        return len(files) / (time.perf_counter() - t)


def rate(loader, epoch: int, batches: int) -> tuple[float, float, int]:
    """(img/s, img per CPU-second, images) over `batches` batches from `epoch` on, crossing
    epochs as needed; the first batch (thread pool start, page cache) is not timed."""
    n_img, done, t, cpu = 0, 0, None, None
    while done < batches:
        loader.set_epoch(epoch)
        for x, y in loader:
            if t is None:
                t, cpu = time.perf_counter(), time.process_time()
                continue
            n_img += len(y)
            done += 1
            if done >= batches:
                break
        epoch += 1
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    return n_img / dt, n_img / dcpu, n_img


def resident_vs_streaming(args: argparse.Namespace) -> dict:
    """The same batches two ways, rounds alternating: ratios hold even when the load does not."""
    kw = dict(size=args.size, presize=args.presize, bs=args.bs)
    stream = folder(args.data, resident=False, **kw)
    stream_sync = folder(args.data, resident=False, prefetch=0, **kw)   # no threads, like resident
    anon0 = rss_anon_mb()
    t = time.perf_counter()
    res = folder(args.data, resident=True, **kw)
    res_dict: dict = {"place_s": round(time.perf_counter() - t, 2),
                      "resident_mb": round(rss_anon_mb() - anon0, 1),
                      "placement": [res.train.placement, res.valid.placement]}
    per = max(1, args.batches // args.rounds)
    sums: dict = {}
    for r in range(args.rounds):
        for split in ("train", "valid"):
            for name, dls in (("streaming", stream), ("streaming_nothreads", stream_sync), ("resident", res)):
                loader = getattr(dls, split)
                n = per if split == "train" else min(per, len(loader) - 1)
                img_s, img_cpu_s, n_img = rate(loader, 10 * r, n)
                key = f"{split}_{name}"
                sums.setdefault(key, []).append((img_s, img_cpu_s, n_img))
                print(f"round {r} {key:16} {img_s:8.0f} img/s {img_cpu_s:8.0f} img/CPU-s ({n_img} images)",
                      flush=True)
    for key, vals in sums.items():
        res_dict[f"{key}_img_per_s"] = round(sum(v[0] for v in vals) / len(vals), 1)
        res_dict[f"{key}_img_per_cpu_s"] = round(sum(v[1] for v in vals) / len(vals), 1)
        res_dict[f"{key}_images"] = sum(v[2] for v in vals)
    for split in ("train", "valid"):
        for unit in ("img_per_s", "img_per_cpu_s"):
            for base in ("streaming", "streaming_nothreads"):
                res_dict[f"{split}_resident_over_{base}_{unit}"] = round(
                    res_dict[f"{split}_resident_{unit}"] / res_dict[f"{split}_{base}_{unit}"], 2)
    return res_dict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--presize", type=int, default=160)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--cold-n", type=int, default=600)
    ap.add_argument("--resident", action="store_true", help="compare resident with streaming batches")
    ap.add_argument("--rounds", type=int, default=2, help="with --resident: alternating rounds")
    args = ap.parse_args()
    torch.set_num_threads(2)
    res: dict = {"load_avg_1min": round(os.getloadavg()[0], 2), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                 "data": str(args.data), "presize": args.presize, "size": args.size, "bs": args.bs,
                 "date": time.strftime("%Y-%m-%d")}
    if args.resident:
        res.update(resident_vs_streaming(args))
        res["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
        return report(res, HERE / "results" / "data_resident.json", {})

    res["cold_decode_img_per_s_per_core"] = round(cold_decode_rate(args.data, args.presize, args.cold_n), 1)

    anon0 = rss_anon_mb()
    t = time.perf_counter()
    dls = folder(args.data, size=args.size, presize=args.presize, bs=args.bs)
    res["open_or_build_cache_s"] = round(time.perf_counter() - t, 2)
    store = Path(dls.train.store.filename)
    res["cache_dir"] = str(store.parent)
    res["cache_bytes"] = store.stat().st_size
    res["n_train"], res["n_valid"] = dls.train.n, dls.valid.n

    peak = 0.0
    for name, loader in (("train", dls.train), ("valid", dls.valid)):
        it = iter(loader)
        for _ in range(3):  # warm-up: page cache, thread pool, allocator
            next(it)
        n_img, t, cpu = 0, time.perf_counter(), time.process_time()
        for i, (x, y) in enumerate(it):
            n_img += len(y)
            peak = max(peak, rss_anon_mb())
            if i + 1 >= args.batches:
                break
        dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
        res[f"{name}_img_per_s"] = round(n_img / dt, 1)
        # Images per CPU-second of this process: robust to other users of the machine;
        # on 2 free cores the wall-clock rate can approach twice this.
        res[f"{name}_img_per_cpu_s"] = round(n_img / dcpu, 1)
    res["loader_rss_beyond_memmap_mb"] = round(peak - anon0, 1)

    targets = {"train_img_per_s": ">= 3000", "cache_bytes": "< 1.1e9", "loader_rss_beyond_memmap_mb": "< 300"}
    report(res, HERE / "results" / "data.json", targets)


def report(res: dict, out: Path, targets: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"{'metric':34} {'value':>14}  target")
    for k, v in res.items():
        print(f"{k:34} {v!s:>14}  {targets.get(k, '')}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
