#!/bin/bash
# Submits the extraction array and the merge that waits for it (afterok).
#   tools/slurm/submit.sh N DATA OUT [extra probe extract options]
# e.g. tools/slurm/submit.sh 16 /shared/photos /shared/probe-run --backbone mobilenet_v2 --weights /shared/mobilenetv2.pt
# PROBE (the binary, default probe on PATH) and PROBE_PARALLEL (tasks at once, default all) are read
# from the environment. Prints the two job ids.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="$1" data="$2" out="$3"; shift 3
array="0-$((n - 1))${PROBE_PARALLEL:+%$PROBE_PARALLEL}"
export PROBE="${PROBE:-probe}" PROBE_DATA="$data" PROBE_OUT="$out"
mkdir -p "$out"
extract_job=$(sbatch --parsable --array="$array" --chdir="$out" --export=ALL "$here/extract_array.sbatch" "$@")
merge_job=$(sbatch --parsable --dependency=afterok:"$extract_job" --chdir="$out" --export=ALL,PROBE_SHARDS="$n" "$here/merge.sbatch")
echo "extract array job $extract_job ($array), merge job $merge_job (afterok:$extract_job)"
