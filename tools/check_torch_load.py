#!/usr/bin/env python3
"""Checks that a file written by probe's writeTorchZip loads in PyTorch with torch.load (weights_only=True,
the default) as an OrderedDict of tensors, and optionally that it equals a reference file tensor by tensor.

    python3 tools/check_torch_load.py OUT.pth [REFERENCE.pth|.pt]

Exit status 0 when everything matches. A model check: if the keys are torchvision's resnet18 or
mobilenet_v2 keys, the state_dict is also loaded into that model with load_state_dict(strict=True)."""
import collections, sys
import torch

def main():
    if len(sys.argv) < 2:
        print(__doc__); return 2
    path = sys.argv[1]
    sd = torch.load(path, weights_only=True)
    assert isinstance(sd, collections.OrderedDict), type(sd)
    n = sum(v.numel() for v in sd.values())
    dtypes = collections.Counter(str(v.dtype) for v in sd.values())
    print(f"{path}: torch.load(weights_only=True) OK: OrderedDict of {len(sd)} tensors, {n} elements, {dict(dtypes)}")
    ok = True
    if len(sys.argv) > 2:
        ref = torch.load(sys.argv[2], weights_only=True)
        if list(ref.keys()) != list(sd.keys()):
            print("key lists differ"); ok = False
        for k, v in ref.items():
            w = sd.get(k)
            if w is None: print("missing", k); ok = False; continue
            if v.is_floating_point(): v = v.float()
            if w.dtype != v.dtype or w.shape != v.shape or not torch.equal(w, v):
                print(f"differs: {k} {w.dtype}{tuple(w.shape)} vs {v.dtype}{tuple(v.shape)}"); ok = False
        print("bit-identical to", sys.argv[2] if ok else "NOT identical")
    try:
        import torchvision
        for name in ["resnet18", "mobilenet_v2"]:
            m = getattr(torchvision.models, name)()
            if list(m.state_dict().keys()) == list(sd.keys()):
                m.load_state_dict(sd, strict=True)
                print(f"torchvision.models.{name}().load_state_dict(strict=True) OK")
    except ImportError:
        pass
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
