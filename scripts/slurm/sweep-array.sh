#!/usr/bin/env bash
# One shard of a seed sweep as a Slurm job-array task: task i of an array of n runs
#   adder train ARGS --shard i/n
# so the n tasks together run every seed of --seeds once (the seed at list position k goes to shard k mod n).
# A sharded sweep has two passes and a merge (see README, "Sweeps on a Slurm cluster"):
#   probe=$(sbatch --parsable --array=0-$((N-1)) scripts/slurm/sweep-array.sh --seeds 1-64 --out runs/sweep)
#   finish=$(sbatch --parsable --dependency=afterany:$probe --array=0-$((N-1)) scripts/slurm/sweep-array.sh --finish --seeds 1-64 --out runs/sweep)
#   sbatch --dependency=afterany:$finish --wrap "$ADDER train --seeds 1-64 --out runs/sweep --merge $N"
# Every pass must get the same --seeds and training options. The array must be 0..n-1 (any %limit is fine).
# ADDER is the command that runs adder (default: the Release build in this checkout); --out is shared by
# all tasks, so it must be on a file system every node sees.
#SBATCH --job-name=adder-sweep
#SBATCH --cpus-per-task=1
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ] || [ -z "${SLURM_ARRAY_TASK_COUNT:-}" ]; then
  echo "sweep-array.sh: not a job-array task; submit it with sbatch --array=0-\$((N-1))" >&2
  exit 2
fi
if [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ] || [ "${SLURM_ARRAY_TASK_MAX:-}" != $((SLURM_ARRAY_TASK_COUNT - 1)) ]; then
  echo "sweep-array.sh: the array must be 0-$((SLURM_ARRAY_TASK_COUNT - 1)), got ${SLURM_ARRAY_TASK_MIN}-${SLURM_ARRAY_TASK_MAX}" >&2
  exit 2
fi

read -r -a adder <<<"${ADDER:-src/Adder.Cli/bin/Release/net10.0/adder}"
# results do not depend on the thread count (gradients are summed in fixed partitions): use what Slurm gave
extra=()
case " $* " in *" --threads "*) ;; *) if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then extra+=(--threads "$SLURM_CPUS_PER_TASK"); fi ;; esac
case " $* " in *" --quiet "*) ;; *) extra+=(--quiet) ;; esac
exec "${adder[@]}" train "$@" --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" "${extra[@]}"
