#!/usr/bin/env bash
# Builds the GPU variant of the kernel harness (kernels/cpu-harness/harness.cpp with -DADDER_GPU): the same
# runner and file format, launching the committed PTX through the CUDA driver API. For the lent GPU machine
# (scripts/gpu-kernel-check.sh); here it builds too and ends at cuInit with CUDA_ERROR_NO_DEVICE.
# Output: artifacts/gpu-harness/harness (or the folder given as $1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/artifacts/gpu-harness}"
mkdir -p "$out"
cuda=/usr/local/cuda
if command -v nvcc > /dev/null; then cuda="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"; fi
libs=()
for d in "$cuda/lib64/stubs" "$cuda/lib64" "$cuda/targets/x86_64-linux/lib/stubs" /usr/lib/x86_64-linux-gnu/nvidia/current; do
    [ -d "$d" ] && libs+=(-L "$d")
done
g++ -std=c++20 -O2 -g -DADDER_GPU -ffp-contract=off -Wall -Wno-unused-function -I "$root/kernels" -I "$cuda/include" \
    -include "$root/kernels/cpu-harness/shim.h" "$root/kernels/cpu-harness/harness.cpp" "${libs[@]}" -lcuda -o "$out/harness.tmp"
mv "$out/harness.tmp" "$out/harness"
echo "$out/harness"
