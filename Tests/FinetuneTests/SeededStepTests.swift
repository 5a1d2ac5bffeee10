import Foundation
import Testing
import NN
import Weights
import Backbones
@testable import Finetune

/// One training step of ResNet-34 and ResNet-50 (the trainable network built from the registry's
/// descriptions, BatchNorm in training mode) against torchvision's on seeded weights: loss, logits,
/// every parameter's gradient norm, and the whole fc.weight and conv1.weight gradients, within
/// PyTorch's own float32 noise (SeededResNetStepReference.swift, tools/seeded_parity.py).
@Suite(.serialized) struct SeededStepTests {
    @Test(arguments: [Architecture.resnet34, .resnet50])
    func oneStepMatchesPyTorch(arch: Architecture) throws {
        let ref = try #require(seededResNetStepReferences[arch.name])
        let shape = [2, 3, 128, 128], classes = 10, seed: UInt64 = 7
        // the state_dict's names and shapes from the network itself, the values seeded as on PyTorch's side
        let blank = try TrainableNetwork(architecture: arch, classes: classes, weights: nil, maxBatch: 1, height: 128, width: 128)
        let entries = blank.stateDictTensors().map { (name: $0.name, shape: $0.shape) }
        let net = try TrainableNetwork(architecture: arch, classes: classes, weights: seededStateDict(entries: entries, seed: seed),
                                       maxBatch: 2, height: 128, width: 128, keepLastLayer: true, dropout: 0)
        #expect(net.parameterEntries.map(\.name) == ref.gradientNorms.map(\.name))  // torchvision's named_parameters() order
        let input = seededInputValues(shape: shape, seed: seed)
        let logits = input.withUnsafeBufferPointer { net.forward(input: $0.baseAddress!, count: 2, training: true) }
        let (loss, _) = net.lossAndBackward(labels: seededResNetStepLabels)
        let worstLogit = zip(logits, ref.logits).map { abs(Double($0) - Double($1)) }.max() ?? 0
        #expect(abs(loss - ref.loss) <= ref.lossTolerance, "loss \(loss) vs \(ref.loss)")
        #expect(worstLogit <= ref.logitsTolerance, "logits differ by \(worstLogit)")
        var margin = (0.0, "")
        for r in ref.gradientNorms {
            let g = try #require(net.gradient(r.name))
            let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let rel = abs(norm - r.norm) / r.norm
            if rel / r.tolerance > margin.0 { margin = (rel / r.tolerance, r.name) }
            #expect(rel <= r.tolerance, "\(r.name): \(norm) vs \(r.norm) (rel \(rel), tolerance \(r.tolerance))")
        }
        let fc = relativeL2(try #require(net.gradient("fc.weight")), ref.fcWeightGradient)
        let conv1 = relativeL2(try #require(net.gradient("conv1.weight")), ref.conv1WeightGradient)
        #expect(fc <= ref.fcWeightGradientTolerance)
        #expect(conv1 <= ref.conv1WeightGradientTolerance)
        print("\(arch.name) seeded step: loss \(loss) (ref \(ref.loss)), max logit diff \(worstLogit), fc.weight grad rel L2 \(fc), conv1.weight grad rel L2 \(conv1), largest gradient-norm deviation / tolerance \(margin.0) at \(margin.1)")
    }

    private func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (Double(x) - Double(y)) * (Double(x) - Double(y)); den += Double(y) * Double(y) }
        return (num / max(den, 1e-30)).squareRoot()
    }
}
