#!/usr/bin/env python3
"""int8 features against float32, image by image: runs `probe extract` twice on DIR into a fresh
store (float32, then --precision int8) and prints the cosine similarity of each image's two view-0
vectors (mean, minimum, 5th percentile) and the mean relative L2 error. Reads the store with
Python's sqlite3 (the store is plain SQLite: Sources/Store/SCHEMA.md); asserts nothing.

usage: python3 tools/check_int8_features.py DIR --backbone mobilenet_v2 --weights FILE
       [--probe .build/release/probe] [--calibration-images 32] [--store PATH (kept)]
"""
import argparse, os, shutil, sqlite3, subprocess, sys, tempfile, time

import numpy as np


def vectors(db, backbone_id):
    return {sha: np.frombuffer(v, dtype=np.float32) for sha, v in db.execute(
        "SELECT i.sha256, f.vector FROM features f JOIN images i ON i.id = f.image_id "
        "WHERE f.backbone_id = ? AND f.view = 0 AND f.dtype = 'f32'", (backbone_id,))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--probe", default=".build/release/probe")
    ap.add_argument("--calibration-images", default="32")
    ap.add_argument("--store")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    store = a.store or os.path.join(tmp, "store.sqlite")
    try:
        base = [a.probe, "extract", a.dir, "--backbone", a.backbone, "--weights", a.weights, "--store", store, "--quiet"]
        for extra in ([], ["--precision", "int8", "--calibration-images", a.calibration_images]):
            t0 = time.time()
            out = subprocess.run(base + extra, check=True, capture_output=True, text=True).stdout
            print(out.splitlines()[0], f"[{time.time() - t0:.2f} s wall]")
        db = sqlite3.connect(store)
        q = dict(db.execute("SELECT backbone_id, weights_sha256 FROM quantizations"))
        rows = db.execute("SELECT id, architecture, weights_sha256 FROM backbones").fetchall()
        i8 = [r for r in rows if r[0] in q]
        f32 = [r for r in rows if r[0] not in q and any(q[x[0]] == r[2] for x in i8)]
        if not i8 or not f32:
            sys.exit("no float32/int8 pair of backbones in the store")
        a32, a8 = vectors(db, f32[0][0]), vectors(db, i8[0][0])
        keys = sorted(set(a32) & set(a8))
        cos = np.array([a32[k] @ a8[k] / (np.linalg.norm(a32[k]) * np.linalg.norm(a8[k]) + 1e-30) for k in keys])
        rel = np.array([np.linalg.norm(a32[k] - a8[k]) / (np.linalg.norm(a32[k]) + 1e-30) for k in keys])
        # how alike different images' float features are (context: seeded weights make them all alike)
        m = np.stack([a32[k] / (np.linalg.norm(a32[k]) + 1e-30) for k in keys])
        cross = (m @ m.T)[np.triu_indices(len(keys), 1)].mean() if len(keys) > 1 else float("nan")
        print(f"{a.backbone}: {len(keys)} images, int8 vs float32 cosine mean {cos.mean():.5f}, min {cos.min():.5f}, "
              f"5th percentile {np.percentile(cos, 5):.5f}; relative L2 error mean {rel.mean():.4f}; "
              f"(different images' float32 features: mean cosine {cross:.3f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
