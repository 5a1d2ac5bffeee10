#!/bin/bash
# ResNet-34 and ResNet-50, probe and PyTorch side by side, alternating (the host is noisy: quote medians).
#   tools/bench_resnets.sh [ROUNDS] [PROBE]     (PROBE default .build/release/probe; needs torch, torchvision)
# Per round: forward images/s at batch 32 (probe bench forward / tools/bench_forward_torch.py) and one
# finetuning step at batch 4 (probe bench finetune / tools/bench_finetune_torch.py), 2 threads each,
# with peak RSS. Synthetic/seeded weights on both sides (the cost does not depend on the values).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; PROBE=${2:-.build/release/probe}
DATA=../shared/data/hymenoptera_data
for r in $(seq "$ROUNDS"); do
  for arch in resnet34 resnet50; do
    "$PROBE" bench forward --only "$arch" --batches 32 --iterations 3 --threads 2 |
      awk -v r="$r" '$2 == 32 { printf "round %s probe   forward  %-9s %7s images/s  peak %s MB\n", r, $1, $4, $6 }'
    python3 tools/bench_forward_torch.py --only "$arch" --batches 32 --iterations 3 --threads 2 2>/dev/null | tail -1 |
      awk -v r="$r" -v a="$arch" '{ printf "round %s pytorch forward  %-9s %s\n", r, a, $0 }'
    "$PROBE" bench finetune "$DATA" --backbone "$arch" --steps 8 --threads 2 | tail -1 |
      awk -v r="$r" '{ printf "round %s probe   step     %-9s %7s ms median  peak %s MB\n", r, $1, $4, $9 }'
    python3 tools/bench_finetune_torch.py "$DATA" --only "$arch" --batch 4 --steps 8 --threads 2 2>/dev/null | tail -1 |
      awk -v r="$r" -v a="$arch" '{ printf "round %s pytorch step     %-9s %s\n", r, a, $0 }'
  done
done
