#!/usr/bin/env bash
# The README's test command (and .ci/run's): installs what the tests need from the registries (Debian's CUDA
# toolkit for the PTX and CPU-harness kernel tests, python3-torch for the PyTorch export tests, Slurm for the
# sharded-sweep test; each script does nothing when its tool is there), then runs every test. With
# ADDER_REQUIRE_TOOLS=1 a test that would skip for a missing tool fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "test.sh: installing what the tests need where missing: the CUDA toolkit (~1.5 GB, a few minutes), python3-torch (~400 MB, a minute or two), Slurm (~13 MB)"
bash scripts/install-cuda-toolchain.sh
bash scripts/install-python-torch.sh
bash scripts/install-slurm.sh
export ADDER_REQUIRE_TOOLS=1
dotnet test Adder.sln -c Release
