#!/usr/bin/env bash
# Installs `adder` as a global .NET tool from this checkout: packs src/Adder.Cli (Release) into a local folder
# and installs the tool Adder.Cli from it, or updates it where it is installed. Needs no package feed beyond the
# ones the build restores from. ADDER_TOOL_FEED names the folder (default artifacts/tool).
set -euo pipefail
cd "$(dirname "$0")/.."
feed=${ADDER_TOOL_FEED:-$PWD/artifacts/tool}
# a new version each time: the tool store and NuGet's cache keep the first package of a version
version="0.1.0-local.$(date -u +%Y%m%d%H%M%S)"
mkdir -p "$feed"
rm -f "$feed"/Adder.Cli.*.nupkg   # an earlier install's package (80 MB: SkiaSharp's native libraries for every platform)
dotnet pack src/Adder.Cli -c Release -o "$feed" -p:PackageVersion="$version" --nologo
if dotnet tool list --global | awk 'NR > 2 { print $1 }' | grep -qx adder.cli; then verb=update; else verb=install; fi
dotnet tool "$verb" --global --add-source "$feed" --version "$version" Adder.Cli
tools="${DOTNET_CLI_HOME:-$HOME}/.dotnet/tools"
case ":$PATH:" in
  *":$tools:"*) ;;
  *) echo "install-tool.sh: $tools is not on PATH; add it (export PATH=\"\$PATH:$tools\") to run adder from any folder" ;;
esac
