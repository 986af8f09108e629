#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see BENCHMARKS.md, "GPU"): the CUDA paths (bf16,
# fp16 + GradScaler, fp32, torch.compile), model/loader rates, a 1-GPU run with and without
# DistributedDataParallel wrapping, then the chapter's table. Usage:
#   bash benchmarks/gpu.sh DATA_FOLDER OUT_FOLDER [SECONDS]
# SECONDS (default 480) is shared out between the stages; each writes its results as it goes.
set -u
DATA=${1:?imagenette folder}; OUT=${2:?output folder}; BUDGET=${3:-480}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 RESNETTE_HOME=/tmp/resnette-home
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
echo "== CUDA paths and rates"
# Output goes to files, not pipes: the cache-building worker processes inherit stdout, and a
# pipe they hold open would outlive `timeout`.
timeout $((BUDGET * 45 / 100)) python3 benchmarks/gpu.py --data "$DATA" --out "$OUT/gpu.json" --quick > "$OUT/gpu.log" 2>&1
tail -45 "$OUT/gpu.log"
echo "== 1 GPU: plain vs DistributedDataParallel (torchrun --nproc-per-node=1), xresnet18 2 epochs"
for mode in plain ddp; do
  launch="python3 -m resnette"; [ $mode = ddp ] && launch="torchrun --nproc-per-node=1 -m resnette"
  start=$(date +%s.%N)
  timeout $((BUDGET * 13 / 100)) $launch train --data "$DATA" --arch xresnet18 --epochs 2 --device cuda --quiet \
      --run-dir "/tmp/run-$mode" --overwrite > "$OUT/$mode.log" 2>&1 || echo "$mode FAILED: $(tail -3 $OUT/$mode.log)"
  end=$(date +%s.%N)
  echo "$mode: wall $(python3 -c "print(round($end-$start,1))") s; epochs (s): $(tail -n +2 /tmp/run-$mode/metrics.csv 2>/dev/null | awk -F, '{printf "%s ", $NF}')"
  cp /tmp/run-$mode/metrics.csv "$OUT/metrics_$mode.csv" 2>/dev/null
done
echo "== chapter 14 on the GPU"
timeout $((BUDGET * 25 / 100)) python3 benchmarks/chapter14.py --data "$DATA" --device cuda --out "$OUT/chapter14_gpu.json" > "$OUT/chapter14.log" 2>&1
grep -v "it/s" "$OUT/chapter14.log" | tail -40
