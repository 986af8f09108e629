"""A compact copy of Imagenette for the GPU machine: every image at 128x128, JPEG quality 75.

    nice -n 10 python benchmarks/make_compact_data.py [--src ../shared/data/imagenette2-224sq]
                                                      [--out .gpu_data/imagenette-128]

Writes the folder and the same files packed in one stored zip, <out>.zip (what the device
tool carries: see the note at the end of main).

The lent GPU machine has no network and receives at most 64 MiB of untracked files, so
benchmarks/gpu.sh cannot download Imagenette there. The shared copy is stored squashed to
224x224, so 128x128 keeps its geometry (no crop) and is the size the chapter trains at:
the GPU runs use `--presize 128 --size 128` (both resnette and fastai read these files).
The folder layout (train|val/<wnid>/<file>) is kept; grayscale images stay grayscale (both
tools convert to RGB when decoding). Written to `<out>.partial` and renamed when complete,
so an interrupted run never leaves a folder that looks finished.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parents[1] / "shared" / "data" / "imagenette2-224sq"
DEFAULT_OUT = HERE.parent / ".gpu_data" / "imagenette-128"
EXTS = {".jpg", ".jpeg", ".png"}


def convert(job: tuple[str, str, int, int]) -> int:
    """One image: decode, resize to size x size (Lanczos), save as JPEG; returns bytes written."""
    src, dst, size, quality = job
    with Image.open(src) as im:
        im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        im = im.resize((size, size), Image.Resampling.LANCZOS)
        im.save(dst, "JPEG", quality=quality, optimize=True)  # Huffman tables fitted: ~5% smaller, same pixels
    return os.path.getsize(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    files = sorted(p for p in args.src.rglob("*") if p.suffix.lower() in EXTS)
    if not files:
        raise SystemExit(f"no images under {args.src}")
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    jobs = []
    for f in files:
        dst = tmp / f.relative_to(args.src).with_suffix(".JPEG")
        dst.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((str(f), str(dst), args.size, args.quality))
    t = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        total = sum(pool.map(convert, jobs, chunksize=64))
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    print(f"{len(files)} images -> {args.out}: {total / 2**20:.1f} MiB ({total / 1e6:.1f} MB, "
          f"{total / len(files) / 1024:.1f} KiB per image), {time.perf_counter() - t:.0f} s")
    # The device tool counts each carried file's archive overhead: 13,394 files of 55 MiB
    # travel as ~70 MB, over its 64 MiB limit (2026-12-06). One stored (uncompressed) zip of
    # them travels as itself, 56 MB; gpu.sh unpacks a DATA that ends in .zip on the machine.
    packed = args.out.with_name(args.out.name + ".zip")
    with zipfile.ZipFile(packed.with_suffix(".partial"), "w", zipfile.ZIP_STORED) as z:
        for f in sorted(args.out.rglob("*")):
            z.write(f, Path(args.out.name) / f.relative_to(args.out))
    os.replace(packed.with_suffix(".partial"), packed)
    print(f"packed for the device tool: {packed} ({packed.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
