"""Shared by tools/bench_forward_torch.py and tools/int8_features_torch.py: probe's calibration
rule reproduced in Python, torchvision's eval preprocessing, and PyTorch's own int8 post-training
static quantization (torch.ao.quantization FX graph mode, fbgemm engine and qconfig).

probe's calibration rule: from the image folder's `train/` split (or the whole folder when it has
no `train/` and `val/` sub-folders), take the files torchvision's ImageFolder accepts (class
sub-folders, extensions IMG_EXTENSIONS, case-insensitive), hash each file's content with SHA-256,
drop duplicate contents, sort by the hex digest and take the first N (fewer if there are fewer).

Only torch, torchvision, numpy and PIL are used.
"""
import hashlib
import os

import torch
import torchvision
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
EVAL_TRANSFORM = transforms.Compose([
    transforms.Resize(256),  # PIL bilinear, antialiased
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(MEAN, STD),
])
ENGINE = "fbgemm"


def image_files(root):
    """Paths of the files torchvision's ImageFolder(root) would list (class sub-folders, accepted
    extensions), in its order."""
    classes, _ = torchvision.datasets.folder.find_classes(root)
    return [p for p, _ in torchvision.datasets.folder.make_dataset(
        root, {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS)]


def splits(root):
    """The split folders of `root`: its train/ and val/ sub-folders when it has both (only those
    that exist when it has one), else the folder itself."""
    s = [os.path.join(root, x) for x in ("train", "val") if os.path.isdir(os.path.join(root, x))]
    return s or [root]


def calibration_files(root, n=32):
    """probe's calibration set: the first `n` distinct-content images of the train split (or the
    whole folder without train/ and val/), ordered by the SHA-256 hex digest of their content."""
    if os.path.isdir(os.path.join(root, "train")):
        source = os.path.join(root, "train")
    elif os.path.isdir(os.path.join(root, "val")):
        raise ValueError(f"{root} has val/ but no train/ to calibrate on")
    else:
        source = root
    by_digest = {}
    for p in image_files(source):
        with open(p, "rb") as f:
            d = hashlib.sha256(f.read()).hexdigest()
        by_digest.setdefault(d, p)
    return [by_digest[d] for d in sorted(by_digest)[:n]]


def load(paths):
    """The images at `paths` through the eval transform, as one (N,3,224,224) float32 tensor."""
    return torch.stack([EVAL_TRANSFORM(default_loader(p)) for p in paths])


def calibration_batch(root, n=32, seed=0):
    """(tensor, description): probe's calibration images from `root`, or `n` seeded random
    normal tensors when `root` is None."""
    if root is None:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, 3, 224, 224, generator=g), f"{n} random N(0,1) tensors (seed {seed}; no --calibration-dir)"
    files = calibration_files(root, n)
    return load(files), f"{len(files)} images of {root} (probe's rule: train split, distinct SHA-256, sorted by digest)"


def qconfig_mapping():
    return torch.ao.quantization.get_default_qconfig_mapping(ENGINE)


def quantize_fx(model, calibration, chunk=8):
    """PyTorch int8 post-training static quantization of the eval-mode float `model`: FX graph mode
    prepare_fx (default fbgemm qconfig mapping: per-tensor affine uint8 activations with a
    HistogramObserver, reduce_range=True, i.e. 7-bit; per-channel symmetric int8 weights), calibration
    forward over `calibration` in chunks of `chunk` images, convert_fx. Returns the quantized module."""
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = ENGINE
    model = model.eval()
    prepared = prepare_fx(model, qconfig_mapping(), example_inputs=(calibration[:1],))
    with torch.inference_mode():
        for i in range(0, len(calibration), chunk):
            prepared(calibration[i:i + chunk])
    return convert_fx(prepared).eval()


def relu6_as_relu_hardtanh(model):
    """`model` with every nn.ReLU6 replaced, in place, by nn.Sequential(nn.ReLU(), nn.Hardtanh(0, 6)):
    the same float function, but FX then fuses Conv+BN+ReLU (observing the range after the ReLU) and
    the Hardtanh shares that range."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU6):
                setattr(module, name, torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Hardtanh(0.0, 6.0)))
    return model


def describe_qconfig():
    q = qconfig_mapping().global_qconfig
    a, w = q.activation(), q.weight()
    return (f"torch.ao.quantization FX (prepare_fx/convert_fx), get_default_qconfig_mapping(\"{ENGINE}\"), "
            f"torch.backends.quantized.engine = \"{torch.backends.quantized.engine}\"; activations "
            f"{type(a).__name__} {a.dtype} {a.qscheme} reduce_range={a.reduce_range}; weights "
            f"{type(w).__name__} {w.dtype} {w.qscheme}")
