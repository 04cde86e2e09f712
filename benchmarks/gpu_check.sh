#!/usr/bin/env bash
# One prepared GPU session: the GPU tests, then the benchmark suite for the plain float32 eager path and for the
# defaults (bf16 autocast + CUDA graphs), so both are measured on the same card in one run.
#   bash benchmarks/gpu_check.sh [OUT_DIR] [STEPS]
# Uses the python3 that holds torch (no install: the package is imported from src/).
set -uo pipefail
out=${1:-${OUT:-/tmp/drnas-gpu}}
steps=${2:-8}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
echo "== GPU tests"
$py -m pytest -q -x tests/test_gpu.py tests/test_relax.py 2>&1 | tee "$out/tests.log" | tail -15
cases=${CASES:-nb201,nb201-prog-s1,nb201-prog-s2,darts-s1,darts-s2,train-cifar}
echo "== eager float32 (amp=off, cuda_graphs=off)"
$py benchmarks/run.py --device cuda --steps "$steps" --only "$cases" --set amp=off --set cuda_graphs=off \
    --json "$out/bench_eager_fp32.json"
echo "== defaults (bf16 autocast + CUDA graphs)"
$py benchmarks/run.py --device cuda --steps "$steps" --only "$cases" --json "$out/bench_default.json"
if [ -n "${EXTRA:-}" ]; then
  echo "== extra: $EXTRA"
  # shellcheck disable=SC2086
  $py benchmarks/run.py --device cuda --steps "$steps" --only "$cases" $EXTRA --json "$out/bench_extra.json"
fi
