#!/usr/bin/env bash
# The prepared GPU run (issues 12 and 13; BENCHMARKS.md, "The prepared GPU script"): one
# script that a lent GPU machine with no network runs in under 6 minutes, building nothing
# there. It needs, carried from the development machine (git-ignored, ~55 MiB together):
#   .gpu_data/imagenette-128.zip  python benchmarks/make_compact_data.py  (13,394 images, 128 px,
#                              one stored zip: the folder itself is over the tool's 64 MiB)
#   .gpu_wheels/               fastai and its pure-python needs (pip download, see BENCHMARKS.md)
# Usage, from the repository root:
#   bash benchmarks/gpu.sh [--budget SECONDS] [--only STAGE,STAGE] [--dry-run] [--smoke] [DATA] [OUT]
# Stages run in order of priority; each has its own timeout (its cap, cut to what is left of
# the shared budget, default 320 s) and is skipped with a message when less than its minimum
# is left. Each writes its log (and results) under OUT/stages; at the end the summary table
# is printed, OUT/summary.json written and the stage files packed into OUT/stages.tgz (the
# device tool returns at most 8 files). --dry-run prints the plan; --smoke runs every stage
# on the CPU with a generated 10-class folder and 1-epoch runs (checks this script, < 2 min).
set -u
BUDGET=320; ONLY=""; DRY=0; SMOKE=0; POS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) BUDGET=$2; shift 2 ;;
    --only) ONLY=",$2,"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) POS+=("$1"); shift ;;
  esac
done
DATA=${POS[0]:-.gpu_data/imagenette-128.zip}
OUT=${POS[1]:-${OUT:-/tmp/gpu-out}}
STAGES=$OUT/stages; RUNS=/tmp/gpu-runs; FASTAI_SITE=/tmp/fastai-site
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 RESNETTE_HOME=/tmp/resnette-gpu-home
PY=${PY:-python3}
# What the training stages run: the chapter's xresnet18 at 128 px for 5 epochs on the GPU.
DEVICE=cuda; EPOCHS=5; ARCH=xresnet18; IMG="--size 128 --presize 128"; STEPS_ARGS=""; TABLE_ARGS=""; RECIPE_ARGS=""; FASTAI_ARGS=""
if [ $SMOKE = 1 ]; then
  DEVICE=cpu; EPOCHS=1; ARCH=simple_cnn; IMG="--size 32 --presize 32 --bs 16"
  STEPS_ARGS="--device cpu --bs 8 --modes eager --size 32"; TABLE_ARGS="--device cpu"
  RECIPE_ARGS="--epochs 1 --size 32 --presize 32 --bs 16"; FASTAI_ARGS="--size 32 --presize 32 --bs 16"
  DATA=/tmp/gpu-smoke-data; OUT=${POS[1]:-/tmp/gpu-smoke-out}; STAGES=$OUT/stages
  RUNS=/tmp/gpu-smoke-runs; FASTAI_SITE=/tmp/fastai-smoke-site
  export RESNETTE_HOME=/tmp/resnette-smoke-home
fi
START=$(date +%s.%N); N=0
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }
rm -rf "$STAGES" "$RUNS"; mkdir -p "$STAGES" "$RUNS"
: > "$OUT/summary.txt"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
left() { awk -v b="$BUDGET" -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%d", b - (e - s) }'; }

# stage NAME CAP MIN COMMAND...: run COMMAND with timeout min(CAP, budget left), output to a file.
stage() {
  local name=$1 cap=$2 min=$3; shift 3
  N=$((N + 1)); local id; id=$(printf "%02d_%s" $N "$name")
  if [ -n "$ONLY" ] && [[ $ONLY != *",$name,"* ]]; then return; fi
  local l; l=$(left)
  if [ "$l" -lt "$min" ]; then say "$id: SKIPPED ($l s of the budget left, needs $min)"; return; fi
  local t=$((cap < l ? cap : l))
  if [ $DRY = 1 ]; then say "$id: timeout ${t}s: $*"; return; fi
  local s rc; s=$(date +%s.%N)
  # Output to files, not pipes: worker processes inherit stdout, and a pipe they held open
  # would outlive `timeout` (seen on the H200). timeout signals the whole process group.
  STAGE_SECONDS=$t timeout -k 5 "$t" bash -c '"$@"' "$name" "$@" > "$STAGES/$id.log" 2>&1 < /dev/null; rc=$?
  local wall; wall=$(elapsed "$s")
  echo "$wall $rc" > "$STAGES/$id.time"
  [ -f "$RUNS/$name/metrics.csv" ] && cp "$RUNS/$name/metrics.csv" "$STAGES/${name}_metrics.csv"
  local what="ok"; case $rc in 0) ;; 3) what="SKIPPED" ;; 124|137) what="TIMED OUT after ${t}s" ;; *) what="FAILED rc=$rc" ;; esac
  say "$id: $what, ${wall}s"
  grep -v -e 'it/s' -e '^\s*$' "$STAGES/$id.log" | tail -n 4 | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}

train() {  # train NAME ARGS...: one `resnette train` process into its own run folder
  local name=$1; shift
  $PY -m resnette train --data "$DATA" --device $DEVICE --run-dir "$RUNS/$name" --overwrite --quiet "$@"
}

recipe() {  # recipe NAME ARGS...: skip cleanly while `resnette train` has no --recipe
  if ! $PY -m resnette train --help 2>/dev/null | grep -q -- "--recipe"; then
    echo "skipped: \`resnette train --help\` lists no --recipe (issue 12 not merged yet)"; return 3
  fi
  train "$@"
}

env_report() {
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm --format=csv 2>&1
  $PY - <<'EOF'
import platform, time
t = time.perf_counter()
import torch
print(f"python {platform.python_version()}, torch {torch.__version__} (import {time.perf_counter() - t:.1f} s), "
      f"cuda {torch.version.cuda}, device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
EOF
  nproc; free -g | head -2; du -sh "$DATA"; ls .gpu_wheels 2>&1
}

install_fastai() {
  rm -rf "$FASTAI_SITE"
  $PY -m pip install -q --no-index --no-deps --target "$FASTAI_SITE" .gpu_wheels/*.whl || return 1
  PYTHONPATH=$FASTAI_SITE $PY -c "import fastai, fastcore; print('fastai', fastai.__version__, 'fastcore', fastcore.__version__)"
}

smoke_data() {  # a 10-class folder of 48 px JPEGs, 12 train / 4 val per class
  $PY - "$DATA" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, rng = Path(sys.argv[1]), np.random.default_rng(0)
for split, n in (("train", 12), ("val", 4)):
    for c in range(10):
        d = root / split / f"n{c:08d}"; d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize((48, 48)).save(d / f"{i}.JPEG")
EOF
}

# timeout runs a program: the stages' shell functions reach it through the environment
export DATA DEVICE RUNS PY FASTAI_SITE
export -f train recipe env_report install_fastai

if [ $SMOKE = 1 ] && [ $DRY = 0 ]; then rm -rf "$DATA" "$RESNETTE_HOME"; smoke_data; fi
if [[ $DATA == *.zip ]] && [ $DRY = 0 ]; then   # the packed copy (make_compact_data.py)
  rm -rf /tmp/gpu-data && $PY -m zipfile -e "$DATA" /tmp/gpu-data && DATA=/tmp/gpu-data/$(basename "$DATA" .zip)
fi
if [ ! -d "$DATA" ] && [ $DRY = 0 ]; then
  echo "error: no data at $DATA; make it with: nice -n 10 python benchmarks/make_compact_data.py"; exit 2
fi
say "gpu.sh: data $DATA, device $DEVICE, budget ${BUDGET}s, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
rm -rf "$RESNETTE_HOME"    # the first training stage is the cold one: it decodes the images

L="--arch $ARCH $IMG --epochs $EPOCHS --lr 3e-3"
#     name                   cap min
stage env                     20   5  env_report
stage fastai_install          45  10  install_fastai
stage cuda_tests              40  10  $PY -m pytest -q -p no:cacheprovider tests/test_data_resident.py
stage resnette_cold           75  20  train resnette_cold $L
stage resnette_warm           60  15  train resnette_warm $L
stage fastai                  90  30  env PYTHONPATH="$FASTAI_SITE:$PYTHONPATH" $PY benchmarks/fastai_book.py \
                                        --data "$DATA" --out "$STAGES/fastai.json" --epochs $EPOCHS $FASTAI_ARGS
stage steps                  100  15  $PY benchmarks/gpu.py steps --out "$STAGES/steps.json" $STEPS_ARGS
if [ $SMOKE = 1 ]; then
  say "resnette_compile: not in --smoke (inductor on the CPU compiles for minutes)"
else
  stage resnette_compile      90  40  train resnette_compile $L --compile
fi
stage table                   50  15  $PY benchmarks/gpu.py table --out "$STAGES/table.json" $TABLE_ARGS
stage recipe_fast             75  30  recipe recipe_fast --recipe fast $RECIPE_ARGS
stage recipe_leaderboard_s0   80  40  recipe recipe_leaderboard_s0 --recipe leaderboard --seed 0 $RECIPE_ARGS
stage recipe_leaderboard_s1   80  40  recipe recipe_leaderboard_s1 --recipe leaderboard --seed 1 $RECIPE_ARGS

[ $DRY = 1 ] && exit 0
say "== summary ($(elapsed "$START") s in all)"
timeout 30 $PY benchmarks/gpu.py summary "$STAGES" --out "$OUT/summary.json" \
    --n-train "$(find "$DATA/train" -type f | wc -l)" 2>&1 | tee -a "$OUT/summary.txt"
tar czf "$OUT/stages.tgz" -C "$OUT" stages && rm -rf "$STAGES"
echo "wrote $OUT/summary.txt, $OUT/summary.json, $OUT/stages.tgz"
