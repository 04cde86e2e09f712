#!/usr/bin/env bash
# One prepared GPU session: the GPU tests, then the benchmark suite for the plain eager path and for the defaults
# (float32 + CUDA graphs), so both are measured on the same card in one run; EXTRA adds variants (e.g. bf16).
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
$py -m pytest -q tests/test_gpu.py tests/test_relax.py tests/test_fusion.py 2>&1 | tee "$out/tests.log" | tail -15
cases=${CASES:-nb201,nb201-prog-s1,nb201-prog-s2,darts-s1,darts-s2,train-cifar}
echo "== eager (cuda_graphs=off)"
$py benchmarks/run.py --device cuda --steps "$steps" --only "${EAGER_CASES:-$cases}" --set cuda_graphs=off \
    --json "$out/bench_eager.json"
echo "== defaults (CUDA graphs)"
$py benchmarks/run.py --device cuda --steps "$steps" --only "$cases" --json "$out/bench_default.json"
# EXTRA="--set A=B ..." [EXTRA_CASES=...] and EXTRA2 / EXTRA2_CASES: further variants, e.g. "--set amp=bf16"
for n in 1 2; do
  var=EXTRA; cvar=EXTRA_CASES
  [ "$n" = 2 ] && var=EXTRA2 && cvar=EXTRA2_CASES
  [ -n "${!var:-}" ] || continue
  echo "== ${!var}"
  # shellcheck disable=SC2086
  $py benchmarks/run.py --device cuda --steps "$steps" --only "${!cvar:-$cases}" ${!var} --json "$out/bench_extra$n.json"
done
