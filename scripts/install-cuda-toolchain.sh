#!/usr/bin/env bash
# Installs Debian's CUDA toolkit (nvcc 11.8, ptxas, libcuda1, libcublas 11) from bookworm's contrib and
# non-free components, only when nvcc is missing (../shared/notes/cuda-without-a-gpu.md). Idempotent. Needs root.
set -euo pipefail
if command -v nvcc > /dev/null; then
    echo "install-cuda-toolchain: $(nvcc --version | tail -1) already installed"
    exit 0
fi
sources=/etc/apt/sources.list.d/debian-contrib-nonfree.sources
if [ ! -f "$sources" ]; then
    cat > "$sources" <<'X'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
X
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nvidia-cuda-toolkit
nvcc --version | tail -1
