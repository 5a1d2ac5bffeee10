import Foundation
import Testing
import NN
import Weights
import Backbones

/// ResNet-34 and ResNet-50 (BasicBlock and Bottleneck stages, the registry's descriptions, folded
/// for inference) against torchvision's on the same seeded weights and input: features and logits
/// within PyTorch's own float32 noise (SeededResNetReference.swift, tools/seeded_parity.py).
@Suite struct SeededParityTests {
    @Test(arguments: [Architecture.resnet34, .resnet50])
    func featuresAndLogitsMatchPyTorch(arch: Architecture) throws {
        let ref = try #require(seededResNetReferences[arch.name])
        #expect(ref.featureDimension == arch.featureDimension)
        let d = arch.featureDimension, k = seededResNetClasses
        let source = SeededWeights(seed: seededResNetSeed, classifier: ["fc.weight": [k, d], "fc.bias": [k]])
        let net = try FoldedNetwork(arch, weights: source)
        let shape = seededResNetInputShape
        let input = seededInputValues(shape: shape, seed: seededResNetSeed)
        let features = net.features(input, height: shape[2], width: shape[3])
        let logits = try #require(net.logits(features: features))
        let (fe, fc) = compare(features, ref.features, cols: d)
        let (le, lc) = compare(logits, ref.logits, cols: k)
        print("\(arch.name) seeded: features rel L2 \(fe), 1 - cos \(1 - fc); logits rel L2 \(le), 1 - cos \(1 - lc)")
        #expect(fe <= ref.featuresTolerance.relativeL2 && 1 - fc <= ref.featuresTolerance.cosineGap)
        #expect(le <= ref.logitsTolerance.relativeL2 && 1 - lc <= ref.logitsTolerance.cosineGap)
    }
}
