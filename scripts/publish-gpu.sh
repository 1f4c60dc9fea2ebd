#!/usr/bin/env bash
# Builds adder as one self-contained, trimmed linux-x64 file for the lent GPU machines, which have no .NET:
# publish/linux-x64/adder (plus models/ and the native libraries that single-file does not bundle).
# Usage: scripts/publish-gpu.sh   (from anywhere; prints the size and how long it took)
set -euo pipefail
cd "$(dirname "$0")/.."
out=publish/linux-x64
rm -rf "$out"
start=$(date +%s)
dotnet publish src/Adder.Cli -c Release -r linux-x64 --self-contained \
    -p:PublishSingleFile=true -p:PublishTrimmed=true -p:EnableCompressionInSingleFile=true \
    -o "$out" -nologo -v q
seconds=$(( $(date +%s) - start ))
echo "published $out/adder in ${seconds} s: $(du -h "$out/adder" | cut -f1) binary, $(du -sh "$out" | cut -f1) in all"
