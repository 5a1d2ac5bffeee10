import Foundation
import Audit
import Reproducible
import Parallelism
import NN

/// Synthetic feature-like vectors: `count` rows of `dimension` non-negative values (like pooled
/// ReLU features) around `clusters` centres, so that distinct rows have cosine similarities spread
/// over roughly 0.5-0.85; the last `planted` rows are near copies (small noise) of rows 0, 1, ...
public func syntheticAuditVectors(count: Int, dimension d: Int, clusters: Int = 1000, planted: Int = 100,
                                  seed: UInt64 = 7) -> [Float] {
    var rng = SplitMix64(seed: seed)
    func gauss() -> Float { (0..<4).reduce(Float(0)) { s, _ in s + rng.nextFloat() } - 2 }   // mean 0, sd 0.58
    let centres = (0..<(clusters * d)).map { _ in rng.nextFloat() }
    var v = [Float](repeating: 0, count: count * d)
    let distinct = count - min(planted, count / 2)
    for r in 0..<distinct {
        let c = r % clusters
        for j in 0..<d { v[r * d + j] = abs(centres[c * d + j] + 0.6 * gauss()) }
    }
    for (p, r) in (distinct..<count).enumerated() {
        for j in 0..<d { v[r * d + j] = abs(v[p * d + j] * (1 + 0.05 * gauss())) }
    }
    return v
}

/// Times the audit's similarity join (near duplicates at `threshold` and the k = 10 nearest
/// neighbours of every row) over synthetic vectors, `rounds` times, and reports the median.
public func runAuditBenchmark(count: Int, dimension d: Int, threshold: Float = 0.90, rounds: Int = 3,
                              workers: Int = defaultWorkerCount) -> String {
    let planted = min(100, count / 2)
    let raw = syntheticAuditVectors(count: count, dimension: d, planted: planted)
    let unit = normalizedRows(raw, count: count, dimension: d)
    var times: [Double] = [], cpu: [Double] = []
    var last: SimilarityJoinResult? = nil
    for _ in 0..<max(1, rounds) {
        let t0 = DispatchTime.now().uptimeNanoseconds, c0 = processCPUSeconds()
        last = unit.withUnsafeBufferPointer {
            SimilarityJoin.run($0.baseAddress!, count: count, dimension: d, k: 10, threshold: threshold, workers: workers)
        }
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        cpu.append(processCPUSeconds() - c0)
    }
    let sorted = times.sorted(), median = sorted[sorted.count / 2]
    let r = last!
    let distinct = count - planted
    let plantedFound = r.pairs.filter { $0.second >= distinct && $0.first == $0.second - distinct }.count
    // Similarities of distinct rows: the nearest neighbour of the first 1000 original rows (not their copies).
    var nearest: [Float] = []
    for row in 0..<min(1000, distinct) where row >= planted { nearest.append(r.similarities[row * r.k]) }
    nearest.sort()
    let flops = Double(count) * Double(count + SimilarityJoin.blockRows) * Double(d)   // I <= J tiles, 2 flops per multiply-add
    var s = "audit similarity join: \(count) x \(d) vectors, k 10, threshold \(threshold), \(workers) worker(s), \(rounds) round(s)\n"
    s += "  times: " + times.map { String(format: "%.2f s", $0) }.joined(separator: ", ") + String(format: "; median %.2f s", median)
    s += String(format: " (%.0f GFLOP/s in the products)\n", flops / median / 1e9)
    let cpuMedian = cpu.sorted()[cpu.count / 2]
    s += "  CPU time: " + cpu.map { String(format: "%.1f s", $0) }.joined(separator: ", ")
    s += String(format: "; median %.1f s = %.2f cores busy on average (a shared machine gives fewer than %d)\n",
                cpuMedian, cpuMedian / median, workers)
    s += "  pairs >= threshold: \(r.pairs.count)\(r.truncated ? " (truncated)" : ""); planted near copies found: \(plantedFound) of \(planted)\n"
    if !nearest.isEmpty {
        s += String(format: "  nearest-neighbour similarity of distinct rows: min %.3f, median %.3f, max %.3f\n",
                    nearest.first!, nearest[nearest.count / 2], nearest.last!)
    }
    return s
}
