import Reproducible
import Parallelism

/// Options of `LBFGSTrainer`.
public struct LBFGSOptions: Sendable, Equatable {
    /// Inverse regularisation strength, scikit-learn's `C`: the objective is
    /// `sum_i CE_i + 1/(2C) * ||W||^2` (bias not penalised). Larger C = weaker penalty.
    public var C: Double = 1.0
    /// Standardise features (training mean, population std; zero-variance columns keep scale 1)
    /// before fitting. The returned head has the scaling folded back in, so it works on raw features.
    /// Note that the penalty then applies to the weights of the standardised features.
    public var standardize = true
    /// Maximum L-BFGS iterations.
    public var maxIterations = 500
    /// Converged when max |gradient| of the mean-scaled objective (see `LBFGSTrainer`) is at most
    /// this. See `precise` for scikit-learn parity.
    public var gradientTolerance = 1e-6
    /// Also stop when the objective changes by at most this relative amount in one iteration
    /// (relative to the objective itself, however small: near-separable data at large C has a
    /// mean-scaled objective of 1e-7 and less).
    public var relativeTolerance = 1e-12
    /// Number of correction pairs kept (L-BFGS memory).
    public var history = 10
    /// Strong Wolfe constants (sufficient decrease, curvature) and the line search's evaluation budget.
    public var wolfeC1 = 1e-4
    public var wolfeC2 = 0.9
    public var maxLineSearchEvaluations = 25
    /// `.balanced`: every row's loss is weighted by n_samples / (n_classes * count(its class)),
    /// scikit-learn's `class_weight="balanced"` (classes counted among the rows fitted).
    public var classWeight = ClassWeighting.none
    /// Worker threads of the objective's blocks (results do not depend on it).
    public var workers = defaultWorkerCount

    public init() {}

    /// Tolerance 1e-10 and 1000 iterations (`probe train --solver lbfgs`, the linear probe's refit):
    /// the objective then lies within 1e-6 (relative) of scikit-learn's (tol=1e-10) for C up to 100
    /// on the ants/bees features (tools/check_linear_probe_sklearn.py), where 1e-6 left 1e-3 at C = 100.
    public static var precise: LBFGSOptions {
        var o = LBFGSOptions()
        o.gradientTolerance = 1e-10
        o.maxIterations = 1000
        return o
    }

    func validate() throws(HeadsError) {
        guard C > 0, C.isFinite else { throw .invalidOption("C must be a positive number, got \(C)") }
        guard maxIterations >= 1 else { throw .invalidOption("max iterations must be at least 1, got \(maxIterations)") }
        guard gradientTolerance >= 0, relativeTolerance >= 0 else { throw .invalidOption("tolerances must be >= 0") }
        guard history >= 1 else { throw .invalidOption("L-BFGS history must be at least 1, got \(history)") }
        guard wolfeC1 > 0, wolfeC1 < wolfeC2, wolfeC2 < 1 else {
            throw .invalidOption("Wolfe constants need 0 < c1 < c2 < 1, got \(wolfeC1), \(wolfeC2)")
        }
        guard maxLineSearchEvaluations >= 1 else { throw .invalidOption("line search budget must be at least 1") }
    }
}

/// One L-BFGS iteration.
public struct LBFGSIteration: Sendable, Equatable {
    public var iteration: Int
    /// Mean-scaled objective: mean CE + lambda/2 ||W||^2 with lambda = 1/(C N).
    public var objective: Double
    /// max |gradient| of the mean-scaled objective.
    public var gradientNorm: Double
    /// Accepted step length along the search direction.
    public var step: Double
    /// Objective evaluations so far.
    public var evaluations: Int
}

/// What `LBFGSTrainer.train` returns: the fit, with its metrics.
public struct LBFGSResult: Sendable {
    /// The fit over the training rows (its head on raw features, standardisation folded in).
    public var fit: LogisticFit
    /// Metrics of the head on the training rows (first views) and on the validation split, if given.
    public var trainMetrics: ClassificationMetrics
    public var validationMetrics: ClassificationMetrics?
    public var options: LBFGSOptions
    /// The whole of `train` (preparing the problem, the fit, the metrics).
    public var seconds: Double

    public var head: LinearHead { fit.head }
    public var converged: Bool { fit.converged }
    /// Why the optimiser stopped.
    public var stopReason: String { fit.stopReason }
    public var iterations: Int { fit.iterations }
    public var evaluations: Int { fit.evaluations }
    /// Final mean-scaled objective and its gradient's max-norm.
    public var objective: Double { fit.objective }
    public var gradientNorm: Double { fit.gradientNorm }
    /// The scikit-learn-form objective: sum CE + 1/(2C) ||W||^2 (= objective * N).
    public var sumObjective: Double { fit.sumObjective }
    public var trace: [LBFGSIteration] { fit.trace }
}

/// Full-batch L-BFGS multinomial logistic regression with an L2 penalty: scikit-learn's
/// `LogisticRegression(multi_class="multinomial", solver="lbfgs", C=C)` objective,
///
///     f(W, b) = sum_i CE(W x_i + b, y_i) + 1/(2C) ||W||_F^2      (bias not penalised),
///
/// minimised in float64 in its equivalent mean-scaled form `f / N` (mean CE + lambda/2 ||W||^2 with
/// lambda = 1/(C N)), which is what the tolerances refer to. All C classes have their own weight
/// vector (softmax over-parametrisation, like scikit-learn's multinomial), starting from zero.
///
/// Line search: strong Wolfe (bracketing + zoom with cubic interpolation; the algorithm of
/// Nocedal & Wright, 3.5-3.6, in the form of PyTorch's `_strong_wolfe`). First step length
/// min(1, 1/||g||_1), then 1. Two-loop recursion with H0 = s'y / y'y; pairs with s'y <= 1e-10 are
/// skipped. With augmented views, every view is a training row. Deterministic: no randomness.
public struct LBFGSTrainer: Sendable {
    public var options: LBFGSOptions

    public init(options: LBFGSOptions = LBFGSOptions()) {
        self.options = options
    }

    public func train(_ train: LabeledFeatures, validation: LabeledFeatures? = nil) throws(HeadsError) -> LBFGSResult {
        try options.validate()
        if let v = validation {
            guard v.dimension == train.dimension else { throw .dimensionMismatch(expected: train.dimension, got: v.dimension) }
            for (i, l) in v.labels.enumerated() where l >= train.classes {
                throw .labelOutOfRange(row: i, label: l, classes: train.classes)
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        let problem = LogisticProblem(train, standardize: options.standardize, workers: options.workers)
        let fit = try self.fit(problem)
        let trainMetrics = try evaluate(fit.head, on: train)
        let valMetrics = try validation.map { v throws(HeadsError) in try evaluate(fit.head, on: v) }
        return LBFGSResult(fit: fit, trainMetrics: trainMetrics, validationMetrics: valMetrics, options: options,
                           seconds: (clock.now - start).seconds)
    }

    /// Fits `options.C` over the first `rows` rows of a prepared problem (all by default), starting
    /// from `start` (a previous fit's `solution`, e.g. of a neighbouring C: a warm start) or from zero.
    public func fit(_ problem: LogisticProblem, rows: Int? = nil, start: [Double]? = nil) throws(HeadsError) -> LogisticFit {
        try options.validate()
        let n = rows ?? problem.rows
        guard n >= 1, n <= problem.rows else { throw .invalidOption("rows must be in 1...\(problem.rows), got \(n)") }
        let c = problem.classes, d = problem.dimension
        let objective = problem.objective
        objective.activeRows = n
        objective.workers = max(1, options.workers)
        objective.lambda = 1 / (options.C * Double(n))
        problem.applyClassWeights(options.classWeight, rows: n)
        var theta = [Double](repeating: 0, count: c * d + c)
        if let start {
            guard start.count == theta.count else {
                throw .shapeMismatch("a warm start of \(start.count) values for \(theta.count) parameters")
            }
            theta = start
        }
        let clock = ContinuousClock()
        let t0 = clock.now
        let out = minimizeLBFGS(&theta, objective: objective, options: options)
        return LogisticFit(head: problem.rawHead(theta), solution: theta, C: options.C, rows: n, converged: out.converged,
                           stopReason: out.reason, iterations: out.trace.count, evaluations: out.evaluations,
                           objective: out.f, gradientNorm: out.gradientNorm, sumObjective: out.f * Double(n),
                           trace: out.trace, seconds: (clock.now - t0).seconds)
    }

    /// Chooses C by stratified k-fold cross-validation on the training split: images of each class
    /// are shuffled with `SplitMix64(seed:stream: 4)` and dealt round-robin to the folds (all views
    /// of an image stay in one fold). Returns the mean validation accuracy per candidate and the
    /// best C (the first candidate with the highest mean accuracy, like scikit-learn's argmax).
    public func crossValidateC(_ train: LabeledFeatures, candidates: [Double], folds: Int = 5,
                               seed: UInt64 = 0) throws(HeadsError) -> (best: Double, scores: [(C: Double, accuracy: Double)]) {
        guard !candidates.isEmpty else { throw .invalidOption("give at least one candidate C") }
        guard folds >= 2, folds <= train.count else {
            throw .invalidOption("folds must be between 2 and the number of images (\(train.count)), got \(folds)")
        }
        let fold = stratifiedFolds(labels: train.labels, classes: train.classes, folds: folds, seed: seed)
        let rowLength = train.views * train.dimension
        func subset(_ keep: (Int) -> Bool) throws(HeadsError) -> LabeledFeatures {
            var v: [Float] = [], y: [Int] = []
            for i in 0..<train.count where keep(i) {
                v.append(contentsOf: train.values[(i * rowLength)..<((i + 1) * rowLength)])
                y.append(train.labels[i])
            }
            return try LabeledFeatures(values: v, count: y.count, dimension: train.dimension, views: train.views,
                                       labels: y, classes: train.classes)
        }
        var scores: [(C: Double, accuracy: Double)] = []
        var splits: [(LabeledFeatures, LabeledFeatures)] = []
        for f in 0..<folds {
            splits.append((try subset { fold[$0] != f }, try subset { fold[$0] == f }))
        }
        for cand in candidates {
            var o = options
            o.C = cand
            var correct = 0.0
            for (tr, va) in splits {
                let r = try LBFGSTrainer(options: o).train(tr, validation: va)
                correct += (r.validationMetrics?.accuracy ?? 0) * Double(va.count)
            }
            scores.append((cand, correct / Double(train.count)))
        }
        var best = 0
        for i in scores.indices where scores[i].accuracy > scores[best].accuracy { best = i }
        return (scores[best].C, scores)
    }
}

/// The fold of every row for stratified k-fold cross-validation. Rows of one group (the samples of
/// one image; default: every row its own group) land in the same fold. Groups are classed by their
/// first row's label; the groups of each class are shuffled with `SplitMix64(seed:stream:)` and dealt
/// round-robin to the folds, the deal continuing from one class to the next, so every fold gets its
/// share of each class.
public func stratifiedFolds(labels: [Int], groups: [Int]? = nil, classes: Int, folds: Int, seed: UInt64,
                            stream: UInt64 = RandomStream.folds) -> [Int] {
    let groups = groups ?? Array(labels.indices)
    precondition(labels.count == groups.count)
    var firstRowOfGroup: [Int: Int] = [:]
    var groupOrder: [Int] = []
    for (r, g) in groups.enumerated() where firstRowOfGroup[g] == nil {
        firstRowOfGroup[g] = r
        groupOrder.append(g)
    }
    var rng = SplitMix64(seed: seed, stream: stream)
    var foldOfGroup: [Int: Int] = [:]
    var next = 0
    for k in 0..<classes {
        var members = groupOrder.filter { labels[firstRowOfGroup[$0]!] == k }
        if members.count > 1 {
            for i in stride(from: members.count - 1, to: 0, by: -1) { members.swapAt(i, rng.next(below: i + 1)) }
        }
        for g in members { foldOfGroup[g] = next % max(folds, 1); next += 1 }
    }
    return groups.map { foldOfGroup[$0] ?? 0 }
}

/// Per-column mean and population std of a rows x d matrix; standardises it in place.
/// Columns with std < 1e-12 keep scale 1 (they are only centred).
func standardizeInPlace(_ x: inout [Double], rows: Int, dimension d: Int) -> (mean: [Double], scale: [Double]) {
    var mean = [Double](repeating: 0, count: d)
    var scale = [Double](repeating: 0, count: d)
    x.withUnsafeMutableBufferPointer { p in
        let xp = p.baseAddress!
        for r in 0..<rows { for i in 0..<d { mean[i] += xp[r * d + i] } }
        for i in 0..<d { mean[i] /= Double(rows) }
        for r in 0..<rows { for i in 0..<d { let t = xp[r * d + i] - mean[i]; scale[i] += t * t } }
        for i in 0..<d {
            let s = (scale[i] / Double(rows)).squareRoot()
            scale[i] = s < 1e-12 ? 1 : s
        }
        for r in 0..<rows { for i in 0..<d { xp[r * d + i] = (xp[r * d + i] - mean[i]) / scale[i] } }
    }
    return (mean, scale)
}

struct LBFGSOutcome {
    var f: Double
    var gradientNorm: Double
    var converged: Bool
    var reason: String
    var evaluations: Int
    var trace: [LBFGSIteration]
}

@inline(__always) func infNorm(_ v: [Double]) -> Double { v.reduce(0) { max($0, abs($1)) } }
@inline(__always) func dotD(_ a: [Double], _ b: [Double]) -> Double {
    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in dotDouble(ap.baseAddress!, bp.baseAddress!, a.count) } }
}

/// L-BFGS with a strong Wolfe line search; minimises `objective` starting from `theta` (in place).
func minimizeLBFGS(_ theta: inout [Double], objective: LogisticObjective, options: LBFGSOptions) -> LBFGSOutcome {
    let p = theta.count
    var evaluations = 0
    var trial = [Double](repeating: 0, count: p)
    var trialGrad = [Double](repeating: 0, count: p)
    func eval(_ th: [Double], _ g: inout [Double]) -> Double {
        evaluations += 1
        return th.withUnsafeBufferPointer { t in g.withUnsafeMutableBufferPointer { objective.evaluate(t.baseAddress!, gradient: $0.baseAddress!) } }
    }
    /// f and gradient at theta + t * d.
    func evalAlong(_ t: Double, _ d: [Double]) -> (Double, [Double]) {
        for i in 0..<p { trial[i] = theta[i] + t * d[i] }
        let f = eval(trial, &trialGrad)
        return (f, trialGrad)
    }

    var g = [Double](repeating: 0, count: p)
    var f = eval(theta, &g)
    var trace: [LBFGSIteration] = []
    if infNorm(g) <= options.gradientTolerance {
        return LBFGSOutcome(f: f, gradientNorm: infNorm(g), converged: true, reason: "gradient tolerance reached at the start",
                            evaluations: evaluations, trace: trace)
    }
    var sHist: [[Double]] = [], yHist: [[Double]] = [], rhoHist: [Double] = []
    var d = g.map { -$0 }
    var t = min(1, 1 / g.reduce(0) { $0 + abs($1) })
    var reason = "maximum iterations (\(options.maxIterations)) reached"
    var converged = false
    for iteration in 1...options.maxIterations {
        var gtd = dotD(g, d)
        if !(gtd < 0) {  // not a descent direction (numerical trouble): restart from steepest descent
            sHist.removeAll(); yHist.removeAll(); rhoHist.removeAll()
            d = g.map { -$0 }
            gtd = dotD(g, d)
            t = min(1, 1 / g.reduce(0) { $0 + abs($1) })
        }
        let ls = strongWolfe(f: f, g: g, gtd: gtd, t: t, d: d, options: options, eval: evalAlong)
        t = ls.t
        var sVec = d
        for i in 0..<p { sVec[i] *= t; theta[i] += sVec[i] }
        var yVec = ls.g
        for i in 0..<p { yVec[i] -= g[i] }
        let ys = dotD(yVec, sVec)
        let fPrev = f
        f = ls.f
        g = ls.g
        let gn = infNorm(g)
        trace.append(LBFGSIteration(iteration: iteration, objective: f, gradientNorm: gn, step: t, evaluations: evaluations))
        if gn <= options.gradientTolerance {
            converged = true
            reason = "gradient max-norm \(gn) <= \(options.gradientTolerance)"
            break
        }
        if abs(fPrev - f) <= options.relativeTolerance * max(abs(f), abs(fPrev), .leastNormalMagnitude) {
            converged = true
            reason = "relative objective change <= \(options.relativeTolerance)"
            break
        }
        if t * infNorm(d) < 1e-16 {
            reason = "line search made no progress"
            break
        }
        if ys > 1e-10 {
            if sHist.count == options.history { sHist.removeFirst(); yHist.removeFirst(); rhoHist.removeFirst() }
            sHist.append(sVec); yHist.append(yVec); rhoHist.append(1 / ys)
        }
        // Two-loop recursion: d = -H g.
        var q = g.map { -$0 }
        var alpha = [Double](repeating: 0, count: sHist.count)
        for k in stride(from: sHist.count - 1, through: 0, by: -1) {
            alpha[k] = rhoHist[k] * dotD(sHist[k], q)
            let yk = yHist[k]
            for i in 0..<p { q[i] -= alpha[k] * yk[i] }
        }
        if let yl = yHist.last, let sl = sHist.last {
            let h0 = dotD(sl, yl) / dotD(yl, yl)
            for i in 0..<p { q[i] *= h0 }
        }
        for k in 0..<sHist.count {
            let beta = rhoHist[k] * dotD(yHist[k], q)
            let sk = sHist[k]
            for i in 0..<p { q[i] += (alpha[k] - beta) * sk[i] }
        }
        d = q
        t = 1
    }
    return LBFGSOutcome(f: f, gradientNorm: infNorm(g), converged: converged, reason: reason,
                        evaluations: evaluations, trace: trace)
}

/// Minimiser of the cubic interpolating (x1, f1, g1), (x2, f2, g2), clamped to bounds.
func cubicInterpolate(_ x1: Double, _ f1: Double, _ g1: Double, _ x2: Double, _ f2: Double, _ g2: Double,
                      bounds: (Double, Double)? = nil) -> Double {
    let (lo, hi) = bounds ?? (x1 <= x2 ? (x1, x2) : (x2, x1))
    let d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    let d2sq = d1 * d1 - g1 * g2
    if d2sq >= 0 {
        let d2 = d2sq.squareRoot()
        let m = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                         : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        if m.isFinite { return min(max(m, lo), hi) }
    }
    return (lo + hi) / 2
}

/// Strong Wolfe line search along d from step t: returns the accepted step, f and gradient there.
func strongWolfe(f f0: Double, g g0: [Double], gtd gtd0: Double, t t0: Double, d: [Double], options: LBFGSOptions,
                 eval: (Double, [Double]) -> (Double, [Double])) -> (t: Double, f: Double, g: [Double]) {
    let c1 = options.wolfeC1, c2 = options.wolfeC2, maxLS = options.maxLineSearchEvaluations
    let dNorm = infNorm(d)
    var t = t0
    var (fNew, gNew) = eval(t, d)
    var gtdNew = dotD(gNew, d)
    var tPrev = 0.0, fPrev = f0, gPrev = g0, gtdPrev = gtd0
    var done = false
    var lsIter = 0
    var bt: [Double] = [], bf: [Double] = [], bg: [[Double]] = [], bgtd: [Double] = []
    while lsIter < maxLS {
        if fNew > f0 + c1 * t * gtd0 || (lsIter > 1 && fNew >= fPrev) {
            bt = [tPrev, t]; bf = [fPrev, fNew]; bg = [gPrev, gNew]; bgtd = [gtdPrev, gtdNew]
            break
        }
        if abs(gtdNew) <= -c2 * gtd0 {
            bt = [t]; bf = [fNew]; bg = [gNew]; bgtd = [gtdNew]
            done = true
            break
        }
        if gtdNew >= 0 {
            bt = [tPrev, t]; bf = [fPrev, fNew]; bg = [gPrev, gNew]; bgtd = [gtdPrev, gtdNew]
            break
        }
        let minStep = t + 0.01 * (t - tPrev)
        let maxStep = t * 10
        let tmp = t
        t = cubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, bounds: (minStep, maxStep))
        tPrev = tmp; fPrev = fNew; gPrev = gNew; gtdPrev = gtdNew
        (fNew, gNew) = eval(t, d)
        gtdNew = dotD(gNew, d)
        lsIter += 1
    }
    if lsIter == maxLS {
        bt = [0, t]; bf = [f0, fNew]; bg = [g0, gNew]; bgtd = [gtd0, gtdNew]
    }
    // Zoom.
    var insufficientProgress = false
    var (low, high) = bf[0] <= bf[bf.count - 1] ? (0, 1) : (1, 0)
    while !done && lsIter < maxLS && bt.count == 2 {
        if abs(bt[1] - bt[0]) * dNorm < 1e-12 { break }
        t = cubicInterpolate(bt[0], bf[0], bgtd[0], bt[1], bf[1], bgtd[1])
        let bmax = max(bt[0], bt[1]), bmin = min(bt[0], bt[1])
        let eps = 0.1 * (bmax - bmin)
        if min(bmax - t, t - bmin) < eps {
            if insufficientProgress || t >= bmax || t <= bmin {
                t = abs(t - bmax) < abs(t - bmin) ? bmax - eps : bmin + eps
                insufficientProgress = false
            } else {
                insufficientProgress = true
            }
        } else {
            insufficientProgress = false
        }
        (fNew, gNew) = eval(t, d)
        gtdNew = dotD(gNew, d)
        lsIter += 1
        if fNew > f0 + c1 * t * gtd0 || fNew >= bf[low] {
            bt[high] = t; bf[high] = fNew; bg[high] = gNew; bgtd[high] = gtdNew
            (low, high) = bf[0] <= bf[1] ? (0, 1) : (1, 0)
        } else {
            if abs(gtdNew) <= -c2 * gtd0 {
                done = true
            } else if gtdNew * (bt[high] - bt[low]) >= 0 {
                bt[high] = bt[low]; bf[high] = bf[low]; bg[high] = bg[low]; bgtd[high] = bgtd[low]
            }
            bt[low] = t; bf[low] = fNew; bg[low] = gNew; bgtd[low] = gtdNew
        }
    }
    if bt.count == 1 { return (bt[0], bf[0], bg[0]) }
    return (bt[low], bf[low], bg[low])
}

/// One fit of `LBFGSTrainer.fit`.
public struct LogisticFit: Sendable {
    /// The fitted head, on raw features (standardisation folded in).
    public var head: LinearHead
    /// The parameters in the problem's (standardised) coordinates: [W (classes x d), b]; a warm start.
    public var solution: [Double]
    public var C: Double
    /// Rows fitted.
    public var rows: Int
    public var converged: Bool
    public var stopReason: String
    public var iterations: Int
    public var evaluations: Int
    /// Mean-scaled objective, its gradient's max-norm, and the sum form (objective * rows).
    public var objective: Double
    public var gradientNorm: Double
    public var sumObjective: Double
    public var trace: [LBFGSIteration]
    public var seconds: Double
}

/// A training matrix prepared once for many L-BFGS fits: float64, standardised (or not), every
/// view a row. Fits may use a prefix of its rows (`LBFGSTrainer.fit(_:rows:)`), so order the
/// rows first when a subset is to be fitted (e.g. the sweep's held-out rows last).
public final class LogisticProblem: @unchecked Sendable {
    public let rows: Int, dimension: Int, classes: Int
    /// Per-column mean and scale subtracted and divided before fitting (0 and 1 when not standardised).
    public let mean: [Double], scale: [Double]
    let labels: [Int]
    let objective: LogisticObjective
    private var weighting: (ClassWeighting, Int)?

    /// - Parameter standardization: statistics to use instead of the matrix's own (e.g. of a larger
    ///   split, for few-shot subsets); ignored unless `standardize`.
    public init(_ train: LabeledFeatures, standardize: Bool = true,
                standardization: (mean: [Double], scale: [Double])? = nil, workers: Int = defaultWorkerCount) {
        let d = train.dimension
        rows = train.count * train.views; dimension = d; classes = train.classes
        var x = train.values.map(Double.init)
        var y = [Int](repeating: 0, count: rows)
        for i in 0..<train.count { for k in 0..<train.views { y[i * train.views + k] = train.labels[i] } }
        labels = y
        let rows = self.rows
        if standardize, let s = standardization, s.mean.count == d, s.scale.count == d {
            (mean, scale) = s
            x.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows { for i in 0..<d { p[r * d + i] = (p[r * d + i] - s.mean[i]) / s.scale[i] } }
            }
        } else if standardize {
            (mean, scale) = standardizeInPlace(&x, rows: rows, dimension: d)
        } else {
            mean = [Double](repeating: 0, count: d); scale = [Double](repeating: 1, count: d)
        }
        objective = LogisticObjective(x: x, labels: y, rows: rows, dimension: d, classes: classes, lambda: 1, workers: workers)
    }

    /// Per-column mean and population std of a matrix's first views (zero-variance columns: scale 1).
    public static func standardization(of data: LabeledFeatures) -> (mean: [Double], scale: [Double]) {
        var x = data.firstViews.map(Double.init)
        return standardizeInPlace(&x, rows: data.count, dimension: data.dimension)
    }

    func applyClassWeights(_ w: ClassWeighting, rows n: Int) {
        if let (cw, cn) = weighting, cw == w, cn == n { return }
        weighting = (w, n)
        switch w {
        case .none: objective.setSampleWeights(nil)
        case .balanced:
            let cw = balancedClassWeights(labels: Array(labels[0..<n]), classes: classes)
            var sw = [Double](repeating: 0, count: rows)
            for r in 0..<n { sw[r] = cw[labels[r]] }
            objective.setSampleWeights(sw)
        }
    }

    /// The head on raw features of parameters in this problem's coordinates:
    /// W_raw = W / scale, b_raw = b - W_raw . mean.
    public func rawHead(_ theta: [Double]) -> LinearHead {
        let c = classes, d = dimension
        var w = [Float](repeating: 0, count: c * d)
        var b = [Float](repeating: 0, count: c)
        for j in 0..<c {
            var shift = 0.0
            for i in 0..<d {
                let wr = theta[j * d + i] / scale[i]
                w[j * d + i] = Float(wr)
                shift += wr * mean[i]
            }
            b[j] = Float(theta[c * d + j] - shift)
        }
        return LinearHead(unchecked: c, d, w, b)
    }
}

/// How the rows of a class are weighted in a head's loss.
public enum ClassWeighting: String, Sendable, CaseIterable, Codable {
    /// Every row counts once.
    case none
    /// scikit-learn's `class_weight="balanced"`: a row of class k weighs n_samples / (n_classes * count(k)).
    case balanced
}

/// scikit-learn's balanced class weights: n_samples / (n_classes * count(k)), n_classes counting the
/// classes present in `labels` (`compute_class_weight("balanced", classes=np.unique(y), y=y)`);
/// absent classes get 0 (no row carries them).
public func balancedClassWeights(labels: [Int], classes: Int) -> [Double] {
    var counts = [Int](repeating: 0, count: classes)
    for l in labels where l >= 0 && l < classes { counts[l] += 1 }
    let present = counts.filter { $0 > 0 }.count
    return counts.map { $0 > 0 ? Double(labels.count) / (Double(present) * Double($0)) : 0 }
}
