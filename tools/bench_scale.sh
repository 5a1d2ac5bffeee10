#!/bin/bash
# Scale benchmarks of issue 15: a store of 1,000,000 synthetic 512-d images, each command timed with
# its peak memory (/usr/bin/time), and the merge of four 250,000-image shards compared with it.
#
#   tools/bench_scale.sh [DIR]      # DIR (default /tmp/probe-scale) gets ~7 GB of stores; rm -r it after
#
# Stores already in DIR are reused (delete them to rebuild). PROBE: the binary (default
# .build/release/probe). Asserts nothing; goals: store info <= 1 s, merge <= 60 s, query load <= 3 s
# with peak memory <= 1.5x the vectors' size (2.05 GB). Run it on a quiet machine, several times.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
P="$(realpath "${PROBE:-$root/.build/release/probe}")"
dir="${1:-/tmp/probe-scale}"
mkdir -p "$dir" && cd "$dir"
echo "disk: $(df -h . | tail -1 | awk '{print $4}') free in $dir; load average $(cut -d' ' -f1-3 /proc/loadavg)"
build() {  # name first count dtype [mark]
    [ -f "$1.sqlite" ] || "$P" bench store "$1.sqlite" --count "$3" --first "$2" --dtype "$4" ${5:+--shard-mark "$5"} --quiet
}
build big 0 1000000 f32
build big16 0 1000000 f16
for i in 0 1 2 3; do build "s$i" $((i * 250000)) 250000 f32 "$i/4"; done
echo "bytes per image: f32 $(($(stat -c %s big.sqlite) / 1000000)), f16 $(($(stat -c %s big16.sqlite) / 1000000)) (512-d, one vector each)"
run() {  # label command...
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o time.txt "$@" > out.txt 2>&1 || { echo "$label failed:"; cat out.txt; }
    read -r secs kb < <(tail -1 time.txt)
    printf '| %-44s | %8s s | %6.2f GB |\n' "$label" "$secs" "$(echo "$kb / 1048576" | bc -l)"
}
echo "| what (1,000,000 images, 512-d f32, 2.05 GB of vectors) | time | peak memory |"
echo "|---|---|---|"
run "probe store info" "$P" store info --store big.sqlite
run "probe export (npy + labels csv)" "$P" export --out export --store big.sqlite
rm -f export.npy export.labels.csv
run "probe query --id 1 (load + 1 query)" "$P" query --id 1 --k 10 --store big.sqlite
"$P" bench query --store big.sqlite --queries 100 | grep -E "load index|1 query|100 queries"
rm -f merged.sqlite merged.sqlite-wal merged.sqlite-shm
run "probe store merge of 4 x 250,000 (new OUT)" "$P" store merge merged.sqlite s0.sqlite s1.sqlite s2.sqlite s3.sqlite
run "the same merge again (idempotent)" "$P" store merge merged.sqlite s0.sqlite s1.sqlite s2.sqlite s3.sqlite
run "probe store compare merged big" "$P" store compare merged.sqlite big.sqlite
sed 's/^/    /' out.txt
# Heads are trained into the merged store (big.sqlite stays without heads, so that it compares equal next time).
run "probe train --epochs 1 (SGD, 800,000 train)" "$P" train --name scale --epochs 1 --store merged.sqlite
run "probe eval (200,000 val)" "$P" eval --head scale --store merged.sqlite
