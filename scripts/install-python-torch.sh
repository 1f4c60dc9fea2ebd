#!/usr/bin/env bash
# Installs Debian's PyTorch (python3-torch, torch 1.13) for the export tests, only when /usr/bin/python3 cannot
# import torch already; safe to run again. The tests use /usr/bin/python3 explicitly (a pyenv python3 on PATH
# would not see Debian's packages).
set -euo pipefail
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "python3-torch: already installed ($(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-python-torch: not root; run: sudo apt-get install -y python3-torch (the PyTorch tests skip until then)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3-torch
/usr/bin/python3 -c 'import torch; print("python3-torch:", torch.__version__)'
