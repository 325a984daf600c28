#!/usr/bin/env bash
# The GPU checks, in one short run on a lent CUDA machine (issue 20's closing note cites it):
#   1. tests/test_devices.py: every device path on cuda against CPU float64 references;
#   2. bench_slim_zoo.py: `--speedup 1.5` on untrained zoo models at 224x224, batch 8, timed on
#      the GPU: measured against predicted speedup (tucker2 and reduce);
#   3. `onebyone profile resnet50` at batch 8: measured per-layer times beside the h200 preset's
#      estimate and beside a profile calibrated there;
#   4. the whole suite under that machine's torch (an older one than CI's pin).
# Usage there: OUT=/some/dir bash benchmarks/device_check.sh   (python3 must hold torch+CUDA)
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/device-check}
PY=${PY:-python3}
mkdir -p "$OUT"
export XDG_CACHE_HOME=$OUT/cache
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; nproc; } \
    >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "== 1 device tests"; date
timeout 150 $PY -m pytest -q -p no:cacheprovider -rs tests/test_devices.py >"$OUT/test_devices.txt" 2>&1
tail -15 "$OUT/test_devices.txt"
echo "== 2 zoo speedup on cuda"; date
timeout 200 $PY benchmarks/bench_slim_zoo.py --device cuda --device-profile h200 --methods tucker2,reduce \
    --fresh-cache --json "$OUT/zoo_cuda.json" >"$OUT/zoo_cuda.txt" 2>&1
cat "$OUT/zoo_cuda.txt" | tail -20
echo "== 3 profile resnet50 b8 on cuda"; date
timeout 40 $PY -m onebyone calibrate --device cuda --out "$OUT/h200_calibrated.json" >"$OUT/calibrate.txt" 2>&1
tail -3 "$OUT/calibrate.txt"
for prof in h200 "$OUT/h200_calibrated.json"; do
    name=$(basename "$prof" .json)
    timeout 40 $PY -m onebyone profile resnet50 --batch 8 --device cuda --device-profile "$prof" --format json \
        >"$OUT/profile_resnet50_$name.json" 2>"$OUT/profile_$name.err"
    tail -2 "$OUT/profile_$name.err"
done
echo "== 4 the suite under this torch"; date
timeout 150 $PY -m pytest -q -p no:cacheprovider -n 14 --deselect tests/test_devices.py >"$OUT/suite.txt" 2>&1
tail -25 "$OUT/suite.txt"
date
