import Foundation
import Store
import Heads
import Neighbors


/// The evaluation protocols of `probe eval --protocols` over a store's cached train/val features.
public enum EvalProtocol: String, Sendable, CaseIterable, Codable {
    /// DINOv2's linear probe: C swept over 45 values on a held-out 10% of train, refit, val accuracy.
    case linear
    /// DINOv2's weighted k-NN classifier (cosine, k in 10, 20, 100, 200, votes exp(sim / 0.07)).
    case knn
    /// n images per class (1, 2, 4, 8, 16), seeded draws: linear probe at a fixed C and k-NN, mean and std.
    case fewshot
    /// Temperature scaling of the linear probe's head on val: ECE (15 bins) and NLL before and after.
    case calibration
}

/// Settings of `runEvalProtocols`.
public struct EvalProtocolOptions: Sendable {
    public var protocols: [EvalProtocol] = EvalProtocol.allCases
    public var linear = LinearProbeOptions()
    public var ks = [10, 20, 100, 200]
    public var knnTemperature = 0.07
    public var shots = [1, 2, 4, 8, 16]
    public var draws = 5
    /// Seed of the held-out split and of the few-shot draws.
    public var seed: UInt64 = 0
    /// C of the few-shot linear probes (fixed: there are too few images to hold any out):
    /// scikit-learn's default, on features standardised with all of train's statistics.
    public var fewShotC = 1.0
    /// k of the few-shot k-NN (capped at the few-shot set's size).
    public var fewShotK = 20
    public var bins = 15
    public init() {}
}

/// Results of `runEvalProtocols`; its JSON is `probe eval --protocols ... --json`.
public struct EvalProtocolReport: Sendable, Codable {
    public struct Linear: Sendable, Codable {
        public var C: Double
        public var accuracy: Double
        public var balanced_accuracy: Double
        public var holdout_images: Int
        public var standardized: Bool
        public var class_weight: String
        public var refit_iterations: Int
        public var refit_converged: Bool
        public var objective: Double
        public var sweep: [LinearProbeCandidate]
        public var seconds: Double
        /// Of which: the 45 fits of the sweep, and the refit.
        public var sweep_seconds: Double
        public var refit_seconds: Double
    }
    public struct KNN: Sendable, Codable {
        public var k: Int
        public var accuracy: Double
        public var balanced_accuracy: Double
    }
    public struct FewShot: Sendable, Codable {
        public var shots: Int
        public var train_images_mean: Double
        public var linear_accuracy_mean: Double
        public var linear_accuracy_std: Double
        public var linear_accuracies: [Double]
        public var knn_k: Int
        public var knn_accuracy_mean: Double
        public var knn_accuracy_std: Double
        public var knn_accuracies: [Double]
    }
    public var classes: [String]
    public var train_images: Int
    public var val_images: Int
    public var dimension: Int
    public var linear: Linear?
    public var knn: [KNN]?
    public var knn_temperature: Double?
    public var fewshot: [FewShot]?
    public var fewshot_C: Double?
    public var fewshot_draws: Int?
    public var calibration: CalibrationResult?
    /// Wall time of each protocol, seconds.
    public var seconds: [String: Double]

    /// A readable table of everything measured.
    public func render() -> String {
        var out = "\(train_images) train and \(val_images) val images, \(classes.count) classes, \(dimension)-d features\n"
        func pct(_ x: Double) -> String { fmt(100 * x, 2) }
        func secs(_ p: EvalProtocol) -> String { seconds[p.rawValue].map { " (" + fmt($0, 2) + " s)" } ?? "" }
        if let l = linear {
            out += "\nlinear probe\(secs(.linear)): C chosen \(shortNumber(l.C)) of \(l.sweep.count) on \(l.holdout_images) held-out train images"
            out += l.standardized ? ", standardised features" : ", raw features"
            out += l.class_weight == "none" ? "\n" : ", class weight \(l.class_weight)\n"
            out += "  val top-1 \(pct(l.accuracy))%   balanced \(pct(l.balanced_accuracy))%\n"
            let best = l.sweep.map(\.holdoutAccuracy).max() ?? 0
            let good = l.sweep.filter { $0.holdoutAccuracy == best }.map(\.C)
            if let lo = good.first, let hi = good.last {
                out += "  best held-out accuracy \(pct(best))%" + (lo == hi ? " at C \(shortNumber(lo))" : ", first at C \(shortNumber(lo)), last at C \(shortNumber(hi))")
                out += "; refit: \(l.refit_iterations) iterations\(l.refit_converged ? "" : " (not converged)")\n"
            }
        }
        if let k = knn {
            out += "\nk-NN\(secs(.knn)): cosine, votes exp(similarity / \(shortNumber(knn_temperature ?? 0.07)))\n"
            out += "      k   top-1   balanced\n"
            for r in k {
                out += pad(String(r.k), 7) + pad(pct(r.accuracy) + "%", 8) + pad(pct(r.balanced_accuracy) + "%", 11) + "\n"
            }
        }
        if let f = fewshot {
            out += "\nfew-shot\(secs(.fewshot)): \(fewshot_draws ?? 0) seeded draws, mean +- std (sample) of val top-1\n"
            out += "  shots   linear (C=\(shortNumber(fewshot_C ?? 1)))       k-NN\n"
            for r in f {
                out += pad(String(r.shots), 7) + pad(pct(r.linear_accuracy_mean) + " +- " + pct(r.linear_accuracy_std), 19)
                out += pad(pct(r.knn_accuracy_mean) + " +- " + pct(r.knn_accuracy_std), 17) + "  (k=\(r.knn_k))\n"
            }
        }
        if let c = calibration {
            out += "\ncalibration\(secs(.calibration)): temperature scaling of the linear probe on val (\(c.count) images)\n"
            out += "  temperature \(fmt(c.temperature, 4))\n"
            out += "  ECE (\(c.bins) bins) \(fmt(c.eceBefore, 4)) -> \(fmt(c.eceAfter, 4))\n"
            out += "  NLL            \(fmt(c.nllBefore, 4)) -> \(fmt(c.nllAfter, 4))\n"
        }
        return out
    }
}

func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
func shortNumber(_ x: Double) -> String {
    let s = String(format: "%.3g", x)
    return s
}

/// Runs the chosen protocols over a train and a validation split (first views).
public func runEvalProtocols(train: LabeledFeatures, validation: LabeledFeatures, classNames: [String],
                             options: EvalProtocolOptions = EvalProtocolOptions(),
                             log: (String) -> Void = { _ in }) throws -> EvalProtocolReport {
    let clock = ContinuousClock()
    let want = Set(options.protocols)
    var report = EvalProtocolReport(classes: classNames, train_images: train.count, val_images: validation.count,
                                    dimension: train.dimension, seconds: [:])
    var linearOptions = options.linear
    linearOptions.seed = options.seed
    var probe: LinearProbeResult?
    if want.contains(.linear) || want.contains(.calibration) {
        log("linear probe: \(linearOptions.candidates.count) values of C ...")
        let t = clock.now
        let r = try linearProbe(train: train, validation: validation, options: linearOptions)
        probe = r
        let v = r.validation!
        report.linear = .init(C: r.C, accuracy: v.accuracy, balanced_accuracy: v.balancedAccuracy, holdout_images: r.holdoutCount,
                              standardized: linearOptions.solver.standardize, class_weight: linearOptions.solver.classWeight.rawValue,
                              refit_iterations: r.fit.iterations, refit_converged: r.fit.converged, objective: r.fit.sumObjective,
                              sweep: r.sweep, seconds: seconds(since: t), sweep_seconds: r.sweepSeconds, refit_seconds: r.refitSeconds)
        report.seconds[EvalProtocol.linear.rawValue] = seconds(since: t)
    }
    if want.contains(.knn) {
        log("k-NN ...")
        let t = clock.now
        let knn = try KNNClassifier(vectors: train.firstViews, dimension: train.dimension, labels: train.labels, classes: train.classes)
        let ks = options.ks.map { min($0, train.count) }
        let predictions = try knn.classify(queries: validation.firstViews, ks: ks, temperature: options.knnTemperature)
        report.knn = try zip(ks, predictions).map { k, p in
            let m = try ClassificationMetrics(predicted: p, labels: validation.labels, classes: train.classes)
            return .init(k: k, accuracy: m.accuracy, balanced_accuracy: m.balancedAccuracy)
        }
        report.knn_temperature = options.knnTemperature
        report.seconds[EvalProtocol.knn.rawValue] = seconds(since: t)
    }
    if want.contains(.fewshot) {
        log("few-shot: \(options.shots.count) sizes x \(options.draws) draws ...")
        let t = clock.now
        let stats = linearOptions.solver.standardize ? LogisticProblem.standardization(of: train) : nil
        var rows: [EvalProtocolReport.FewShot] = []
        let valX = validation.firstViews
        for n in options.shots {
            var lin: [Double] = [], kn: [Double] = [], sizes: [Double] = []
            var kUsed = 0
            for draw in 0..<options.draws {
                let picked = fewShotRows(labels: train.labels, classes: train.classes, shots: n, seed: options.seed, draw: draw)
                let sub = try subset(train, rows: picked)
                sizes.append(Double(picked.count))
                var o = linearOptions.solver
                o.C = options.fewShotC
                let problem = LogisticProblem(sub, standardize: o.standardize, standardization: stats, workers: 1)
                let fit = try LBFGSTrainer(options: o).fit(problem)
                lin.append(try evaluate(fit.head, on: validation).accuracy)
                kUsed = min(options.fewShotK, picked.count)
                let knn = try KNNClassifier(vectors: sub.values, dimension: sub.dimension, labels: sub.labels, classes: sub.classes)
                let p = try knn.classify(queries: valX, ks: [kUsed], temperature: options.knnTemperature)[0]
                kn.append(try ClassificationMetrics(predicted: p, labels: validation.labels, classes: train.classes).accuracy)
            }
            let (lm, ls) = meanAndStandardDeviation(lin), (km, ks) = meanAndStandardDeviation(kn)
            rows.append(.init(shots: n, train_images_mean: sizes.reduce(0, +) / Double(max(1, sizes.count)),
                              linear_accuracy_mean: lm, linear_accuracy_std: ls, linear_accuracies: lin,
                              knn_k: kUsed, knn_accuracy_mean: km, knn_accuracy_std: ks, knn_accuracies: kn))
        }
        report.fewshot = rows
        report.fewshot_C = options.fewShotC
        report.fewshot_draws = options.draws
        report.seconds[EvalProtocol.fewshot.rawValue] = seconds(since: t)
    }
    if want.contains(.calibration), let probe {
        let t = clock.now
        report.calibration = try calibrate(probe.fit.head, on: validation, bins: options.bins)
        report.seconds[EvalProtocol.calibration.rawValue] = seconds(since: t)
    }
    if !want.contains(.linear) { report.linear = nil }
    return report
}

/// The protocols over a store's train and val splits of one backbone (view 0 of every image).
public func runEvalProtocols(store: FeatureStore, backbone: StoredBackbone, options: EvalProtocolOptions = EvalProtocolOptions(),
                             log: (String) -> Void = { _ in }) throws -> EvalProtocolReport {
    let data = try loadHeadDatasets(store: store, backbone: backbone, useViews: false)
    guard let val = data.validation else {
        throw WorkflowError.noFeatures("the store has no 'val' split of \(backbone.architecture) features; the protocols evaluate on it (extract a folder with train/ and val/)")
    }
    return try runEvalProtocols(train: data.train, validation: val, classNames: data.classNames, options: options, log: log)
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

func seconds(since t: ContinuousClock.Instant) -> Double {
    let c = (ContinuousClock.now - t).components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}
