import Foundation
import NN
import Heads
import Reproducible
import Parallelism

/// The heads benchmark (`probe bench heads`): the tutorial's SGD head over cached features for
/// several seeds (best validation accuracy, time of 25 epochs: median of `repeats` runs after a
/// warm-up) and the L-BFGS probe (standardised and raw features), then the per-class metrics of
/// the first seed's best head. Prints figures, asserts nothing. PyTorch's side of the comparison
/// is tools/bench_heads_torch.py (`bench --swift "<command running this>"` prints both).
public func runHeadsBenchmark(train: LabeledFeatures, val: LabeledFeatures, seeds: [UInt64] = [0, 1, 2],
                              repeats: Int = 5, lbfgsC: Double = 1.0, classNames: [String]? = nil) -> String {
    var out = "heads benchmark: train \(train.count) x \(train.dimension)"
    out += train.views > 1 ? " (\(train.views) views)" : ""
    out += ", val \(val.count), \(train.classes) classes, \(ThreadCount.workersDescription)\n"
    do {
        let tutorial = "lr 0.001, momentum 0.9, batch 4, StepLR(7, 0.1), 25 epochs"
        out += "SGD tutorial head (\(tutorial)):\n"
        _ = try SGDTrainer(options: .tutorial(seed: 12345)).train(train, validation: val)  // warm-up
        var firstBest: LinearHead?
        var medians: [Double] = []
        for seed in seeds {
            var times: [Double] = []
            var result: SGDResult?
            for _ in 0..<max(1, repeats) {
                let r = try SGDTrainer(options: .tutorial(seed: seed)).train(train, validation: val)
                times.append(r.seconds)
                result = r
            }
            guard let r = result else { continue }
            times.sort()
            let median = times[times.count / 2]
            medians.append(median)
            if firstBest == nil { firstBest = r.bestHead }
            out += "SGD seed \(seed): best val acc \(fixed(r.bestValidationAccuracy ?? 0, 4))"
            out += " (epoch \(r.bestEpoch.map(String.init) ?? "-")), final train loss \(fixed(r.epochs.last?.trainLoss ?? 0, 4));"
            out += " 25 epochs \(fixed(median, 4)) s (median of \(times.count), min \(fixed(times[0], 4)))\n"
        }
        if !medians.isEmpty {
            let perEpoch = medians.reduce(0, +) / Double(medians.count) / 25
            out += "SGD: \(fixed(perEpoch * 1000, 3)) ms per epoch (\(train.count) train + \(val.count) val rows)\n"
        }
        for standardize in [true, false] {
            var o = LBFGSOptions()
            o.C = lbfgsC
            o.standardize = standardize
            _ = try LBFGSTrainer(options: o).train(train, validation: val)  // warm-up
            let r = try LBFGSTrainer(options: o).train(train, validation: val)
            out += "L-BFGS C=\(lbfgsC) \(standardize ? "standardized" : "raw features"): val acc "
            out += "\(fixed(r.validationMetrics?.accuracy ?? 0, 4)), train acc \(fixed(r.trainMetrics.accuracy, 4)); "
            out += "\(r.iterations) iterations, \(r.evaluations) evaluations, \(r.converged ? "converged" : "not converged")"
            out += " (\(r.stopReason)); \(fixed(r.seconds, 4)) s\n"
        }
        if let h = firstBest {
            out += "best SGD head of seed \(seeds.first ?? 0) on val:\n"
            out += try evaluate(h, on: val).formatted(classNames: classNames)
        }
    } catch {
        out += "error: \(error)\n"
    }
    return out
}
