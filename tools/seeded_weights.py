#!/usr/bin/env python3
"""Deterministic seeded tensors, bit for bit the same as Sources/Weights/SeededTensors.swift, so that
parity tests of whole networks need no weight files: both sides build the same weights from a seed.

The specification (the Swift file states the same; change both or neither):

  Stream. SplitMix64 (Steele, Lea & Flood 2014), all arithmetic mod 2^64:
      state += 0x9E3779B97F4A7C15; z = state
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
      z = (z ^ (z >> 27)) * 0x94D049BB133111EB
      return z ^ (z >> 31)
  One stream per tensor: initial state = seed XOR fnv1a64(UTF-8 bytes of the tensor's name)
  (FNV-1a 64: h = 0xcbf29ce484222325; per byte h ^= b; h *= 0x100000001b3 mod 2^64).
  u = float32(next() >> 40) / 2^24: uniform in [0, 1) with 24 bits, exact in float32. The tensor's
  elements take successive u in row-major (C) order.

  Values, by name and shape (float32 arithmetic throughout, one rounding per operation):
      name ends with ".num_batches_tracked"   int64 scalar 0 (shape [], as torchvision's; no u drawn)
      name ends with ".running_var"           0.5 + u
      name ends with ".running_mean"          (u - 0.5) * float32(0.2)
      1-D, name ends with ".weight"           0.5 + u                  (BatchNorm gamma)
      1-D, name ends with ".bias"             (u - 0.5) * float32(0.2) (BatchNorm beta, linear bias)
      2-D ".weight" [O, I] (linear)           (2u - 1) * float32(1 / sqrt(I))
      >= 3-D ".weight" [O, I, kh, kw] (conv)  (2u - 1) * float32(sqrt(3 / fan_in)), fan_in = I * kh * kw
      anything else                           2u - 1
  The scales are computed in float64 (correctly rounded division and sqrt) and rounded to float32
  once; 2u - 1, u - 0.5 and 0.5 + u... are float32 operations (2u - 1 and u - 0.5 are exact).

  Scale. A conv weight uniform in +-sqrt(3 / fan_in) has variance 1 / fan_in: a convolution keeps the
  second moment of its input (LeCun/Kaiming-uniform gain 1, not He's 2). BatchNorm then rescales:
  in train mode by the batch statistics; in eval mode by gamma / sqrt(running_var) with both in
  [0.5, 1.5). Measured with `python3 tools/seeded_weights.py --check` (seed 7, the parity input
  4u - 2 of shape [2, 3, 128, 128]), root mean square of the pooled features (before fc):
      resnet50  eval 5.1 (mean 3.6, max 23), train 1.1 (max 2.2); logits rms 3.0 / 0.62
      resnet34  eval 17  (mean 13,  max 70), train 1.1 (max 2.0); logits rms 10  / 0.56
  In eval mode each residual branch adds its variance to the identity path (16 blocks in resnet34),
  so the stream grows additively, not geometrically: neither exploding nor vanishing, and float32's
  relative precision does not depend on magnitude. The constant 3 (variance 1 / fan_in) is kept.

Usage as a module:
    from seeded_weights import seeded_values, seeded_state_dict
    model.load_state_dict(seeded_state_dict(model, seed=7))
CLI:
    python3 tools/seeded_weights.py NAME SHAPE [--seed S] [--count N]   # first values, e.g. conv1.weight 64,3,7,7
    python3 tools/seeded_weights.py --check                                # activation scale of resnet34/50
"""
import argparse
import math
import sys

import numpy as np

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(name):
    h = FNV_OFFSET
    for b in name.encode("utf-8"):
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def splitmix64(state, n):
    """The first n outputs of SplitMix64 from `state` (a uint64 array, vectorised)."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(state) + i * np.uint64(GAMMA)          # state after i increments (mod 2^64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(name, n, seed):
    """n float32 u in [0, 1) of the stream of `name`."""
    state = (int(seed) & MASK) ^ fnv1a64(name)
    top = (splitmix64(state, n) >> np.uint64(40)).astype(np.float32)   # < 2^24: exact
    return top * np.float32(1.0 / 16777216.0)                           # power of two: exact


def kind(name, shape):
    if name.endswith(".num_batches_tracked"):
        return "count"
    if name.endswith(".running_var"):
        return "var"
    if name.endswith(".running_mean"):
        return "mean"
    if len(shape) == 1 and name.endswith(".weight"):
        return "gamma"
    if len(shape) == 1 and name.endswith(".bias"):
        return "beta"
    if len(shape) == 2 and name.endswith(".weight"):
        return "linear"
    if len(shape) >= 3 and name.endswith(".weight"):
        return "conv"
    return "other"


def scale(name, shape):
    """The float32 multiplier of 2u - 1 for linear and conv weights (None otherwise)."""
    k = kind(name, shape)
    if k == "linear":
        return np.float32(1.0 / math.sqrt(shape[1]))
    if k == "conv":
        fan_in = int(np.prod(shape[1:]))
        return np.float32(math.sqrt(3.0 / fan_in))
    return None


def seeded_values(name, shape, seed):
    """The tensor `name` of `shape` as a numpy array: float32, or int64 for num_batches_tracked."""
    shape = tuple(int(s) for s in shape)
    k = kind(name, shape)
    if k == "count":
        return np.zeros(shape, np.int64)
    n = int(np.prod(shape)) if shape else 1
    u = uniforms(name, n, seed)
    half, one, two = np.float32(0.5), np.float32(1.0), np.float32(2.0)
    if k in ("var", "gamma"):
        v = half + u
    elif k in ("mean", "beta"):
        v = (u - half) * np.float32(0.2)
    elif k in ("linear", "conv"):
        v = (two * u - one) * scale(name, shape)
    else:
        v = two * u - one
    assert v.dtype == np.float32
    return v.reshape(shape)


def seeded_state_dict(model, seed):
    """Every entry of model.state_dict() by name and shape, as torch tensors (float32 / int64)."""
    import torch
    out = {}
    for name, t in model.state_dict().items():
        out[name] = torch.from_numpy(seeded_values(name, tuple(t.shape), seed))
    return out


def seeded_input(shape, seed, name="input"):
    """The parity input: 4u - 2 (float32), u of the stream `name`."""
    n = int(np.prod(shape))
    return (np.float32(4.0) * uniforms(name, n, seed) - np.float32(2.0)).reshape(shape)


def check(seed=7):
    """Activation scale of resnet34/resnet50 with seeded weights on the parity input, eval and train."""
    import torch
    import torchvision
    torch.set_num_threads(2)
    x = torch.from_numpy(seeded_input((2, 3, 128, 128), seed))
    for arch in ["resnet34", "resnet50"]:
        m = getattr(torchvision.models, arch)(weights=None, num_classes=10)
        m.load_state_dict(seeded_state_dict(m, seed))
        for mode in ["eval", "train"]:
            m.train(mode == "train")
            with torch.no_grad():
                h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
                stats = ["stem %.3g" % h.std()]
                for i in range(1, 5):
                    h = getattr(m, "layer%d" % i)(h)
                    stats.append("layer%d rms %.3g" % (i, h.pow(2).mean().sqrt()))
                f = torch.flatten(m.avgpool(h), 1)
                lg = m.fc(f)
            print("%s %-5s %s; features mean %.3g rms %.3g max %.3g; logits rms %.3g" % (
                arch, mode, ", ".join(stats), f.mean(), f.pow(2).mean().sqrt(), f.max(), lg.pow(2).mean().sqrt()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?")
    ap.add_argument("shape", nargs="?", help="comma-separated, e.g. 64,3,7,7 ('' for a scalar)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--count", type=int, default=8, help="how many leading values to print")
    ap.add_argument("--check", action="store_true", help="print resnet34/50 activation scales")
    a = ap.parse_args()
    if a.check:
        check(a.seed)
        return
    if a.name is None or a.shape is None:
        ap.error("NAME and SHAPE, or --check")
    shape = [int(s) for s in a.shape.split(",") if s]
    v = seeded_values(a.name, shape, a.seed).ravel()
    print("fnv1a64(%r) = 0x%016x, kind %s, scale %r" % (a.name, fnv1a64(a.name), kind(a.name, shape), scale(a.name, shape)))
    for i, x in enumerate(v[:a.count]):
        print("  [%d] %r  (float32 bits 0x%08x)" % (i, float(x), int(np.asarray(x, np.float32).view(np.uint32)))
              if v.dtype == np.float32 else "  [%d] %d" % (i, int(x)))


if __name__ == "__main__":
    sys.exit(main())
