import Foundation
import Testing
import NN
import Backbones
import Benchmarks

@Test func forwardBenchmarkRunsOnSeededWeights() throws {
    // a smoke run of `probe bench forward`'s library side (timings are printed, never asserted)
    let table = try runForwardBenchmark(batches: [1], iterations: 1, resnetWeights: nil, mobilenetWeights: nil)
    let rows = table.split(separator: "\n")
    #expect(rows.count == 4)  // header line, column titles, one row per model
    #expect(rows.contains { $0.hasPrefix("resnet18 ") } && rows.contains { $0.hasPrefix("mobilenet_v2 ") })
    // synthetic weights give finite, non-degenerate features
    let m = try FoldedNetwork(.mobilenetV2, weights: SeededWeights(), options: ForwardOptions())
    let f = m.features([Float](repeating: 0.5, count: 3 * 64 * 64), height: 64, width: 64)
    #expect(f.count == 1280 && f.allSatisfy(\.isFinite) && f.contains { $0 != 0 })
}
