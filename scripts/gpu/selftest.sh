#!/usr/bin/env bash
# The lent GPU machine's one self-test. Prepare here, then run it there from the repo root:
#   scripts/gpu/prepare.sh        # publish/linux-x64/adder, artifacts/shared (golden + reference), kernel cases
#   device run: bash scripts/gpu/selftest.sh   carrying publish/linux-x64, artifacts/shared, artifacts/kernel-cases
# (in the same call, after it: bash scripts/gpu/time-variants.sh, carrying artifacts/variants too: earlier commits'
# row kernels timed against this tree's; kept out of this script so that it stays under 3 minutes)
# Runs: `adder selftest --device cuda` (cuBLAS; CPU/GPU parity of logits, gradients and training steps for both
# presets and 3 models per launch; Grokfast-EMA steps; the gradient and trajectory goldens; the published checkpoint on the reference
# suite; determinism; a 2,000-step run against the CPU's loss curve), the kernel harness on the GPU against the CPU
# harness's outputs (scripts/gpu-kernel-check.sh, with compute-sanitizer when present), a real sweep's model-steps/s at 1 and 256 seeds
# (scripts/gpu/sweep-rate.sh), `bench train` at 1, 64 and
# 256 models, `bench eval`, `eval` of the reference suite, Nsight Compute over the training step's kernels, and
# PyTorch's step of the same model. Prints one summary line `N passed, N failed`; writes every step's log, one
# after another, to $OUT/selftest-all.log if OUT is set (one file: the device tool returns at most 8).
set -uo pipefail
cd "$(dirname "$0")/../.."
adder=publish/linux-x64/adder
shared=artifacts/shared
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0
step() {   # step NAME TIMEOUT COMMAND...: runs it, shows its output, counts it
    local name=$1 limit=$2
    shift 2
    echo "=== $name"
    local start=$SECONDS
    timeout "$limit" "$@" > "$logs/$name.log" 2>&1
    local status=$?
    cat "$logs/$name.log"
    if [ "$status" -eq 0 ]; then passed=$((passed + 1)); echo "--- PASS $name ($((SECONDS - start)) s)"
    else failed=$((failed + 1)); echo "--- FAIL $name (exit $status, $((SECONDS - start)) s)"; fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
date -u
[ -x "$adder" ] || { echo "missing $adder (run scripts/gpu/prepare.sh and carry publish/linux-x64)"; echo "0 passed, 1 failed"; exit 1; }

step selftest 240 "$adder" selftest --device cuda --shared "$shared"
step bench-train-1 30 "$adder" bench train --device cuda --models 1 --windows 5
step bench-train-64 30 "$adder" bench train --device cuda --models 64 --windows 5
step bench-train-256 40 "$adder" bench train --device cuda --models 256 --windows 5
step bench-eval 30 "$adder" bench eval --device cuda --windows 7
# the whole training loop (drawing batches ahead on the host while the GPU steps), where bench train times the step
step sweep-1 90 bash scripts/gpu/sweep-rate.sh 1 40000 cuda
step sweep-256 120 bash scripts/gpu/sweep-rate.sh 256 3000 cuda
step eval-reference 60 "$adder" eval --device cuda -c "$shared/reference/best_311p_s34.pt" --show-failures 3
if [ -d artifacts/kernel-cases ]; then
    step kernel-harness 150 bash scripts/gpu-kernel-check.sh artifacts/kernel-cases
fi
if command -v ncu > /dev/null; then
    # one replay of the captured step: the two kernels of the graph, 64 models x 512 sequences
    step ncu 120 ncu --clock-control none --graph-profiling node -k regex:adder_ --launch-skip 40 --launch-count 2 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
        "$adder" bench train --device cuda --models 64 --windows 1
fi
if python3 -c "import torch" 2> /dev/null; then
    step pytorch-step 120 python3 scripts/gpu/torch_step_bench.py --device cuda --steps 300
fi
echo "$passed passed, $failed failed"
if [ -n "${OUT:-}" ]; then
    for log in "$logs"/*.log; do echo "===== $(basename "$log")"; cat "$log"; done > "$OUT/selftest-all.log"
fi
[ "$failed" -eq 0 ]
