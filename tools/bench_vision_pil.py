#!/usr/bin/env python3
"""PIL + torchvision reference for `probe bench vision`: decode + validation transform per image.

Usage: python3 tools/bench_vision_pil.py DATA_ROOT [--probe "PROBE_CMD"]
  DATA_ROOT  e.g. ../shared/data/hymenoptera_data (train/ and val/, or a single class tree)
  --probe    optional command printing probe's figures (e.g. ".build/release/probe bench vision DATA_ROOT"),
             run right after the PIL pass so both appear side by side, with the speed-up.
One thread (torch.set_num_threads(1)); one warm-up pass, then three timed passes, keeping per image the
fastest of the three; median and mean over images of the thread's CPU time (time.thread_time) and of
wall time. Same method as `runVisionBenchmark` in Sources/Vision/Bench.swift.
"""
import argparse, os, re, shlex, statistics, subprocess, sys, time

import torch
from PIL import Image
from torchvision import datasets, transforms

torch.set_num_threads(1)
torch.set_num_interop_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--probe", default=None)
    args = ap.parse_args()
    roots = [os.path.join(args.root, s) for s in ("train", "val")]
    if not all(os.path.isdir(r) for r in roots):
        roots = [args.root]
    paths = [p for r in roots for p, _ in datasets.ImageFolder(r).samples]
    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    # Per image: the minimum over 3 timed passes (after one warm-up pass), as probe does.
    passes = 3
    times = [float("inf")] * len(paths)
    cpu = [float("inf")] * len(paths)
    for pass_ in range(passes + 1):
        for k, p in enumerate(paths):
            c0 = time.thread_time_ns()
            t0 = time.perf_counter()
            with open(p, "rb") as f:
                img = Image.open(f).convert("RGB")
            x = tf(img)
            t1 = time.perf_counter()
            c1 = time.thread_time_ns()
            if pass_ > 0:
                times[k] = min(times[k], (t1 - t0) * 1000)
                cpu[k] = min(cpu[k], (c1 - c0) / 1e6)
    med, mean, total = statistics.median(times), statistics.mean(times), sum(times)
    cmed, cmean = statistics.median(cpu), statistics.mean(cpu)
    print(f"PIL {Image.__version__} + torchvision (1 thread): {len(times)} images, decode+validation transform per image: "
          f"CPU median {cmed:.3f} ms, mean {cmean:.3f} ms; "
          f"wall median {med:.3f} ms, mean {mean:.3f} ms, total {total:.1f} ms, {len(times) / total * 1000:.0f} images/s")
    if args.probe:
        out = subprocess.run(shlex.split(args.probe), capture_output=True, text=True).stdout.strip()
        print(out)
        m = re.search(r"CPU median ([0-9.]+) ms, mean ([0-9.]+) ms; wall median ([0-9.]+) ms, mean ([0-9.]+) ms", out)
        if m:
            c, cm, w, wm = (float(g) for g in m.groups())
            print(f"speed-up (PIL / probe): CPU median {cmed / c:.2f}x, CPU mean {cmean / cm:.2f}x, "
                  f"wall median {med / w:.2f}x, wall mean {mean / wm:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
