#!/usr/bin/env bash
# Installs Debian's single-node Slurm (slurmctld, slurmd, slurm-client, munge; ~13 MB) for the sharded-sweep test,
# only when a piece is missing; safe to run again. Needs root (scripts/test-slurm.sh skips without it).
set -euo pipefail
if command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v sbatch > /dev/null && command -v munged > /dev/null; then
    echo "install-slurm: already installed ($(sbatch --version))"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends slurmctld slurmd slurm-client munge ||
    { apt-get -o DPkg::Lock::Timeout=300 update -q && apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends slurmctld slurmd slurm-client munge; }
sbatch --version
