#!/usr/bin/env bash
# For the lent GPU machine: times the row kernels of earlier commits against this tree's, side by side in one run
# (GPU figures from different runs do not compare well). scripts/gpu/prepare.sh exports each earlier commit's
# kernels/ (sources, committed PTX, harness) and scripts/build-gpu-harness.sh to artifacts/variants/COMMIT; this
# builds each tree's GPU harness from its own sources (its block sizes) and times, on the same replicated 311p
# case, adder_train_rows at 1 model and adder_train_rows_many at 64 and 256 models of 512 sequences (mean of 100
# launches), in two rounds that alternate the trees. Ends with "N passed, N failed".
#   bash scripts/gpu/time-variants.sh [CASES] [VARIANTS]
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cases="${1:-$root/artifacts/kernel-cases}"
variants="${2:-$root/artifacts/variants}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
result() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $2"; fi; }

trees=("this:$root")
for v in "$variants"/*/; do [ -x "$v/scripts/build-gpu-harness.sh" ] && trees+=("$(basename "$v"):${v%/}"); done
[ ${#trees[@]} -gt 1 ] || { echo "no earlier trees in $variants (scripts/gpu/prepare.sh exports them)"; echo "0 passed, 1 failed"; exit 1; }
for entry in "${trees[@]}"; do
    name=${entry%%:*} tree=${entry#*:}
    "$tree/scripts/build-gpu-harness.sh" "$work/$name" > "$work/$name.build.log" 2>&1
    status=$?
    [ $status -eq 0 ] || tail -5 "$work/$name.build.log"
    result $status "build the harness of $name"
done

for spec in "rows_loss_and_gradient 1" "rows_many_loss_and_gradient 64" "rows_many_loss_and_gradient 256"; do
    read -r kernel models <<< "$spec"
    [ -f "$cases/$kernel--311p.in.bin" ] || { result 1 "no case $kernel--311p"; continue; }
    "$work/this/harness" replicate "$cases/$kernel--311p.in.bin" "$work/$kernel-$models.in.bin" "$models" 512
    result $? "replicate $kernel $models"
    for round in 1 2; do
        for entry in "${trees[@]}"; do
            name=${entry%%:*} tree=${entry#*:}
            output=$(ADDER_PTX_DIR="$tree/kernels/ptx" ADDER_REPEAT=100 "$work/$name/harness" "$kernel" \
                "$work/$kernel-$models.in.bin" "$work/out.bin" 2>&1)
            status=$?
            line=$(grep "per launch" <<< "$output" || tail -1 <<< "$output")
            echo "round $round, $name: $line"
            result $status "time $kernel $models with $name"
        done
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
