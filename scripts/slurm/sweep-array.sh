#!/usr/bin/env bash
# One shard of a sweep as a Slurm job-array task: task i of an array of n runs
#   adder train ARGS --shard i/n
# so the n tasks together run every seed of --seeds once (the seed at list position k goes to shard k mod n).
# A seed sweep has two passes and a merge (see README, "Sweeps on a Slurm cluster"):
#   probe=$(sbatch --parsable --array=0-$((N-1)) scripts/slurm/sweep-array.sh --seeds 1-64 --out runs/sweep)
#   finish=$(sbatch --parsable --dependency=afterany:$probe --array=0-$((N-1)) scripts/slurm/sweep-array.sh --finish --seeds 1-64 --out runs/sweep)
#   sbatch --dependency=afterany:$finish --wrap "$ADDER train --seeds 1-64 --out runs/sweep --merge $N"
# A recipe sweep is one pass: sbatch --array=0-$((N-1)) scripts/slurm/sweep-array.sh --recipe R.json --seeds 1-64 --out runs/r
# Every pass must get the same --seeds and training options. The array must be 0..n-1 (any %limit is fine).
#
# Which adder: $ADDER if set (sbatch passes the submitting shell's environment), else `adder` on PATH
# (scripts/install-tool.sh), else the Release build of the checkout sbatch was called from. A node without .NET
# runs the self-contained single file that scripts/publish-gpu.sh builds: ADDER=$PWD/publish/linux-x64/adder.
# CPUs: each task trains with --threads = the CPUs Slurm gave it (sbatch --cpus-per-task=K; 1 by default),
# unless ARGS give --threads; results do not depend on it (gradients are summed in fixed partitions).
# A GPU node: sbatch --gres=gpu:1 --cpus-per-task=4 --array=... sweep-array.sh --device cuda --models-per-launch 64 ...
# Output: each task's goes to --out/slurm-JOB_TASK.out (Slurm's own --output is /dev/null, so nothing lands in
# the folder sbatch was called from; only a task that cannot find --out writes adder-sweep-error.txt there);
# --out is shared by all tasks, so it must be on a file system every node sees.
#SBATCH --job-name=adder-sweep
#SBATCH --cpus-per-task=1
#SBATCH --output=/dev/null
set -euo pipefail

fail() { echo "sweep-array.sh: $*" >&2; [ -n "${log:-}" ] || echo "sweep-array.sh: $*" >>"${SLURM_SUBMIT_DIR:-.}/adder-sweep-error.txt"; exit 2; }

out=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --out | -o) out=${args[i + 1]:-} ;;
    --out=*) out=${args[i]#--out=} ;;
  esac
done
[ -n "$out" ] || fail "give --out DIR (a folder every node sees): the sweep's runs and each task's output go there"
# --out relative to the folder sbatch was called from, as the adder it runs sees it
cd "${SLURM_SUBMIT_DIR:-.}"
mkdir -p "$out" || fail "cannot create --out $out"
log="$out/slurm-${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-local}}_${SLURM_ARRAY_TASK_ID:-0}.out"
exec >>"$log" 2>&1

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ] || [ -z "${SLURM_ARRAY_TASK_COUNT:-}" ]; then
  fail "not a job-array task; submit it with sbatch --array=0-\$((N-1))"
fi
if [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ] || [ "${SLURM_ARRAY_TASK_MAX:-}" != $((SLURM_ARRAY_TASK_COUNT - 1)) ]; then
  fail "the array must be 0-$((SLURM_ARRAY_TASK_COUNT - 1)), got ${SLURM_ARRAY_TASK_MIN}-${SLURM_ARRAY_TASK_MAX}"
fi

if [ -n "${ADDER:-}" ]; then
  read -r -a adder <<<"$ADDER"
elif command -v adder >/dev/null; then
  adder=(adder)
elif [ -x src/Adder.Cli/bin/Release/net10.0/adder ]; then
  adder=(src/Adder.Cli/bin/Release/net10.0/adder)
else
  fail "no adder: set ADDER, install it (scripts/install-tool.sh) or submit from a checkout with a Release build"
fi
extra=()
case " $* " in *" --threads "*) ;; *) extra+=(--threads "${SLURM_CPUS_PER_TASK:-1}") ;; esac
case " $* " in *" --quiet "*) ;; *) extra+=(--quiet) ;; esac
echo "sweep-array.sh: task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT on $(hostname): ${adder[*]} train $* --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT ${extra[*]}"
exec "${adder[@]}" train "$@" --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" "${extra[@]}"
