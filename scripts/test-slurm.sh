#!/usr/bin/env bash
# End-to-end check of sharded sweeps on a real single-node Slurm cluster (../shared/notes/slurm-on-one-machine.md):
# installs Debian's slurm and munge if missing, starts munged, slurmctld and slurmd in a temp folder (listening on
# 127.0.0.1 only), runs a tiny 8-seed sweep as a 4-task job array (probe pass, finish pass), merges the shards, runs
# the same sweep unsharded, and compares: sweep.csv byte for byte and every seed's best and last weights (sha256 of
# the safetensors tensor data). Prints PASS or FAIL; exits 0 on PASS, 1 on FAIL, 77 when it cannot run here (not
# root, or the packages cannot be installed). Stops every daemon it started, whatever happens.
# ADDER: the command that runs adder (default: the Release build of this checkout, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (to install and run the Slurm daemons)"

packages=(slurmctld slurmd slurm-client munge)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  echo "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # another process may hold the dpkg lock for a while: wait up to 5 minutes
  apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${packages[@]}" >/tmp/test-slurm-apt.log 2>&1 ||
    { apt-get -o DPkg::Lock::Timeout=300 update >>/tmp/test-slurm-apt.log 2>&1 &&
      apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${packages[@]}" >>/tmp/test-slurm-apt.log 2>&1; } ||
    skip "apt-get could not install ${packages[*]} (see /tmp/test-slurm-apt.log)"
fi

if [ -n "${ADDER:-}" ]; then
  read -r -a adder <<<"$ADDER"
else
  dll=$repo/src/Adder.Cli/bin/Release/net10.0/adder.dll
  [ -f "$dll" ] || dotnet build "$repo/src/Adder.Cli" -c Release -v q -nologo >/dev/null
  adder=(dotnet "$dll")
fi
export ADDER="${adder[*]}"

D=$(mktemp -d /tmp/adder-slurm.XXXXXX)
chmod 755 "$D"   # munged refuses a socket in a folder that not everyone may enter
munged_pid=
slurm_pids=()
# every process this script's cluster started has our SLURM_CONF in its environment (D is a fresh temp folder)
ours() {
  local p
  for p in $(pgrep -x slurmstepd; pgrep -x slurmctld; pgrep -x slurmd; pgrep -f "$D" || true); do
    [ "$p" != $$ ] && { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$D/slurm.conf" && echo "$p"
  done | sort -u
}
cleanup() {
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    # the cluster is this script's own, so every job in it is ours
    for j in $(timeout 2 squeue -h -o %A 2>/dev/null | sort -u); do timeout 2 scancel "$j" 2>/dev/null; done
    for _ in $(seq 50); do [ -z "$(timeout 2 squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    timeout 5 scontrol shutdown >/dev/null 2>&1
  fi
  for p in "${slurm_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill "$p" 2>/dev/null
  done
  # a job step left behind (slurmstepd ignores SIGTERM) or its tasks
  local left
  left=$(ours)
  if [ -n "$left" ]; then kill -9 $left 2>/dev/null; fi
  for p in "${slurm_pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$munged_pid" ]; then kill "$munged_pid" 2>/dev/null; wait "$munged_pid" 2>/dev/null; fi
  rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# free ports, so a cluster already running on this machine (another checkout's test) is left alone
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
while listening "$port" || listening $((port + 1)); do port=$((port + 2)); done

mungekey -c -k "$D/munge.key" >/dev/null 2>&1 || dd if=/dev/urandom of="$D/munge.key" bs=1024 count=1 status=none
chmod 400 "$D/munge.key"
setsid munged -F -S "$D/munge.sock" --key-file="$D/munge.key" --pid-file="$D/munged.pid" --log-file="$D/munged.log" \
  --seed-file="$D/munged.seed" >"$D/munged.out" 2>&1 &
munged_pid=$!

mkdir -p "$D/state" "$D/spool"
cat >"$D/slurm.conf" <<CONF
ClusterName=addertest
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
MinJobAge=5
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$D/slurm.conf
for _ in $(seq 50); do [ -S "$D/munge.sock" ] && break; sleep 0.1; done
[ -S "$D/munge.sock" ] || { echo "FAIL: munged did not start:"; tail -n 5 "$D/munged.log"; exit 1; }
# own sessions: a Ctrl-C to this script's process group must not kill the daemons before cleanup stops their jobs
setsid slurmctld -D -i -f "$SLURM_CONF" >"$D/slurmctld.out" 2>&1 &
slurm_pids+=($!)
setsid slurmd -D -N localhost -f "$SLURM_CONF" >"$D/slurmd.out" 2>&1 &
slurm_pids+=($!)
state=
for _ in $(seq 100); do
  state=$(timeout 2 sinfo -h -n localhost -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.1
done
if [ "$state" != idle ]; then
  echo "FAIL: the Slurm node did not come up (state '$state'); slurmctld log:"
  tail -n 20 "$D/slurmctld.log" "$D/slurmd.log" 2>/dev/null
  exit 1
fi
echo "slurm up on 127.0.0.1:$port ($(sinfo -V))"

sweep=(--seeds 1-8 --steps 60 --probe 30 --keep 2 --eval-interval 30 --batch 64 --warmup 10 --threads 1)
sharded=$D/sharded
unsharded=$D/unsharded
# submitted from a folder that is not the checkout, with the script's own output handling (each task's output
# in the sweep folder, nothing in the folder sbatch was called from)
elsewhere=$D/elsewhere
mkdir -p "$elsewhere"
submit() { # sbatch --wait: blocks until every task ends, exits with the highest task exit code
  (cd "$elsewhere" && sbatch --parsable --wait --array=0-3 "$repo/scripts/slurm/sweep-array.sh" "$@" >/dev/null) || {
    echo "FAIL: job array '$*' failed; task outputs:"
    tail -n 5 "$sharded"/slurm-*.out "$elsewhere"/* 2>/dev/null
    exit 1
  }
}
start=$SECONDS
submit "${sweep[@]}" --out "$sharded"
submit "${sweep[@]}" --out "$sharded" --finish
"${adder[@]}" train "${sweep[@]}" --out "$sharded" --merge 4 >"$D/merge.out" || { echo "FAIL: merge"; cat "$D/merge.out"; exit 1; }
echo "sharded sweep through sbatch (2 job arrays of 4 tasks) and merge: $((SECONDS - start)) s"
start=$SECONDS
"${adder[@]}" train "${sweep[@]}" --out "$unsharded" --quiet >"$D/unsharded.out" || { echo "FAIL: unsharded sweep"; cat "$D/unsharded.out"; exit 1; }
echo "unsharded sweep: $((SECONDS - start)) s"

# sha256 of a safetensors file's tensor data (after the 8-byte header length and the JSON header)
tensor_sha() {
  local n
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  tail -c +$((8 + n + 1)) "$1" | sha256sum | cut -d' ' -f1
}
failures=0
outputs=$(ls "$sharded"/slurm-*_*.out 2>/dev/null | wc -l)
if [ "$outputs" = 8 ] && grep -q "task 3 of 4" "$sharded"/slurm-*_3.out && [ -z "$(ls -A "$elsewhere")" ]; then
  echo "job output: 8 task files in the sweep folder, none where sbatch was called"
else
  echo "job output: expected 8 slurm-JOB_TASK.out files in $sharded and none in $elsewhere; got $outputs and: $(ls -A "$elsewhere")"
  failures=$((failures + 1))
fi
if cmp -s "$sharded/sweep.csv" "$unsharded/sweep.csv"; then
  echo "sweep.csv identical ($(($(wc -l <"$unsharded/sweep.csv") - 1)) seeds)"
else
  echo "sweep.csv differs:"; diff "$sharded/sweep.csv" "$unsharded/sweep.csv" || true
  failures=$((failures + 1))
fi
kept=$(awk -F, 'NR > 1 && $5 == 60 { print $1 }' "$unsharded/sweep.csv" | xargs)
[ "$(wc -w <<<"$kept")" = 2 ] || { echo "expected 2 finished seeds in the unsharded sweep, got '$kept'"; failures=$((failures + 1)); }
for seed in $(seq 1 8); do
  for f in best last; do
    a=$sharded/s$seed/$f.safetensors
    b=$unsharded/s$seed/$f.safetensors
    if [ ! -f "$a" ] || [ ! -f "$b" ] || [ "$(tensor_sha "$a")" != "$(tensor_sha "$b")" ]; then
      echo "s$seed/$f.safetensors: tensor data differ (or missing)"
      failures=$((failures + 1))
    fi
  done
done
if [ "$failures" = 0 ]; then
  echo "weights identical: best and last of all 8 seeds (finished: $kept)"
  echo "PASS: 4-shard sweep through Slurm == unsharded sweep"
else
  echo "FAIL: $failures differences between the sharded and the unsharded sweep"
  exit 1
fi
