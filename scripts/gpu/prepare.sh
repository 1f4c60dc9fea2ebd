#!/usr/bin/env bash
# Prepares what scripts/gpu/selftest.sh needs on the lent GPU machine (which has no .NET and no ../shared):
# the self-contained adder (scripts/publish-gpu.sh), a copy of ../shared's golden/ and reference/ under the
# ignored artifacts/shared (never committed: the reference checkpoint is not ours), and the kernel cases the
# CPU harness tests save (artifacts/kernel-cases). Carry: publish/linux-x64, artifacts/shared, artifacts/kernel-cases.
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
du -sh publish/linux-x64 artifacts/shared artifacts/kernel-cases
