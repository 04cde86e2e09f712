#!/usr/bin/env bash
# One prepared GPU session, in order of what matters, each part under its own time limit (about 9 minutes in all,
# so it fits one device call; what finished is kept under OUT_DIR when a later part runs out of time):
#   1. the GPU tests, the CUDA-against-CPU passes first (float64: which CUDA path computes what the CPU does);
#   2. the NB201 cases with the defaults (fp32, CUDA graphs) and with compiled cells (compile=cells);
#   3. kernels per iteration and their summed device time (benchmarks/kernels.py), eager and compiled.
#   bash benchmarks/gpu_check.sh [OUT_DIR] [STEPS]
# CASES=... changes the cases of part 2; EXTRA="--set A=B ..." adds one more run.py variant of them.
# Uses the python3 that holds torch (no install: the package is imported from src/).
set -uo pipefail
out=${1:-${OUT:-/tmp/drnas-gpu}}
steps=${2:-30}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
start=$SECONDS
part() { echo "== [$((SECONDS - start)) s] $*"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  $py -c "import triton; print('triton', triton.__version__)"; } 2>&1 | tee "$out/env.txt"
part "GPU tests"
timeout 200 $py -m pytest -q -p no:logging tests/test_gpu.py -k passes_on_cuda 2>&1 | tee "$out/tests_passes.log" | tail -12
timeout 150 $py -m pytest -q -p no:logging tests/test_gpu.py -k "not passes_on_cuda" 2>&1 | tee "$out/tests.log" | tail -8
cases=${CASES:-nb201-prog-s1,nb201,nb201-prog-s2}
part "defaults (fp32, CUDA graphs)"
timeout 80 $py benchmarks/run.py --device cuda --steps "$steps" --warmup 4 --only "$cases" --json "$out/bench_default.json"
part "compile=cells (+ CUDA graphs)"
timeout 200 $py benchmarks/run.py --device cuda --steps "$steps" --warmup 4 --only "$cases" --set compile=cells \
    --json "$out/bench_compiled.json"
if [ -n "${EXTRA:-}" ]; then
  part "$EXTRA"
  # shellcheck disable=SC2086
  timeout 80 $py benchmarks/run.py --device cuda --steps "$steps" --warmup 4 --only "$cases" $EXTRA --json "$out/bench_extra.json"
fi
part "kernels per iteration (no graphs)"
timeout 40 $py benchmarks/kernels.py --only nb201 2>&1 | grep -v -i warn | tee "$out/kernels.log"
timeout 40 $py benchmarks/kernels.py --only nb201 --set compile=cells 2>&1 | grep -v -i warn | tee -a "$out/kernels.log"
part "done"
