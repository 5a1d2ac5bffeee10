#!/usr/bin/env python3
"""PyTorch's side of issue 13's speed comparison for ResNet-34 and ResNet-50, at 2 threads by default:
  forward   eval mode, inference_mode, batch 32, 224x224, median of --iterations runs after a warm-up
            (tools/bench_forward_torch.py --only ARCH --batches 32)
  finetune  one full-finetuning step at batch 4: train mode, cross-entropy, backward, SGD lr 0.001
            momentum 0.9 over all parameters, a new 2-way fc, images streamed from DIR/train through the
            tutorial's augmentation by a DataLoader; median ms of --steps steps after 3 warm-up steps
            (tools/bench_finetune_torch.py DIR --only ARCH --batch 4)
Each measurement runs in its own process, so each peak RSS (getrusage maxrss) is that one model's alone.
CPU ms are printed beside wall times: on a shared machine the wall time inflates, CPU time much less.
Compare with `probe bench forward --only ARCH --batches 32` and `probe bench finetune --backbone ARCH`.

usage: python3 tools/bench_resnets_torch.py [DIR] [--threads 2] [--iterations 5] [--steps 20]
       [--arch resnet34,resnet50] [--skip-finetune]
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(args):
    out = subprocess.run([sys.executable] + args, check=True, capture_output=True, text=True).stdout
    lines = out.strip().splitlines()
    return lines[0], lines[-1].split()   # version line, the one result row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default="../shared/data/hymenoptera_data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=5, help="timed forward passes at batch 32")
    ap.add_argument("--steps", type=int, default=20, help="timed finetuning steps")
    ap.add_argument("--arch", default="resnet34,resnet50")
    ap.add_argument("--skip-finetune", action="store_true")
    a = ap.parse_args()
    t = ["--threads", str(a.threads)]
    # CPU ms (per image, per step) as well: on a shared machine wall time inflates, CPU time much less
    print("arch      forward b32: median ms  images/s  CPU ms/image  peak RSS MB | finetune b4: median ms  fwd ms  bwd ms  "
          "CPU ms  peak RSS MB")
    version = None
    for arch in a.arch.split(","):
        version, f = run([os.path.join(HERE, "bench_forward_torch.py"), "--only", arch, "--batches", "32",
                          "--iterations", str(a.iterations)] + t)
        # model batch median_ms images/s cpu_ms/image rss
        row = "%-9s %22s  %8s  %12s  %11s" % (arch, f[2], f[3], f[4], f[5])
        if not a.skip_finetune:
            _, s = run([os.path.join(HERE, "bench_finetune_torch.py"), a.dir, "--only", arch, "--batch", "4",
                        "--steps", str(a.steps)] + t)
            # model batch steps median mean fwd bwd wait rss cpu
            row += " | %21s  %6s  %6s  %6s  %11s" % (s[3], s[5], s[6], s[9], s[8])
        print(row, flush=True)
    print(version)


if __name__ == "__main__":
    main()
