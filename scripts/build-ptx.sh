#!/usr/bin/env bash
# Rebuilds the committed PTX of the CUDA kernels (kernels/ABI.md): kernels/NAME.cu -> kernels/ptx/NAME.ptx.
# -fmad=false: only the kernels' explicit fmaf calls are fused, as the CPU code's LaneMath.Fma calls.
# With an output folder as $1 it writes there instead (the staleness test compares the two).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/kernels/ptx}"
command -v nvcc > /dev/null || { echo "build-ptx: nvcc not found (scripts/install-cuda-toolchain.sh installs it)" >&2; exit 1; }
mkdir -p "$out"
for cu in train_step train_rows optimizer logits decode; do
    nvcc -ccbin clang-14 -ptx -arch=sm_80 -fmad=false -I "$root/kernels" "$root/kernels/$cu.cu" -o "$out/$cu.ptx"
done
