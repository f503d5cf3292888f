#!/usr/bin/env bash
# The one prepared run on a GPU machine: the CUDA tests, then bench_gpu.py, in < 9 min.
#
# Here, once (fetches defusedxml, which the GPU image lacks, as a wheel into the ignored .whl/):
#     bash benchmarks/gpu_check.sh prepare
# Then, with the device tool, from the repository root:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
# What comes back under $OUT: env.txt, build.log, tests.log, bench.log, gpu.md (the results
# table, also copied to benchmarks/results/gpu.md on that machine: commit the returned one).
#
# Budget (seconds): C build <= 60, tests <= 200, benchmark <= 260: 520 s, inside 9 minutes,
# so a 15-minute lease leaves room to run it once more.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
    exclude="$(git rev-parse --git-path info/exclude)"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
    python3 -m pip download --no-deps --only-binary=:all: -d .whl defusedxml==0.7.1
    exit
fi

OUT="${OUT:-/tmp/stoker-gpu-check}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG=:4096:8 # cuBLAS's deterministic mode, for train --deterministic

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, torchvision, numpy; print('torch', torch.__version__, \
'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__, \
'gpu', torch.cuda.get_device_name())"
    nproc
} 2>&1 | tee "$OUT/env.txt"

# stoker's optional C kernels, as an install builds them; without them the numpy path runs.
timeout 60 python3 setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1 ||
    echo "C build failed (see build.log): the numpy/torch path runs" | tee -a "$OUT/env.txt"

# 1. CUDA tests: the CUDA twins of the CPU equality tests, pinning, `stoker train` on CUDA.
timeout 200 python3 -m pytest -q --timeout 150 \
    tests/gpu \
    tests/unit/test_device_loader.py \
    tests/transforms/test_transforms_device.py \
    tests/integration/test_batch_transform.py 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}

# 2. The benchmark: ResNet-20 epochs fed four ways, and the augmentation alone.
timeout 260 python3 benchmarks/bench_gpu.py --out "$OUT/gpu.md" 2>&1 | tee "$OUT/bench.log"
bench=${PIPESTATUS[0]}
mkdir -p benchmarks/results && cp "$OUT/gpu.md" benchmarks/results/gpu.md 2>/dev/null

echo "gpu_check: tests exit $tests, benchmark exit $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
