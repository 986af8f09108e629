#!/bin/bash
# 1-GPU training throughput: `resnette train` plain vs under `torchrun --nproc-per-node=1`
# (the DDP code path with one rank: NCCL group, DDP wrapper, loss/metric reductions).
# Synthetic 10-class folder of 160 px JPEGs (pixel content does not change the speed).
# Usage, from the repo root:  bash benchmarks/ddp_1gpu.sh [out_dir]   (PY=python3 ARCHS="xresnet18 xresnet50")
set -euo pipefail
PY=${PY:-python3}; ARCHS=${ARCHS:-"xresnet18 xresnet50"}; OUTDIR=${1:-/tmp/ddpbench}
export N=${N:-1280} BS=${BS:-128} EPOCHS=${EPOCHS:-3}   # images per class, batch, epochs
export W=/tmp/ddpbench RESNETTE_HOME=/tmp/ddpbench/home PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
mkdir -p $W $OUTDIR
$PY - <<'PYEOF'
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np
from PIL import Image
root = Path(os.environ["W"]) / "synth"
def write(job):
    split, c, n = job
    rng = np.random.default_rng(c)
    d = root / split / f"class{c}"; d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)       # smooth-ish: upsampled noise
        Image.fromarray(img).resize((160, 160), Image.BILINEAR).save(d / f"{i}.jpg", quality=90)
if not (root / "valid").exists():  # (delete /tmp/ddpbench/synth to change N)
    jobs = [("train", c, int(os.environ["N"])) for c in range(10)] + [("valid", c, 100) for c in range(10)]
    with ProcessPoolExecutor(16) as ex:
        list(ex.map(write, jobs))
print("images:", sum(1 for _ in root.rglob("*.jpg")))
PYEOF
ARGS="--data $W/synth --size 128 --presize 160 --bs $BS --epochs $EPOCHS --quiet"
for arch in $ARCHS; do
  for mode in ${MODES:-plain ddp plain2 ddp2}; do
    rm -rf $W/$mode-$arch
    case $mode in
      plain*) $PY -m resnette train $ARGS --arch $arch --run-dir $W/$mode-$arch ;;
      ddp*)   $PY -m torch.distributed.run --standalone --nproc-per-node=1 -m resnette train $ARGS --arch $arch --run-dir $W/$mode-$arch ;;
    esac
    cp $W/$mode-$arch/metrics.csv $OUTDIR/$mode-$arch.csv
  done
done
$PY - "$OUTDIR" $ARCHS <<'PYEOF'
import csv, os, sys
out, archs = sys.argv[1], sys.argv[2:]
bs = int(os.environ["BS"]); n = 10 * int(os.environ["N"]) // bs * bs   # images per epoch (last partial batch dropped)
for arch in archs:
    for mode in os.environ.get("MODES", "plain ddp plain2 ddp2").split():
        rows = list(csv.DictReader(open(f"{out}/{mode}-{arch}.csv")))
        rates = [n / float(r["time"]) for r in rows]
        print(f"{arch:10s} {mode:7s} images/s per epoch: " + "  ".join(f"{x:7.0f}" for x in rates)
              + f"   after warm-up (epochs 1+): {sum(rates[1:]) / len(rates[1:]):7.0f}")
PYEOF
