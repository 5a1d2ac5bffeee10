#!/usr/bin/env python3
"""Checks that a `.pth` written by `probe finetune` (Finetune.finetune / Weights.writeTorchZip) is a
torchvision state_dict: `torch.load(f)` (weights_only) and `load_state_dict` (strict) into
torchvision.models.resnet18(num_classes=K) or mobilenet_v2(num_classes=K), K read from the file.
Optionally compares eval-mode logits on ../shared/reference/model_input.npy with --logits NPY.

usage: python3 tools/check_finetuned_torch.py FILE.pth [FILE2.pth ...] [--logits OUT.npy]
Exit status 0 when every file loads.
"""
import argparse, sys

import numpy as np
import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--input", default="../shared/reference/model_input.npy")
    ap.add_argument("--logits", help="write eval-mode logits of the first 4 inputs for the first file")
    a = ap.parse_args()
    ok = True
    for f in a.files:
        sd = torch.load(f, weights_only=True)
        if "fc.weight" in sd:
            arch, k = "resnet18", sd["fc.weight"].shape[0]
            m = torchvision.models.resnet18(num_classes=k)
        elif "classifier.1.weight" in sd:
            arch, k = "mobilenet_v2", sd["classifier.1.weight"].shape[0]
            m = torchvision.models.mobilenet_v2(num_classes=k)
        else:
            print(f"{f}: neither fc.weight nor classifier.1.weight: not a finetuned torchvision model")
            ok = False
            continue
        try:
            res = m.load_state_dict(sd)  # strict
        except Exception as e:  # noqa: BLE001
            print(f"{f}: load_state_dict failed: {e}")
            ok = False
            continue
        tracked = {n: int(t) for n, t in sd.items() if n.endswith("num_batches_tracked")}
        print(f"{f}: torchvision.models.{arch}(num_classes={k}).load_state_dict OK ({res}); "
              f"{len(sd)} tensors, num_batches_tracked {sorted(set(tracked.values()))}")
        if a.logits:
            m.eval()
            x = torch.from_numpy(np.load(a.input)[0:4])
            with torch.no_grad():
                np.save(a.logits, m(x).numpy())
            a.logits = None
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
