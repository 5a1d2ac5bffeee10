#!/usr/bin/env python3
"""probe's L-BFGS logistic-regression head against scikit-learn's LogisticRegression, on the same
features (issue 14): validation accuracies equal and objectives within 1e-6 relative, for several C.

    python3 tools/check_linear_probe_sklearn.py --probe .build/release/probe --store cache/features.sqlite \\
        [--C 1e-4,1e-2,1,100] [--raw]

The store is copied to a temporary folder (probe saves heads in it). For each C, `probe train
--solver lbfgs --C C` fits a head (features standardised with the train split's mean and population
std, as probe does by default; --raw: no standardisation), `probe heads export --format safetensors`
writes it, and scikit-learn fits LogisticRegression(C=C, tol=1e-10, max_iter=100000) on the same
`probe export` matrix (StandardScaler: the same mean and population std). Both heads are then scored
here in float64 with scikit-learn's objective for the multinomial model,

    J(W, b) = C * sum_i CE(W x_i + b, y_i) + 0.5 * ||W||_F^2       (x standardised, bias not penalised),

probe's W being mapped to the standardised features (W_std = W_raw * scale).

Two classes: scikit-learn 1.8+ has no multi_class option and fits the binary model
C' sum log(1 + exp(-y (w.x + b))) + 0.5 ||w||^2. For two classes the multinomial optimum has
w_1 = -w_0 = w/2 (the penalty splits the difference evenly), so its objective is
C sum log(1 + exp(...)) + 0.25 ||w||^2: the binary problem at C' = 2C, halved. The script fits the
binary model at 2C and maps it to W = [-w/2, w/2], b = [-b/2, b/2]. With more classes scikit-learn's
lbfgs is multinomial and is compared as it is.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        assert t["dtype"] == "F32"
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return out


def objective(W, b, X, y, C):
    """C * sum CE + 0.5 ||W||^2 in float64 (W: classes x d on the features X)."""
    z = X @ W.T + b
    m = z.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))
    return C * (lse - z[np.arange(len(y)), y]).sum() + 0.5 * (W * W).sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", default=".build/release/probe")
    ap.add_argument("--store", default="cache/features.sqlite")
    ap.add_argument("--C", default="1e-4,1e-2,1,100")
    ap.add_argument("--raw", action="store_true", help="no standardisation (probe train --no-standardize)")
    ap.add_argument("--probe-args", default="", help="more `probe train` options, e.g. '--tolerance 1e-9'")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="probe-sklearn-")
    try:
        store = os.path.join(tmp, "features.sqlite")
        shutil.copyfile(args.store, store)
        run([args.probe, "export", "--store", store, "--out", os.path.join(tmp, "x"), "--format", "npy"])
        X = np.load(os.path.join(tmp, "x.npy")).astype(np.float64)
        rows = [line.rstrip("\n").split(",") for line in open(os.path.join(tmp, "x.labels.csv"))][1:]
        split = np.array([r[3] for r in rows])
        labels = [r[2] for r in rows]
        classes = sorted(set(labels[i] for i in range(len(rows)) if split[i] == "train"))
        y = np.array([classes.index(l) for l in labels])
        tr, va = split == "train", split == "val"
        if args.raw:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        else:
            sc = StandardScaler().fit(X[tr])
            mean, scale = sc.mean_, sc.scale_
        Xs = (X - mean) / scale
        print(f"{tr.sum()} train, {va.sum()} val, {X.shape[1]}-d, classes {classes}, "
              f"{'raw' if args.raw else 'standardised'} features; scikit-learn LogisticRegression(tol=1e-10)")
        print(f"{'C':>8} {'probe val acc':>14} {'sklearn val acc':>16} {'probe J':>16} {'sklearn J':>16} {'rel. gap':>10}")
        worst = 0.0
        same = True
        for C in [float(c) for c in args.C.split(",")]:
            name = f"sk-{C:g}"
            cmd = [args.probe, "train", "--store", store, "--name", name, "--solver", "lbfgs", "--C", repr(C), "--json"]
            out = json.loads(run(cmd + (["--no-standardize"] if args.raw else []) + args.probe_args.split()))
            h = os.path.join(tmp, "h.safetensors")
            run([args.probe, "heads", "export", name, "--store", store, "--format", "safetensors", "--out", h])
            t = read_safetensors(h)
            Wp = t["weight"] * scale            # on standardised features
            bp = t["bias"] + t["weight"] @ mean
            if len(classes) == 2:
                lr = LogisticRegression(C=2 * C, tol=1e-10, max_iter=100000).fit(Xs[tr], y[tr])
                w, b0 = lr.coef_[0], lr.intercept_[0]
                Ws, bs = np.stack([-w / 2, w / 2]), np.array([-b0 / 2, b0 / 2])
            else:
                lr = LogisticRegression(C=C, tol=1e-10, max_iter=100000).fit(Xs[tr], y[tr])
                Ws, bs = lr.coef_, lr.intercept_
            jp, js = objective(Wp, bp, Xs[tr], y[tr], C), objective(Ws, bs, Xs[tr], y[tr], C)
            acc_p = float(((Xs[va] @ Wp.T + bp).argmax(1) == y[va]).mean())
            acc_s = float(((Xs[va] @ Ws.T + bs).argmax(1) == y[va]).mean())
            gap = (jp - js) / js
            worst = max(worst, abs(gap))
            same = same and acc_p == acc_s
            print(f"{C:>8g} {acc_p:>14.6f} {acc_s:>16.6f} {jp:>16.10g} {js:>16.10g} {gap:>10.2e}"
                  f"   (probe's own: acc {out.get('val_acc'):.6f}, J/C {out.get('objective')})")
        print(f"accuracies {'equal' if same else 'DIFFER'}; largest relative objective gap {worst:.2e}"
              f" ({'within' if worst <= 1e-6 else 'NOT within'} 1e-6); positive = probe's objective is higher")
        return 0 if same and worst <= 1e-6 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
