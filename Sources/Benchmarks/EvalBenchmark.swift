import Foundation
import Heads
import Workflows
import Reproducible
import Parallelism

/// Synthetic features for the protocol benchmark: `classes` Gaussian class means (each coordinate
/// N(0, separation^2)), every row its class mean plus N(0, 1) noise; labels round-robin. Seeded.
public func syntheticGaussianFeatures(count: Int, dimension: Int, classes: Int, separation: Double = 0.08,
                                      seed: UInt64 = 0, meansSeed: UInt64 = 99) throws -> LabeledFeatures {
    var meanRNG = SplitMix64(seed: meansSeed, stream: 11)
    func normal(_ rng: inout SplitMix64) -> Double {
        // Box-Muller; u1 in (0, 1].
        let u1 = (Double(rng.next() >> 11) + 1) / 9_007_199_254_740_992.0
        let u2 = Double(rng.next() >> 11) / 9_007_199_254_740_992.0
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
    let means = (0..<(classes * dimension)).map { _ in Float(separation * normal(&meanRNG)) }
    var values = [Float](repeating: 0, count: count * dimension)
    var labels = [Int](repeating: 0, count: count)
    var rng = SplitMix64(seed: seed, stream: 12)
    for r in 0..<count {
        let k = r % classes
        labels[r] = k
        for i in 0..<dimension { values[r * dimension + i] = means[k * dimension + i] + Float(normal(&rng)) }
    }
    return try LabeledFeatures(values: values, count: count, dimension: dimension, labels: labels, classes: classes)
}

/// `probe bench eval`: the whole protocol set of `probe eval --protocols` (linear probe with the
/// 45-C sweep, k-NN, few-shot, calibration) over synthetic Gaussian features in memory; prints each
/// protocol's wall time and results. Asserts nothing.
public func runEvalBenchmark(train: Int = 100_000, val: Int = 10_000, dimension: Int = 512, classes: Int = 10,
                             separation: Double = 0.08, options: EvalProtocolOptions = EvalProtocolOptions()) throws -> String {
    let clock = ContinuousClock()
    let t0 = clock.now
    let tr = try syntheticGaussianFeatures(count: train, dimension: dimension, classes: classes, separation: separation, seed: 1)
    let va = try syntheticGaussianFeatures(count: val, dimension: dimension, classes: classes, separation: separation, seed: 2)
    let made = clock.now - t0
    var out = "eval benchmark: \(train) train + \(val) val synthetic vectors, \(dimension)-d, \(classes) Gaussian classes "
    out += "(separation \(separation)), \(ThreadCount.workersDescription); made in \(fixed(made.seconds, 2)) s\n"
    let t1 = clock.now
    let report = try runEvalProtocols(train: tr, validation: va, classNames: (0..<classes).map { "c\($0)" }, options: options)
    let total = (clock.now - t1).seconds
    for p in EvalProtocol.allCases {
        if let s = report.seconds[p.rawValue] { out += "  \(p.rawValue): \(fixed(s, 2)) s\n" }
    }
    if let l = report.linear {
        let its = l.sweep.map(\.iterations)
        out += "  linear sweep: \(l.sweep.count) fits, \(its.reduce(0, +)) L-BFGS iterations (max \(its.max() ?? 0)), "
        out += "\(l.sweep.map(\.evaluations).reduce(0, +)) evaluations, "
        out += "\(l.sweep.filter { !$0.converged }.count) not converged; refit \(l.refit_iterations) iterations\n"
        out += "  evaluations per C (1e-6 ... 1e5): \(l.sweep.map { String($0.evaluations) }.joined(separator: " "))\n"
        out += "  held-out accuracy per C (%): \(l.sweep.map { fixed(100 * $0.holdoutAccuracy, 2) }.joined(separator: " "))\n"
        out += "  linear: sweep \(fixed(l.sweep_seconds, 2)) s, refit \(fixed(l.refit_seconds, 2)) s, "
        out += "the rest (copies, float64 and float32 matrices, standardisation) \(fixed(l.seconds - l.sweep_seconds - l.refit_seconds, 2)) s\n"
    }
    out += "  all protocols: \(fixed(total, 2)) s\n"
    out += report.render()
    return out
}

extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
