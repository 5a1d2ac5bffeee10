#!/usr/bin/env python3
"""PyTorch's side of `probe bench forward`: eval-mode forward images/s of torchvision's
resnet18 and mobilenet_v2 (or --only one of them, resnet34 or resnet50) at the same batch sizes,
2 threads, median of several runs, and the process's peak RSS (getrusage maxrss). Weights do not
change the cost; random ones are used.

usage: python3 tools/bench_forward_torch.py [--batches 1,8,32] [--iterations 5] [--threads 2]
       [--only resnet18|resnet34|resnet50|mobilenet_v2]
"""
import argparse, resource, statistics, time

import torch
import torchvision


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["resnet18", "resnet34", "resnet50", "mobilenet_v2"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("model         batch   median ms   images/s   CPU ms/image   peak RSS MB")
    for name in [a.only] if a.only else ["resnet18", "mobilenet_v2"]:
        model = getattr(torchvision.models, name)().eval()
        for b in [int(x) for x in a.batches.split(",")]:
            x = torch.randn(b, 3, 224, 224)
            with torch.inference_mode():
                model(x)  # warm-up
                times = []
                c0 = cpu_seconds()
                for _ in range(max(1, a.iterations)):
                    t0 = time.perf_counter()
                    model(x)
                    times.append((time.perf_counter() - t0) * 1000)
            cpu = (cpu_seconds() - c0) * 1000 / (max(1, a.iterations) * b)
            med = statistics.median(times)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{name:<13} {b:5d}   {med:9.1f}   {b * 1000 / med:8.1f}   {cpu:12.1f}   {rss:11.0f}", flush=True)


if __name__ == "__main__":
    main()
