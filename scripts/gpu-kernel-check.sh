#!/usr/bin/env bash
# For a lent GPU machine: replays every kernel case the CPU tests saved (artifacts/kernel-cases, written by
# `dotnet test --filter KernelTests`: inputs and the CPU harness's outputs) on the GPU with the committed PTX
# and compares (floats ≤ 1e-4 relative, tokens and step counts exactly); runs compute-sanitizer memcheck and
# racecheck on the 311p training case when it is installed; times the train step at 1, 64 and 256 models of
# 512 sequences and decoding of 100,000 prompts. Ends with "N passed, N failed"; exit 1 on any failure.
# Device run (from the repo root, carrying the ignored cases folder):
#   run(command="scripts/gpu-kernel-check.sh", carry=["artifacts/kernel-cases"], timeout_s=300)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cases="${1:-$root/artifacts/kernel-cases}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
exe="$("$root/scripts/build-gpu-harness.sh" "$work/bin" | tail -1)" || { echo "build-gpu-harness failed"; echo "0 passed, 1 failed"; exit 1; }
export ADDER_PTX_DIR="$root/kernels/ptx"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
passed=0
failed=0
result() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); echo "PASS $2"; else failed=$((failed + 1)); echo "FAIL $2"; fi; }

shopt -s nullglob
inputs=("$cases"/*.in.bin)
[ ${#inputs[@]} -gt 0 ] || { echo "no cases in $cases (run the KernelTests first)"; echo "0 passed, 1 failed"; exit 1; }
for in in "${inputs[@]}"; do
    base="${in%.in.bin}"
    name="$(basename "$base")"
    kernel="${name%%--*}"
    "$exe" "$kernel" "$in" "$work/$name.gpu.bin" && "$exe" compare "$work/$name.gpu.bin" "$base.cpu.bin"
    result $? "parity $name"
done

# both row kernels must write the same partial records (kernels/ABI.md): their outputs of one input, byte for byte
for same in "$cases"/rows_loss_and_gradient--same-*.in.bin; do
    name="$(basename "${same%.in.bin}")"
    cmp -s "$work/$name.gpu.bin" "$work/rows_many_${name#rows_}.gpu.bin"
    result $? "the two row kernels' records identical on the GPU (${name#*--})"
done

# the training kernels: adder_train_step (loss_and_gradient), adder_train_rows (rows_loss_and_gradient) and
# adder_train_rows_many (rows_many_loss_and_gradient)
for kernel in loss_and_gradient rows_loss_and_gradient rows_many_loss_and_gradient; do
    if command -v compute-sanitizer > /dev/null && [ -f "$cases/$kernel--311p.in.bin" ]; then
        for tool in memcheck racecheck; do
            compute-sanitizer --tool "$tool" --error-exitcode 3 "$exe" "$kernel" \
                "$cases/$kernel--311p.in.bin" "$work/sanitized.bin" > "$work/$tool.log" 2>&1
            status=$?
            tail -3 "$work/$tool.log"
            result $status "compute-sanitizer $tool $kernel--311p"
        done
    fi
done

for kernel in loss_and_gradient rows_loss_and_gradient rows_many_loss_and_gradient; do
    if [ -f "$cases/$kernel--311p.in.bin" ]; then
        for models in 1 64 256; do
            "$exe" replicate "$cases/$kernel--311p.in.bin" "$work/bench.in.bin" "$models" 512 &&
                ADDER_REPEAT=100 "$exe" "$kernel" "$work/bench.in.bin" "$work/bench.out.bin"
            result $? "timing 311p $kernel, $models models x 512"
        done
    fi
done
if [ -f "$cases/decode--311p.in.bin" ]; then
    "$exe" replicate "$cases/decode--311p.in.bin" "$work/decode.in.bin" 1 100000 &&
        ADDER_REPEAT=20 "$exe" decode "$work/decode.in.bin" "$work/decode.out.bin"
    result $? "timing 311p decode, 100,000 prompts"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
