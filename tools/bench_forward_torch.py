#!/usr/bin/env python3
"""PyTorch's side of `probe bench forward`: eval-mode forward images/s of torchvision's
resnet18 and mobilenet_v2 (or --only one of them, resnet34 or resnet50) at the same batch sizes,
2 threads, median of several runs, and the process's peak RSS (getrusage maxrss). Weights do not
change the cost; random ones are used.

With --precision int8 the model is PyTorch's own int8 model instead: torch.ao.quantization FX graph
mode post-training static quantization (prepare_fx / convert_fx) with
get_default_qconfig_mapping("fbgemm") and torch.backends.quantized.engine = "fbgemm" (see
tools/torch_int8.py), calibrated on probe's calibration set of --calibration-dir (the train split's
first N distinct-content images by SHA-256 digest, torchvision's eval transform; N =
--calibration-images, default 32) or, without a directory, on 32 seeded random tensors. It is then
timed exactly as the float32 model (same batches, iterations, threads, median, images/s). Peak RSS
is the process's maximum, so it includes the calibration (float model with observers, 8 images at a
time); the line printed after the calibration gives that part alone.

usage: python3 tools/bench_forward_torch.py [--batches 1,8,32] [--iterations 5] [--threads 2]
       [--only resnet18|resnet34|resnet50|mobilenet_v2] [--precision float32|int8]
       [--calibration-dir DIR] [--calibration-images N]
e.g.   python3 tools/bench_forward_torch.py --only resnet18 --batches 32 --iterations 3 --threads 2 \
           --precision int8 --calibration-dir ../shared/data/hymenoptera_data
"""
import argparse, os, resource, statistics, sys, time

import torch
import torchvision


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["resnet18", "resnet34", "resnet50", "mobilenet_v2"])
    ap.add_argument("--precision", choices=["float32", "int8"], default="float32")
    ap.add_argument("--calibration-dir", help="int8: image folder to calibrate on (probe's rule); default: 32 random tensors")
    ap.add_argument("--calibration-images", type=int, default=32, help="int8: calibration set size (default 32)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    int8 = a.precision == "int8"
    if int8:
        import warnings
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch_int8
        warnings.filterwarnings("ignore", category=UserWarning)  # reduce_range / quantized-tensor deprecation notices
        calibration, what = torch_int8.calibration_batch(a.calibration_dir, a.calibration_images)
        torch.backends.quantized.engine = torch_int8.ENGINE
        print(f"precision int8: {torch_int8.describe_qconfig()}")
        print(f"calibration: {what}")
    print("model         batch   median ms   images/s   CPU ms/image   peak RSS MB")
    for name in [a.only] if a.only else ["resnet18", "mobilenet_v2"]:
        model = getattr(torchvision.models, name)().eval()
        if int8:
            t0 = time.perf_counter()
            model = torch_int8.quantize_fx(model, calibration)
            print(f"# {name}: quantized in {time.perf_counter() - t0:.1f} s (prepare_fx, calibration, convert_fx); "
                  f"peak RSS so far {peak_rss_mb():.0f} MB", flush=True)
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
            rss = peak_rss_mb()
            print(f"{name:<13} {b:5d}   {med:9.1f}   {b * 1000 / med:8.1f}   {cpu:12.1f}   {rss:11.0f}", flush=True)


if __name__ == "__main__":
    main()
