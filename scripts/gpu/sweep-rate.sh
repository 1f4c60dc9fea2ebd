#!/usr/bin/env bash
# A real sweep's speed, the training loop included (sampling, encoding, the step, metrics), where `bench train` times
# the backend's step alone: trains seeds 1..M side by side in one backend for STEPS steps (validation only at the
# end) and prints model-steps/s between steps 500 and STEPS-100, from the first seed's metrics.csv elapsed_s.
#   bash scripts/gpu/sweep-rate.sh M [STEPS] [DEVICE]      e.g. 256 2000 cuda (the self-test), or 4 1000 cpu here
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
adder=${ADDER:-$root/publish/linux-x64/adder}
[ $# -ge 1 ] && [[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "usage: sweep-rate.sh M [STEPS] [DEVICE] (M: seeds, at least 1)" >&2; exit 2; }
models=$1 steps=${2:-2000} device=${3:-cuda}
[[ "$steps" =~ ^[0-9]+$ ]] && [ "$steps" -ge 1000 ] || { echo "sweep-rate: STEPS must be a number of at least 1000" >&2; exit 2; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
start=$SECONDS
"$adder" train --device "$device" --seeds "1-$models" --models-per-launch "$models" --probe "$steps" --steps "$steps" \
    --eval-interval "$steps" --out "$out/sweep" --quiet > "$out/train.log" 2>&1 || { tail -5 "$out/train.log"; exit 1; }
awk -F, -v models="$models" -v from=500 -v to=$((steps - 100)) -v device="$device" -v wall=$((SECONDS - start)) '
    $1 == from { a = $7 } $1 == to { b = $7 }
    END {
        if (b <= a) { print "sweep-rate: no elapsed_s at steps " from " and " to; exit 1 }
        printf "sweep of %d seeds on %s, the whole training loop: %.0f model-steps/s (%d steps in %.2f s, steps %d to %d; %d s wall with start-up and validation)\n",
            models, device, models * (to - from) / (b - a), to - from, b - a, from, to, wall
    }' "$out/sweep/s1/metrics.csv"
