#!/usr/bin/env bash
# Builds the CPU execution harness of the CUDA kernels (kernels/cpu-harness) with AddressSanitizer and UBSan:
# every .cu file is compiled as C++ with shim.h (threads as fibers), linked with harness.cpp.
# Output: artifacts/cpu-harness/harness (or the folder given as $1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/artifacts/cpu-harness}"
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -ffp-contract=off -fno-strict-aliasing
       -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -I "$root/kernels")
objects=()
for cu in train_step train_rows optimizer logits decode; do
    g++ "${flags[@]}" -include "$root/kernels/cpu-harness/shim.h" -x c++ -c "$root/kernels/$cu.cu" -o "$out/$cu.o"
    objects+=("$out/$cu.o")
done
g++ "${flags[@]}" -include "$root/kernels/cpu-harness/shim.h" -c "$root/kernels/cpu-harness/harness.cpp" -o "$out/harness.o"
g++ "${flags[@]}" "$out/harness.o" "${objects[@]}" -o "$out/harness.tmp"
mv "$out/harness.tmp" "$out/harness"
echo "$out/harness"
