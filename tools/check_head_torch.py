#!/usr/bin/env python3
"""Checks that heads exported by `probe heads export` load into torch.nn.Linear, and that they give
the same predictions as probe's on the store's exported features.

usage: python3 tools/check_head_torch.py HEAD.pth [HEAD.safetensors] [--features OUT.npy]
  (make them with: probe heads export NAME --format pth; probe heads export NAME --format safetensors;
   probe export --out OUT --split val)
"""
import argparse
import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--features")
    a = ap.parse_args()
    heads = []
    for f in a.files:
        if f.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(f)
        else:
            sd = torch.load(f)  # weights_only=True by default
        classes, d = sd["weight"].shape
        head = torch.nn.Linear(d, classes)
        head.load_state_dict(sd)
        print(f"{f}: loads into nn.Linear({d}, {classes}) with load_state_dict (strict)")
        heads.append(head)
    if a.features:
        x = torch.from_numpy(np.load(a.features))
        with torch.no_grad():
            preds = [h(x).argmax(1) for h in heads]
        for f, p in zip(a.files, preds):
            print(f"{f}: predictions on {a.features}: {p.bincount().tolist()} per class")
        if len(preds) > 1:
            print("all files predict the same:", all(bool((p == preds[0]).all()) for p in preds))


if __name__ == "__main__":
    main()
