#!/usr/bin/env python3
"""PyTorch's side of `probe bench finetune`: median time of a full-finetuning SGD step (train mode,
cross-entropy, backward, SGD lr 0.001 momentum 0.9) of torchvision's resnet18 / mobilenet_v2 (or --only
resnet34 / resnet50) with a
new 2-way last layer, batch 4, images streamed from DIR/train through the tutorial's augmentation
(RandomResizedCrop(224), RandomHorizontalFlip, ToTensor, Normalize) by a DataLoader, 2 threads.
A step is timed from asking the loader for a batch to the end of optimizer.step(), like ours.
Prints the process's peak RSS too. Weights do not change the cost; random ones are used.

usage: python3 tools/bench_finetune_torch.py [DIR] [--steps 20] [--batch 4] [--threads 2]
       [--loader-workers 1] [--only resnet18|resnet34|resnet50|mobilenet_v2]
"""
import argparse, resource, statistics, time

import torch
import torchvision
from torchvision import datasets, transforms


def cpu_seconds():
    # this process and its (DataLoader) children that have ended; the loader worker is alive during
    # the run, so its decoding time is not included (ours is: the loader is a thread)
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default="../shared/data/hymenoptera_data")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loader-workers", type=int, default=1)
    ap.add_argument("--only", choices=["resnet18", "resnet34", "resnet50", "mobilenet_v2"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = datasets.ImageFolder(a.dir + "/train", tf)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, loader workers {a.loader_workers}")
    print("model         batch  steps   median ms   mean ms   fwd ms    bwd ms  wait ms   peak RSS MB   CPU ms")
    for name in [a.only] if a.only else ["resnet18", "mobilenet_v2"]:
        if name.startswith("resnet"):
            m = getattr(torchvision.models, name)()
            m.fc = torch.nn.Linear(m.fc.in_features, len(ds.classes))
        else:
            m = torchvision.models.mobilenet_v2()
            m.classifier[1] = torch.nn.Linear(1280, len(ds.classes))
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.001, momentum=0.9)
        crit = torch.nn.CrossEntropyLoss()
        total = a.steps + a.warmup
        times, fwd, bwd, wait = [], [], [], []
        done = 0
        while done < total:
            loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.loader_workers)
            it = iter(loader)
            while done < total:
                t0 = time.perf_counter()
                try:
                    x, y = next(it)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                opt.zero_grad()
                out = m(x)
                loss = crit(out, y)
                t2 = time.perf_counter()
                loss.backward()
                opt.step()
                t3 = time.perf_counter()
                if done == a.warmup - 1:
                    cpu0 = cpu_seconds()
                if done >= a.warmup:
                    times.append((t3 - t0) * 1000); wait.append((t1 - t0) * 1000)
                    fwd.append((t2 - t1) * 1000); bwd.append((t3 - t2) * 1000)
                done += 1
            del it, loader
        cpu = (cpu_seconds() - cpu0) * 1000 / len(times)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:<13} {a.batch:5d} {len(times):6d}   {statistics.median(times):9.1f} {statistics.mean(times):9.1f}   "
              f"{statistics.median(fwd):8.1f} {statistics.median(bwd):9.1f} {statistics.median(wait):7.1f}   {rss:8.0f}   {cpu:7.1f}", flush=True)


if __name__ == "__main__":
    main()
