#!/usr/bin/env bash
# One prepared GPU session, in order of what matters, each part under its own time limit (at most 590 s in all,
# so it fits one device call; what finished is kept under OUT_DIR when a later part runs out of time):
#   1. the float64 CUDA-against-CPU passes (which CUDA path computes what the CPU does; compiled cells failed
#      there on 2026-12-04 under torch 2.11, before the pytorch#180642 fix);
#   2. COMPILED_CASES with compiled cells (+ CUDA graphs); their log shows the compile check's differences;
#   3. kernels per eager nb201 iteration and their summed device time (benchmarks/kernels.py), plain and with
#      the cudnn_batch_norm experiment;
#   4. the rest of the GPU tests; 5. the NB201 cases with the defaults (fp32, CUDA graphs); 6. every supernet
#      method's iteration, the methods taken in turn (benchmarks/compare_methods.py).
#   bash benchmarks/gpu_check.sh [OUT_DIR] [STEPS]
# CASES=... changes the default-path cases of part 5, COMPILED_CASES=... the compiled ones (default nb201, which
# compiles in about 100 s on an H200; each further case adds about as much).
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
part "GPU tests: CUDA passes against the CPU's"
timeout 150 $py -m pytest -q -p no:logging -rA tests/test_gpu.py -k passes_on_cuda 2>&1 \
    | tee "$out/tests_passes.log" | grep -E "PASSED|FAILED|Error|passed|failed" | tail -16
part "compile=cells (+ CUDA graphs)"
timeout 130 $py benchmarks/run.py --device cuda --steps "$steps" --warmup 4 --only "${COMPILED_CASES:-nb201}" \
    --set compile=cells --json "$out/bench_compiled.json"
part "kernels per eager nb201 iteration (no graphs)"
timeout 35 $py benchmarks/kernels.py --only nb201 2>&1 | grep -v -i warn | tee "$out/kernels.log"
timeout 35 $py benchmarks/kernels.py --only nb201 --experiment cudnn_batch_norm 2>&1 | grep -v -i warn \
    | tee -a "$out/kernels.log"
part "the other GPU tests"
timeout 100 $py -m pytest -q -p no:logging tests/test_gpu.py -k "not passes_on_cuda" 2>&1 \
    | tee "$out/tests.log" | tail -8
part "defaults (fp32, CUDA graphs)"
timeout 70 $py benchmarks/run.py --device cuda --steps "$steps" --warmup 4 \
    --only "${CASES:-nb201-prog-s1,nb201,nb201-prog-s2}" --json "$out/bench_default.json"
part "every supernet method, in turn"
timeout 60 $py benchmarks/compare_methods.py --rounds 10 --json "$out/compare_methods.json" 2>&1 \
    | grep -v -i warn | tee "$out/compare_methods.log"
part "done"
