#!/usr/bin/env bash
# Rebuilds the committed PTX of the CUDA kernels (kernels/ABI.md): kernels/NAME.cu -> kernels/ptx/NAME.ptx.
# -fmad=false: only the kernels' explicit fmaf calls are fused, as the CPU code's LaneMath.Fma calls.
# With an output folder as $1 it writes there instead (the staleness test compares the two).
#
# nvcc 11.8's cicc is not deterministic for train_rows.cu: its virtual-register numbering (and now and then an
# instruction) follows the process's memory layout, which moves with address randomisation and with the size of
# the environment and arguments (measured 2026-11-26: three different train_rows.ptx from the same source). So
# each file is compiled with randomisation off (setarch -R), an empty environment but PATH, and the same
# arguments and path lengths wherever the repository is (a copy of the sources in a mktemp folder of fixed-length
# name): the same bytes here, in a clean clone and in CI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/kernels/ptx}"
command -v nvcc > /dev/null || { echo "build-ptx: nvcc not found (scripts/install-cuda-toolchain.sh installs it)" >&2; exit 1; }
command -v clang-14 > /dev/null || { echo "build-ptx: clang-14 not found (scripts/install-cuda-toolchain.sh installs it)" >&2; exit 1; }
mkdir -p "$out"
build="$(mktemp -d /tmp/adder-ptx.XXXXXXXX)"
trap 'rm -rf "$build"' EXIT
cp "$root"/kernels/*.cu "$root"/kernels/*.cuh "$build"/
nvcc="$(command -v nvcc)"
path="$(dirname "$nvcc"):$(dirname "$(command -v clang-14)"):/usr/bin:/bin"
fixed=(setarch "$(uname -m)" -R)
"${fixed[@]}" true 2> /dev/null || { echo "build-ptx: setarch -R is refused here; building with address randomisation (the PTX may differ from run to run)" >&2; fixed=(); }
for cu in train_step train_rows optimizer logits decode; do
    (cd "$build" && "${fixed[@]}" env -i PATH="$path" "$nvcc" -ccbin clang-14 -ptx -arch=sm_80 -fmad=false -I . "$cu.cu" -o "$cu.ptx")
    mv "$build/$cu.ptx" "$out/$cu.ptx"
done
