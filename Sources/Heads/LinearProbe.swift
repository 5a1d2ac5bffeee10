#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Reproducible
import Parallelism

/// Options of `linearProbe`, DINOv2's linear-evaluation protocol over cached features.
public struct LinearProbeOptions: Sendable, Equatable {
    /// Candidate C values, tried in this order (warm starts follow it): DINOv2's 45 values
    /// log-spaced from 1e-6 to 1e5 (`np.logspace(-6, 5, 45)`).
    public var candidates: [Double] = LinearProbeOptions.dinov2Candidates
    /// Fraction of the training images held out (seeded, random) to choose C.
    public var holdoutFraction = 0.1
    /// Seed of the held-out draw.
    public var seed: UInt64 = 0
    /// Solver settings (C is set per candidate; standardisation, class weights and tolerances apply to every fit).
    public var solver = LBFGSOptions.precise
    /// The sweep's fits in float32 arithmetic (twice as fast; their only use is the held-out
    /// accuracy that chooses C); the refit at the chosen C is always float64.
    public var float32Sweep = true
    /// Start each fit of the sweep from the linear extrapolation of the two previous solutions
    /// (in log C) instead of the previous one alone.
    public var extrapolateWarmStarts = true
    /// Stopping rules of the sweep's fits (the refit uses `solver`'s): max |gradient| of the
    /// mean-scaled objective, and the relative objective change per iteration. Float32 sums are
    /// exact to ~1e-7 relative, so asking for less than ~1e-9 change would only spin the line search.
    public var sweepGradientTolerance = 1e-5
    public var sweepRelativeTolerance = 1e-9

    public init() {}

    public static var dinov2Candidates: [Double] {
        (0..<45).map { i in pow(10, -6 + 0.25 * Double(i)) }  // 11/44 = 0.25 exactly
    }

    func validate() throws(HeadsError) {
        guard !candidates.isEmpty, candidates.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw .invalidOption("give at least one positive C candidate")
        }
        guard holdoutFraction > 0, holdoutFraction < 1 else {
            throw .invalidOption("the held-out fraction must be in (0, 1), got \(holdoutFraction)")
        }
    }
}

/// One candidate of the sweep.
public struct LinearProbeCandidate: Sendable, Equatable, Codable {
    public var C: Double
    /// Accuracy on the held-out part of train, of the fit on the rest.
    public var holdoutAccuracy: Double
    public var iterations: Int
    /// Objective evaluations (the line search may take several per iteration).
    public var evaluations: Int
    public var converged: Bool
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case C, iterations, evaluations, converged, seconds
        case holdoutAccuracy = "holdout_accuracy"
    }
}

/// What `linearProbe` returns.
public struct LinearProbeResult: Sendable {
    /// The chosen C: the first candidate with the best held-out accuracy.
    public var C: Double
    public var sweep: [LinearProbeCandidate]
    /// The refit on all of train at `C` (its head works on raw features).
    public var fit: LogisticFit
    /// The refit head on the validation split (nil without one).
    public var validation: ClassificationMetrics?
    public var trainCount: Int
    public var holdoutCount: Int
    public var sweepSeconds: Double
    public var refitSeconds: Double
}

/// Indices of `labels` split into (fit, held out), stratified: of each class's n_k images,
/// round(fraction * n_k) are held out, but at most n_k - 1 (every class keeps an image to fit; a
/// class absent from the fit would have an unbounded bias), drawn by a seeded shuffle of each class
/// (`SplitMix64(seed:stream: 5)`, classes in order); each part in increasing order. When rounding
/// holds out nothing at all, one image of the largest class is held out.
public func holdoutSplit(labels: [Int], classes: Int, fraction: Double, seed: UInt64) -> (fit: [Int], heldOut: [Int]) {
    var rng = SplitMix64(seed: seed, stream: RandomStream.holdout)
    var members = [[Int]](repeating: [], count: classes)
    for (i, l) in labels.enumerated() where l >= 0 && l < classes { members[l].append(i) }
    var held: [Int] = [], fit: [Int] = []
    for k in 0..<classes {
        var m = members[k]
        if m.count > 1 { for i in stride(from: m.count - 1, to: 0, by: -1) { m.swapAt(i, rng.next(below: i + 1)) } }
        let h = min(Int((fraction * Double(m.count)).rounded()), max(m.count - 1, 0))
        held += m[..<h]
        fit += m[h...]
    }
    if held.isEmpty, let k = (0..<classes).max(by: { members[$0].count < members[$1].count }), members[k].count > 1 {
        let moved = fit.first { labels[$0] == k }!
        fit.removeAll { $0 == moved }
        held.append(moved)
    }
    return (fit.sorted(), held.sorted())
}

/// DINOv2's linear probe: multinomial logistic regression with an L2 penalty (scikit-learn's
/// objective, `LBFGSTrainer`) for every candidate C on train minus a seeded, stratified 10% held out, in
/// increasing order, each fit warm-started from the previous C's solution; the C of the best
/// held-out accuracy (the first on ties) is refitted on all of train (warm-started from its sweep
/// solution) and evaluated on `validation`. Uses the first view of every image. Standardisation
/// (when on) uses the statistics of all of train for the sweep and the refit.
public func linearProbe(train: LabeledFeatures, validation: LabeledFeatures? = nil,
                        options: LinearProbeOptions = LinearProbeOptions()) throws(HeadsError) -> LinearProbeResult {
    try options.validate()
    try options.solver.validate()
    guard train.count >= 2 else { throw .empty("the training split (the linear probe needs at least 2 images)") }
    if let v = validation {
        guard v.dimension == train.dimension else { throw .dimensionMismatch(expected: train.dimension, got: v.dimension) }
    }
    let clock = ContinuousClock()
    let (fitRows, heldOut) = holdoutSplit(labels: train.labels, classes: train.classes, fraction: options.holdoutFraction,
                                          seed: options.seed)
    guard !heldOut.isEmpty else { throw .empty("the held-out part of train (the linear probe needs a class with at least 2 images)") }
    let d = train.dimension
    let x = train.firstViews
    // Rows ordered fit-first, so that the sweep's fits are a prefix of the refit's matrix.
    var ordered = [Float](repeating: 0, count: train.count * d)
    var orderedLabels = [Int](repeating: 0, count: train.count)
    for (dst, src) in (fitRows + heldOut).enumerated() {
        for i in 0..<d { ordered[dst * d + i] = x[src * d + i] }
        orderedLabels[dst] = train.labels[src]
    }
    let all = try LabeledFeatures(values: ordered, count: train.count, dimension: d, labels: orderedLabels, classes: train.classes)
    let held = try LabeledFeatures(values: Array(ordered[(fitRows.count * d)...]), count: heldOut.count, dimension: d,
                                   labels: Array(orderedLabels[fitRows.count...]), classes: train.classes)
    let problem = LogisticProblem(all, standardize: options.solver.standardize, workers: options.solver.workers)

    let t0 = clock.now
    var sweep: [LinearProbeCandidate] = []
    var solutions: [[Double]] = []
    var previous: [Double]? = nil
    problem.objective.useFloat32 = options.float32Sweep
    for c in options.candidates {
        var o = options.solver
        o.C = c
        o.gradientTolerance = max(o.gradientTolerance, options.sweepGradientTolerance)
        o.relativeTolerance = max(o.relativeTolerance, options.sweepRelativeTolerance)
        // Warm start: the previous solution, moved on along the path (linear extrapolation in
        // log C from the two previous candidates: the grid is evenly spaced in log C) while the
        // path moves; where the previous fit had nothing to do (flat path, large C), the previous
        // solution itself.
        var start = previous
        if options.extrapolateWarmStarts, solutions.count >= 2, let p = previous, (sweep.last?.evaluations ?? 0) > 2 {
            let q = solutions[solutions.count - 2]
            start = zip(p, q).map { 2 * $0 - $1 }
        }
        let f = try LBFGSTrainer(options: o).fit(problem, rows: fitRows.count, start: start)
        let acc = try evaluate(f.head, on: held).accuracy
        sweep.append(LinearProbeCandidate(C: c, holdoutAccuracy: acc, iterations: f.iterations, evaluations: f.evaluations, converged: f.converged,
                                          seconds: f.seconds))
        solutions.append(f.solution)
        previous = f.solution
    }
    var best = 0
    for i in sweep.indices where sweep[i].holdoutAccuracy > sweep[best].holdoutAccuracy { best = i }
    let t1 = clock.now
    problem.objective.useFloat32 = false
    var o = options.solver
    o.C = sweep[best].C
    let refit = try LBFGSTrainer(options: o).fit(problem, rows: train.count, start: solutions[best])
    let val = try validation.map { v throws(HeadsError) in try evaluate(refit.head, on: v) }
    return LinearProbeResult(C: sweep[best].C, sweep: sweep, fit: refit, validation: val, trainCount: train.count,
                             holdoutCount: heldOut.count, sweepSeconds: (t1 - t0).seconds, refitSeconds: (clock.now - t1).seconds)
}


// MARK: - Few-shot draws

/// The rows of a few-shot training set: `shots` images of every class (all of a class with fewer),
/// drawn by a seeded shuffle of each class's rows (`SplitMix64(seed: seed + draw * golden, stream: 6)`),
/// in increasing order. The draws of one (seed, draw) are nested: the first n of a class's shuffled
/// rows, so the 1-shot set is inside the 2-shot set, and so on.
public func fewShotRows(labels: [Int], classes: Int, shots: Int, seed: UInt64, draw: Int) -> [Int] {
    var rng = SplitMix64(seed: seed &+ UInt64(draw) &* SplitMix64.golden, stream: RandomStream.fewShot)
    var out: [Int] = []
    var members = [[Int]](repeating: [], count: classes)
    for (i, l) in labels.enumerated() where l >= 0 && l < classes { members[l].append(i) }
    for k in 0..<classes {
        var m = members[k]
        if m.count > 1 { for i in stride(from: m.count - 1, to: 0, by: -1) { m.swapAt(i, rng.next(below: i + 1)) } }
        out += m.prefix(max(0, shots))
    }
    return out.sorted()
}

/// The rows `rows` of a split (first views), as a new split.
public func subset(_ data: LabeledFeatures, rows: [Int]) throws(HeadsError) -> LabeledFeatures {
    let d = data.dimension, k = data.views
    var v = [Float]()
    v.reserveCapacity(rows.count * d)
    data.values.withUnsafeBufferPointer { p in
        for r in rows { v.append(contentsOf: UnsafeBufferPointer(start: p.baseAddress! + r * k * d, count: d)) }
    }
    return try LabeledFeatures(values: v, count: rows.count, dimension: d, labels: rows.map { data.labels[$0] }, classes: data.classes)
}

/// Mean and sample standard deviation (n - 1 in the denominator; 0 for one value).
public func meanAndStandardDeviation(_ xs: [Double]) -> (mean: Double, std: Double) {
    guard !xs.isEmpty else { return (0, 0) }
    let m = xs.reduce(0, +) / Double(xs.count)
    guard xs.count > 1 else { return (m, 0) }
    let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    return (m, v.squareRoot())
}
