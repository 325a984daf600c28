#!/usr/bin/env bash
# The GPU checks, in one short run on a lent CUDA machine (issue 20's closing note cites it):
#   1. tests/test_devices.py: every device path on cuda against CPU float64 references;
#   2. bench_slim_zoo.py: `--speedup 1.5` on untrained zoo models at 224x224, batch 8, timed on
#      the GPU: measured against predicted speedup (tucker2 and reduce);
#   3. `onebyone calibrate --device cuda`, then `onebyone profile resnet50` at batch 8: measured
#      per-layer times beside the h200 preset's estimate and beside the calibrated profile's;
#   4. the whole suite under that machine's torch (an older one than CI's pin).
# Usage there: OUT=/some/dir bash benchmarks/device_check.sh   (python3 must hold torch+CUDA)
# Writes $OUT/log.txt, zoo_cuda.json, h200_calibrated.json, profile_resnet50_{h200,h200_calibrated}.json.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/device-check}
PY=${PY:-python3}
mkdir -p "$OUT"
export XDG_CACHE_HOME=/tmp/device-check-cache
LOG=$OUT/log.txt
step() { echo "== $1 ($(date +%T))" | tee -a "$LOG"; }
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; nproc; } 2>&1 | tee -a "$LOG"
step "1 device tests"
timeout 150 $PY -m pytest -q -p no:cacheprovider -rs tests/test_devices.py 2>&1 | tail -25 | tee -a "$LOG"
step "2 zoo speedup on cuda"
timeout 200 $PY benchmarks/bench_slim_zoo.py --device cuda --device-profile h200 --methods tucker2,reduce \
    --fresh-cache --json "$OUT/zoo_cuda.json" 2>&1 | tail -20 | tee -a "$LOG"
step "3 calibrate, profile resnet50 b8 on cuda"
timeout 60 $PY -m onebyone calibrate --device cuda --out "$OUT/h200_calibrated.json" 2>&1 | tail -12 | tee -a "$LOG"
for prof in h200 "$OUT/h200_calibrated.json"; do
    name=$(basename "$prof" .json)
    timeout 40 $PY -m onebyone profile resnet50 --batch 8 --device cuda --device-profile "$prof" --format json \
        >"$OUT/profile_resnet50_$name.json" 2>>"$LOG"
done
step "4 the suite under this torch"
timeout 150 $PY -m pytest -q -p no:cacheprovider -p no:benchmark -n 14 --deselect tests/test_devices.py 2>&1 \
    | tail -30 | tee -a "$LOG"
step "end"
