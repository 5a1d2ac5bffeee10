import Foundation
import Backbones
import Testing
import NN
import Store
@testable import Extract
import Parallelism
import TestSupport

/// Extraction gives bit-identical features whatever the number of worker threads (1, 2, 3, 7 on
/// any machine: the kernels cut their work by shape, not by worker count; 7 workers also run two
/// decoding threads) and whatever the batch size (1, 7, 32, 64: every image is computed alone, so
/// no GEMM's shape depends on its neighbours).
@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights)"))
struct ExtractThreadIdentityTests {
    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func featuresAreIdenticalForAnyWorkerCountAndBatchSize(kind: Architecture) throws {
        let images = Array(try manifestImages().prefix(36))
        let dir = temporaryDirectory("threads")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeFolder(dir + "/data/train", files: images)
        #expect(ThreadCount.decoders(workers: 7) == 2 && ThreadCount.decoders(workers: 2) == 1)
        var reference: [String: [UInt32]]? = nil
        // (about 70 tensors: batch 64 is one batch of 64 and one of 8, batch 32 two of 32 and one of 8)
        for (workers, batch) in [(1, 1), (2, 7), (2, 32), (2, 64), (3, 32), (7, 5)] {
            let store = try FeatureStore(path: dir + "/store-\(workers)-\(batch).sqlite")
            var options = ExtractOptions(backbone: kind, weightsPath: kind == .resnet18 ? resnetRefWeights : mobilenetWeights,
                                         views: 1, batchSize: batch)
            options.workers = workers
            let summary = try extract(root: dir + "/data", into: store, options: options)
            #expect(summary.computed >= 30 && summary.vectorsWritten == 2 * summary.computed)  // (some images share content)
            let backbone = try #require(try store.backbones().first)
            var bits: [String: [UInt32]] = [:]
            for s in try store.samples() {
                for (transform, view) in [(validationTransform, 0), (augmentedTransform, 1)] {
                    let v = try #require(try store.vector(sha256: s.sha256, backbone: backbone, transform: transform, view: view))
                    bits[s.sha256 + transform] = v.map(\.bitPattern)
                }
            }
            #expect(bits.count == 2 * summary.computed)
            if let reference {
                let differing = bits.filter { reference[$0.key] != $0.value }.count
                print("\(kind.name) extract, \(workers) workers, batch \(batch): \(differing) of \(bits.count) vectors differ from 1 worker's, batch 1")
                #expect(differing == 0)
            } else {
                reference = bits
            }
        }
    }
}
