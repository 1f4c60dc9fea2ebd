#!/usr/bin/env bash
# Prepares what scripts/gpu/selftest.sh needs on the lent GPU machine (which has no .NET and no ../shared):
# the self-contained adder (scripts/publish-gpu.sh), a copy of ../shared's golden/ and reference/ under the
# ignored artifacts/shared (never committed: the reference checkpoint is not ours), and the kernel cases the
# CPU harness tests save (artifacts/kernel-cases), and the kernels of earlier commits for scripts/gpu/time-variants.sh
# (artifacts/variants/COMMIT: its kernels/ and scripts/build-gpu-harness.sh; ADDER_VARIANTS lists the commits,
# default: 919196a, the kernels last timed on a GPU, and each later change of the row kernels).
# Carry: publish/linux-x64, artifacts/shared, artifacts/kernel-cases, artifacts/variants.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${ADDER_SHARED:-../shared}
bash scripts/publish-gpu.sh
rm -rf artifacts/shared
mkdir -p artifacts/shared
cp -r "$shared/golden" "$shared/reference" artifacts/shared/
rm -f artifacts/shared/reference/*.png   # not needed there; keeps the carry small
if [ ! -d artifacts/kernel-cases ]; then
    dotnet test Adder.sln -c Release --filter "FullyQualifiedName~KernelTests" -nologo -v q
fi
rm -rf artifacts/variants
for commit in ${ADDER_VARIANTS-919196a f8710be a109473}; do
    mkdir -p "artifacts/variants/$commit"
    git archive "$commit" kernels scripts/build-gpu-harness.sh | tar -x -C "artifacts/variants/$commit"
done
du -sh publish/linux-x64 artifacts/shared artifacts/kernel-cases artifacts/variants
