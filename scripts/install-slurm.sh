#!/usr/bin/env bash
# Installs Debian's single-node Slurm (slurmctld, slurmd, slurm-client, munge; ~13 MB download, under a minute)
# for the sharded-sweep test, only when a piece is missing; safe to run again. Needs root (scripts/test-slurm.sh
# skips without it). Success is checked without a cluster: Slurm's own clients (sbatch --version included) exit 1
# until a slurm.conf exists, so the installed package versions are what is reported.
set -euo pipefail
packages=(slurmctld slurmd slurm-client munge)
installed() { command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v sbatch > /dev/null && command -v munged > /dev/null; }
versions() { dpkg-query -W -f='${Package} ${Version}\n' "${packages[@]}" 2>/dev/null | paste -sd ',' | sed 's/,/, /g'; }
if installed; then
    echo "install-slurm: already installed ($(versions))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm: not root; run: sudo apt-get install -y ${packages[*]} (the Slurm test skips until then)" >&2
    exit 0
fi
echo "install-slurm: installing ${packages[*]} from Debian (~13 MB, under a minute)"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${packages[@]}" ||
    { apt-get -o DPkg::Lock::Timeout=300 update -q && apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${packages[@]}"; }
installed || { echo "install-slurm: apt-get finished but a Slurm or munge command is still missing" >&2; exit 1; }
echo "install-slurm: installed ($(versions))"
