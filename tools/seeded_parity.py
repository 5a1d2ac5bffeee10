#!/usr/bin/env python3
"""PyTorch's reference outputs of torchvision's resnet34 and resnet50 on SEEDED weights (no weight files),
and their tolerances from PyTorch's own float32 noise, as generated Swift fixtures:

  Tests/BackbonesTests/SeededResNetReference.swift      eval mode: features (before fc) and logits
  Tests/FinetuneTests/SeededResNetStepReference.swift   train mode, one forward + backward: loss, logits,
                                                        every parameter's gradient L2 norm, the whole
                                                        gradients of fc.weight and conv1.weight

Set-up (both sides build it from tools/seeded_weights.py = Sources/Weights/SeededTensors.swift):
  model   torchvision.models.<arch>(weights=None, num_classes=10), every state_dict entry replaced by
          seeded_state_dict(model, seed=7) (Swift: seededStateDict(entries:seed: 7) with the same names
          and shapes; num_batches_tracked int64 0)
  input   seeded_input((2, 3, 128, 128), 7): 4u - 2 of the stream "input" (Swift: seededInputValues)
  labels  [3, 8]
  eval    model.eval(), no grad: features = torch.flatten(avgpool(layer4(...)), 1) (512 / 2048-d), logits = fc
  train   model.train() (BatchNorm batch statistics, biased variance), CrossEntropyLoss (mean) over the
          2 images, loss.backward(): loss, logits, ||grad||_2 of every parameter (named_parameters order),
          fc.weight.grad and conv1.weight.grad in full. No optimizer step.

Reference = PyTorch float32 at its defaults here: 2 threads, oneDNN (mkldnn) convolutions, unperturbed
input. This is parity_noise.py's choice (its references are PyTorch float32 outputs, ../shared/reference
and MobileNetV2GradientReference.swift); each quantity's distance from float64 (model.double()) is
reported beside it in the generated comments.

Noise protocol: tools/parity_noise.py's, imported from it (run_configs, perturb, Quantity, the metrics):
RUNS float32 runs, torch.set_num_threads 1/2 x torch.backends.mkldnn.enabled on/off x input
x * (1 + 2^-20 u) (numpy seed i // 4; the first four runs unperturbed). Tolerance = 2 x the largest
deviation of a run from the reference the test reads (4 x for 1 - cosine), rounded up to two digits,
floor 1e-5 relative / 1e-5 x max(1, |ref|) absolute / 1e-12 for 1 - cosine.

Metrics as the tests should compute them: relative L2 of a whole array (||a - ref|| / ||ref||) and
1 - smallest row cosine for features and eval logits; |loss - ref| and largest |logit - ref| (train
logits); |norm - ref| / ref per gradient norm; relative L2 of the fc.weight and conv1.weight gradients.

usage (from the repository root): python3 tools/seeded_parity.py [--runs 32] [--arch resnet34,resnet50]
        [--no-write]
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_noise import (EPS, FLOOR_REL, Quantity, cos_gap, fmt, max_abs, measure, rel_l2, rel_scalar,  # noqa: E402
                          summary, swift_num)
from seeded_weights import seeded_input, seeded_state_dict  # noqa: E402

SEED = 7
INPUT_SHAPE = (2, 3, 128, 128)
LABELS = [3, 8]
CLASSES = 10
ARCHS = ["resnet34", "resnet50"]
FEATURES = {"resnet34": 512, "resnet50": 2048}
BACKBONE_FILE = "Tests/BackbonesTests/SeededResNetReference.swift"
STEP_FILE = "Tests/FinetuneTests/SeededResNetStepReference.swift"


class Arch:
    """One architecture with its seeded state_dict, observed in any dtype."""

    def __init__(self, name):
        self.name = name
        self.model = getattr(torchvision.models, name)(weights=None, num_classes=CLASSES)
        self.sd = seeded_state_dict(self.model, SEED)
        self.labels = torch.tensor(LABELS)

    def observe(self, xx, dtype):
        m = self.model.to(dtype)
        m.load_state_dict(self.sd)          # copies (and converts) every tensor, running stats included
        m.zero_grad(set_to_none=True)
        t = torch.from_numpy(xx).to(dtype)
        obs = {}
        m.eval()
        with torch.no_grad():
            f = torch.flatten(m.avgpool(m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(t))))))))), 1)
            obs["features"] = f.double().numpy().ravel()
            obs["logits"] = m.fc(f).double().numpy().ravel()
        m.train()
        out = m(t)
        loss = torch.nn.functional.cross_entropy(out, self.labels)
        loss.backward()
        obs["loss"] = float(loss.detach())
        obs["train logits"] = out.detach().double().numpy().ravel()
        for n, p in m.named_parameters():
            obs["grad " + n] = float(p.grad.double().norm())
        obs["fc.weight grad"] = m.fc.weight.grad.double().numpy().ravel()
        obs["conv1.weight grad"] = m.conv1.weight.grad.double().numpy().ravel()
        return obs

    def parameter_names(self):
        return [n for n, _ in self.model.named_parameters()]


def measure_arch(name, runs):
    a = Arch(name)
    x = seeded_input(INPUT_SHAPE, SEED)
    t0 = time.time()
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = True
    ref = a.observe(x, torch.float32)          # the reference: PyTorch's defaults, unperturbed
    f64 = a.observe(x, torch.float64)
    print("  %s reference and float64 %.1fs" % (name, time.time() - t0), flush=True)
    d = FEATURES[name]
    eval_q = []
    for k, cols in [("features", d), ("logits", CLASSES)]:
        eval_q.append(Quantity(k + " relL2", k, rel_l2, "relL2", ref[k], f64[k]))
        eval_q.append(Quantity(k + " 1-cos", k, lambda u, v, c=cols: cos_gap(u, v, c), "gap", ref[k], f64[k]))
    loss = Quantity("loss", "loss", lambda u, v: abs(u - v), "abs", ref["loss"], f64["loss"],
                    floor=FLOOR_REL * max(1.0, abs(ref["loss"])))
    logits = Quantity("train logits (max abs)", "train logits", max_abs, "abs", ref["train logits"], f64["train logits"],
                      floor=FLOOR_REL * max(1.0, float(np.abs(ref["train logits"]).max())))
    fcg = Quantity("fc.weight grad relL2", "fc.weight grad", rel_l2, "relL2", ref["fc.weight grad"], f64["fc.weight grad"])
    c1g = Quantity("conv1.weight grad relL2", "conv1.weight grad", rel_l2, "relL2", ref["conv1.weight grad"], f64["conv1.weight grad"])
    norms = [Quantity(n, "grad " + n, rel_scalar, "rel", ref["grad " + n], f64["grad " + n]) for n in a.parameter_names()]
    measure(eval_q + [loss, logits, fcg, c1g] + norms, a.observe, x, runs, name)
    summary("%s eval (features, logits)" % name, eval_q)
    summary("%s train step (loss, logits, gradients)" % name, [loss, logits, fcg, c1g] + norms, top=14)
    a.model.float()
    return dict(name=name, ref=ref, eval=eval_q, loss=loss, logits=logits, fcg=fcg, c1g=c1g, norms=norms,
                seconds=time.time() - t0)


# ---------------------------------------------------------------- Swift output
def swift_floats(v, per_line=8):
    """float32 values as Swift Float literals (9 significant digits: exact round trip)."""
    v = np.asarray(v, np.float64).astype(np.float32)
    items = ["%.9g" % float(x) for x in v]
    return ["    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]


def ident(name):
    """resnet50 -> ResNet50 (Swift identifiers: seededResNet50Features)."""
    return name.replace("resnet", "ResNet")


def header(runs, what, cmd, extra=()):
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [
        "// Generated by tools/seeded_parity.py; do not edit. Regenerate: %s" % cmd,
        "// %s (torch %s, torchvision %s, %s)." % (what, torch.__version__, torchvision.__version__, cpu),
        "// Set-up: torchvision.models.<arch>(weights=None, num_classes=%d) with every state_dict entry from" % CLASSES,
        "// tools/seeded_weights.py (= Sources/Weights/SeededTensors.swift: seededStateDict(entries:seed:), seed %d)," % SEED,
        "// input seededInputValues(shape: %s, seed: %d) (4u - 2 of the stream \"input\"), labels %s." % (list(INPUT_SHAPE), SEED, LABELS),
        "// Reference: PyTorch float32 at its defaults (2 threads, oneDNN convolutions, unperturbed input), as",
        "// tools/parity_noise.py's references are. Tolerances from PyTorch's own float32 noise, parity_noise.py's",
        "// protocol: %d float32 runs, torch.set_num_threads 1/2 x torch.backends.mkldnn.enabled on/off (oneDNN vs" % runs,
        "// native convolutions), input x * (1 + 2^%d u), u ~ U[-1, 1] seeded (4 runs unperturbed). Rule: 2 x the" % round(math.log2(EPS)),
        "// largest deviation of a run from the reference (4 x for 1 - cosine, quadratic in the error), rounded up",
        "// to 2 digits, floor 1e-05 relative / 1e-05 x max(1, |ref|) absolute / 1e-12 for 1 - cosine (float32",
        "// rounding of sums over 1e5-1e6 terms; a real bug moves a value by O(1)). Comments: largest deviation;",
        "// reference vs float64.",
    ] + ["// " + e for e in extra] + [""]


def tol_comment(q):
    return "max %s; ref vs float64 %s" % (fmt(q.max_dev), fmt(q.ref_vs_f64))


def write(path, lines, do_write):
    text = "\n".join(lines) + "\n"
    if do_write:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        print("wrote %s (%d lines, %d bytes)" % (path, len(lines), len(text)))
    else:
        print("(not written: %s)" % path)


def backbone_file(results, runs, cmd, do_write):
    lines = header(runs, "Eval-mode outputs of resnet34 / resnet50 for Tests/BackbonesTests", cmd,
                   ["Layout: features [2, D] row-major (D = 512 / 2048: torch.flatten(avgpool(layer4), 1), before fc);",
                    "logits [2, 10] row-major. Metrics: relative L2 over the whole array, 1 - smallest row cosine",
                    "(ParityTolerance, Tests/BackbonesTests/ParityTolerances.swift)."])
    lines += [
        "let seededResNetSeed: UInt64 = %d" % SEED,
        "let seededResNetInputShape = %s" % list(INPUT_SHAPE),
        "let seededResNetClasses = %d" % CLASSES,
        "",
        "struct SeededResNetReference: Sendable {",
        "    let featureDimension: Int",
        "    let features: [Float]  // [2, featureDimension]",
        "    let logits: [Float]  // [2, seededResNetClasses]",
        "    let featuresTolerance: ParityTolerance",
        "    let logitsTolerance: ParityTolerance",
        "}",
        "",
        "let seededResNetReferences: [String: SeededResNetReference] = [",
    ]
    for r in results:
        n, (fa, fc, la, lc) = r["name"], r["eval"]
        lines.append('    "%s": SeededResNetReference(' % n)
        lines.append("        featureDimension: %d, features: seeded%sFeatures, logits: seeded%sLogits," % (FEATURES[n], ident(n), ident(n)))
        lines.append("        featuresTolerance: ParityTolerance(relativeL2: %s, cosineGap: %s),  // %s / %s" % (
            swift_num(fa.tolerance), swift_num(fc.tolerance), tol_comment(fa), tol_comment(fc)))
        lines.append("        logitsTolerance: ParityTolerance(relativeL2: %s, cosineGap: %s)),  // %s / %s" % (
            swift_num(la.tolerance), swift_num(lc.tolerance), tol_comment(la), tol_comment(lc)))
    lines.append("]")
    for r in results:
        n = r["name"]
        lines += ["", "let seeded%sFeatures: [Float] = [" % ident(n)] + swift_floats(r["ref"]["features"]) + ["]"]
        lines += ["", "let seeded%sLogits: [Float] = [" % ident(n)] + swift_floats(r["ref"]["logits"]) + ["]"]
    write(BACKBONE_FILE, lines, do_write)


def step_file(results, runs, cmd, do_write):
    lines = header(runs, "One train-mode forward + backward of resnet34 / resnet50 for Tests/FinetuneTests", cmd,
                   ["No optimizer step. Layout: logits [2, 10], fc.weight gradient [10, D], conv1.weight gradient",
                    "[64, 3, 7, 7], row-major. gradientNorms in named_parameters() order (torchvision's names)."])
    lines += [
        "let seededResNetStepLabels = %s" % LABELS,
        "",
        "/// ||gradient||_2 of one parameter and its tolerance on |norm - reference| / reference.",
        "struct SeededGradientNorm: Sendable { let name: String; let norm: Double; let tolerance: Double }",
        "",
        "struct SeededResNetStepReference: Sendable {",
        "    let loss: Double",
        "    let lossTolerance: Double  // |loss - reference|",
        "    let logits: [Float]  // train mode, [2, 10]",
        "    let logitsTolerance: Double  // largest |logit - reference|",
        "    let gradientNorms: [SeededGradientNorm]",
        "    let fcWeightGradient: [Float]  // [10, D]",
        "    let fcWeightGradientTolerance: Double  // relative L2",
        "    let conv1WeightGradient: [Float]  // [64, 3, 7, 7]",
        "    let conv1WeightGradientTolerance: Double  // relative L2",
        "}",
        "",
        "let seededResNetStepReferences: [String: SeededResNetStepReference] = [",
    ]
    for r in results:
        n, I = r["name"], ident(r["name"])
        lines += [
            '    "%s": SeededResNetStepReference(' % n,
            "        loss: %r, lossTolerance: %s,  // %s" % (r["ref"]["loss"], swift_num(r["loss"].tolerance), tol_comment(r["loss"])),
            "        logits: seeded%sStepLogits, logitsTolerance: %s,  // %s" % (I, swift_num(r["logits"].tolerance), tol_comment(r["logits"])),
            "        gradientNorms: seeded%sGradientNorms," % I,
            "        fcWeightGradient: seeded%sFCWeightGradient, fcWeightGradientTolerance: %s,  // %s" % (
                I, swift_num(r["fcg"].tolerance), tol_comment(r["fcg"])),
            "        conv1WeightGradient: seeded%sConv1WeightGradient, conv1WeightGradientTolerance: %s),  // %s" % (
                I, swift_num(r["c1g"].tolerance), tol_comment(r["c1g"])),
        ]
    lines.append("]")
    for r in results:
        n, I = r["name"], ident(r["name"])
        lines += ["", "let seeded%sStepLogits: [Float] = [" % I] + swift_floats(r["ref"]["train logits"]) + ["]"]
        lines += ["", "let seeded%sGradientNorms: [SeededGradientNorm] = [" % I]
        for q in r["norms"]:
            lines.append('    SeededGradientNorm(name: "%s", norm: %r, tolerance: %s),  // %s' % (
                q.key, q.ref, swift_num(q.tolerance), tol_comment(q)))
        lines.append("]")
        lines += ["", "let seeded%sFCWeightGradient: [Float] = [" % I] + swift_floats(r["ref"]["fc.weight grad"]) + ["]"]
        lines += ["", "let seeded%sConv1WeightGradient: [Float] = [" % I] + swift_floats(r["ref"]["conv1.weight grad"]) + ["]"]
    write(STEP_FILE, lines, do_write)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--arch", default=",".join(ARCHS))
    ap.add_argument("--no-write", action="store_true", help="measure and print only")
    a = ap.parse_args()
    if not os.path.isdir("Tests/FinetuneTests"):
        sys.exit("run from the repository root")
    archs = a.arch.split(",")
    if sorted(archs) != sorted(ARCHS) and not a.no_write:
        sys.exit("the fixtures hold both architectures: run with the default --arch, or with --no-write")
    cmd = "python3 tools/seeded_parity.py" + ("" if a.runs == 32 else " --runs %d" % a.runs)
    print("torch %s, %d float32 runs per architecture, perturbation x * (1 + 2^%d u)" % (torch.__version__, a.runs, round(math.log2(EPS))))
    t0 = time.time()
    results = [measure_arch(n, a.runs) for n in archs]
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = True
    backbone_file(results, a.runs, cmd, not a.no_write)
    step_file(results, a.runs, cmd, not a.no_write)
    print("\ntotal %.0fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
