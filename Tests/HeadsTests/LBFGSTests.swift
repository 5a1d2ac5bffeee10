import Foundation
import Testing
@testable import Heads

/// Reference minimiser of mean CE + lambda/2 ||W||^2 by damped Newton's method in float64, with the
/// last class's bias fixed at 0 (removes the softmax's null direction), then shifted so that the
/// biases sum to 0 (the representative L-BFGS started from zero converges to).
func newtonReference(x: [[Double]], y: [Int], classes c: Int, lambda: Double) -> (w: [Double], b: [Double]) {
    let n = x.count, d = x[0].count
    let pw = c * d, p = pw + c - 1
    var theta = [Double](repeating: 0, count: p)
    func unpack(_ t: [Double]) -> ([Double], [Double]) { (Array(t[0..<pw]), Array(t[pw...]) + [0]) }
    func objective(_ t: [Double]) -> Double {
        let (w, b) = unpack(t)
        return Ref.lossAndGrad(w: w, b: b, x: x, y: y, classes: c).loss + 0.5 * lambda * w.map { $0 * $0 }.reduce(0, +)
    }
    for _ in 0..<50 {
        let (w, b) = unpack(theta)
        let r = Ref.lossAndGrad(w: w, b: b, x: x, y: y, classes: c)
        var g = [Double](repeating: 0, count: p)
        for i in 0..<pw { g[i] = r.gw[i] + lambda * w[i] }
        for j in 0..<(c - 1) { g[pw + j] = r.gb[j] }
        if g.map(abs).max()! < 1e-13 { break }
        // Hessian.
        var h = [[Double]](repeating: [Double](repeating: 0, count: p), count: p)
        func index(_ j: Int, _ a: Int) -> Int? { a < d ? j * d + a : (j < c - 1 ? pw + j : nil) }
        for row in x {
            var z = (0..<c).map { j in b[j] + (0..<d).reduce(0.0) { $0 + w[j * d + $1] * row[$1] } }
            let m = z.max()!
            let s = z.map { exp($0 - m) }.reduce(0, +)
            z = z.map { exp($0 - m) / s }
            let phi = row + [1]
            for j in 0..<c { for k in 0..<c {
                let coef = z[j] * ((j == k ? 1 : 0) - z[k]) / Double(n)
                for a in 0...d { for bb in 0...d {
                    if let u = index(j, a), let v = index(k, bb) { h[u][v] += coef * phi[a] * phi[bb] }
                } }
            } }
        }
        for i in 0..<pw { h[i][i] += lambda }
        // Solve h * step = g by Gaussian elimination with partial pivoting.
        var aug = h.enumerated().map { $0.element + [g[$0.offset]] }
        for col in 0..<p {
            let piv = (col..<p).max { abs(aug[$0][col]) < abs(aug[$1][col]) }!
            aug.swapAt(col, piv)
            for r in 0..<p where r != col {
                let f = aug[r][col] / aug[col][col]
                if f != 0 { for k in col...p { aug[r][k] -= f * aug[col][k] } }
            }
        }
        let step = (0..<p).map { aug[$0][p] / aug[$0][$0] }
        var t = 1.0
        let f0 = objective(theta)
        while t > 1e-8 {
            let cand = (0..<p).map { theta[$0] - t * step[$0] }
            if objective(cand) <= f0 { theta = cand; break }
            t /= 2
        }
    }
    var (w, b) = unpack(theta)
    let mean = b.reduce(0, +) / Double(c)
    b = b.map { $0 - mean }
    return (w, b)
}

func convexProblem(n: Int = 40, d: Int = 4, classes: Int = 3, offset: Float = 0, spread: Float = 1) throws -> LabeledFeatures {
    let noise = testMatrix(rows: n, cols: d, seed: 11)
    var v = [Float](repeating: 0, count: n * d)
    var y = [Int](repeating: 0, count: n)
    for i in 0..<n {
        y[i] = (i * 5 + 2) % classes
        for j in 0..<d {
            // Overlapping classes so the optimum is finite even without the penalty's help.
            let center: Float = j % classes == y[i] ? 0.8 : 0
            v[i * d + j] = offset + spread * Float(j + 1) * (center + noise[i * d + j])
        }
    }
    return try LabeledFeatures(values: v, count: n, dimension: d, labels: y, classes: classes)
}

@Test func lbfgsReachesTheNewtonOptimum() throws {
    let data = try convexProblem()
    var o = LBFGSOptions()
    o.C = 0.5
    o.standardize = false
    // The objective is ~1 in float64, so below a gradient of ~1e-8 a line search cannot see
    // any decrease: ask for that much and let the objective-change test end it if needed.
    o.gradientTolerance = 1e-9
    o.relativeTolerance = 0
    let r = try LBFGSTrainer(options: o).train(data)
    #expect(r.converged, "\(r.stopReason)")
    #expect(r.gradientNorm <= 1e-7, "\(r.stopReason) after \(r.iterations) iterations")
    let rows = (0..<data.count).map { i in (0..<data.dimension).map { Double(data.values[i * data.dimension + $0]) } }
    let ref = newtonReference(x: rows, y: data.labels, classes: 3, lambda: 1 / (0.5 * Double(data.count)))
    for i in ref.w.indices { #expect(abs(Double(r.head.weight[i]) - ref.w[i]) < 1e-6 * max(1, abs(ref.w[i])), "w[\(i)]") }
    for j in ref.b.indices { #expect(abs(Double(r.head.bias[j]) - ref.b[j]) < 1e-6 * max(1, abs(ref.b[j])), "b[\(j)]") }
    // The scikit-learn-form objective, recomputed independently from the returned head.
    let w = r.head.weight.map(Double.init), b = r.head.bias.map(Double.init)
    let sumCE = Ref.lossAndGrad(w: w, b: b, x: rows, y: data.labels, classes: 3).loss * Double(data.count)
    let sk = sumCE + 1 / (2 * 0.5) * w.map { $0 * $0 }.reduce(0, +)
    #expect(abs(r.sumObjective - sk) < 1e-5 * sk)
}

@Test func standardisationIsFoldedIntoTheHead() throws {
    // Columns with large offsets and scales: standardised fit, applied to raw features.
    let data = try convexProblem(offset: 30, spread: 5)
    var o = LBFGSOptions()
    o.C = 2
    o.gradientTolerance = 1e-10
    let r = try LBFGSTrainer(options: o).train(data)
    #expect(r.converged)
    let d = data.dimension
    var rows = (0..<data.count).map { i in (0..<d).map { Double(data.values[i * d + $0]) } }
    for j in 0..<d {
        let col = rows.map { $0[j] }
        let mean = col.reduce(0, +) / Double(col.count)
        let sd = (col.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(col.count)).squareRoot()
        for i in rows.indices { rows[i][j] = (rows[i][j] - mean) / sd }
    }
    let ref = newtonReference(x: rows, y: data.labels, classes: 3, lambda: 1 / (2 * Double(data.count)))
    let probs = try r.head.probabilities(data.values, rows: data.count)
    for (i, row) in rows.enumerated() {
        let z = (0..<3).map { j in ref.b[j] + (0..<d).reduce(0.0) { $0 + ref.w[j * d + $1] * row[$1] } }
        let m = z.max()!, s = z.map { exp($0 - m) }.reduce(0, +)
        for j in 0..<3 { #expect(abs(Double(probs[i * 3 + j]) - exp(z[j] - m) / s) < 2e-4, "row \(i) class \(j)") }
    }
}

@Test func logisticObjectiveGradientMatchesFiniteDifferences() throws {
    let data = try convexProblem(n: 12, d: 3, classes: 3)
    let x = data.values.map(Double.init)
    let obj = LogisticObjective(x: x, labels: data.labels, rows: 12, dimension: 3, classes: 3, lambda: 0.3)
    let theta = (0..<obj.parameterCount).map { sin(Double($0) * 1.7) * 0.5 }
    var g = [Double](repeating: 0, count: obj.parameterCount)
    let f = { (t: [Double]) -> Double in
        var scratch = [Double](repeating: 0, count: obj.parameterCount)
        return t.withUnsafeBufferPointer { obj.evaluate($0.baseAddress!, gradient: &scratch) }
    }
    _ = theta.withUnsafeBufferPointer { obj.evaluate($0.baseAddress!, gradient: &g) }
    let h = 1e-6
    for i in theta.indices {
        var p = theta, m = theta
        p[i] += h; m[i] -= h
        #expect(abs(g[i] - (f(p) - f(m)) / (2 * h)) < 1e-7, "dθ[\(i)]")
    }
}

@Test func crossValidationIsDeterministicAndPicksTheFirstBest() throws {
    let data = try convexProblem(n: 60, d: 4, classes: 3)
    let t = LBFGSTrainer()
    let a = try t.crossValidateC(data, candidates: [0.001, 0.1, 10], folds: 3, seed: 4)
    let b = try t.crossValidateC(data, candidates: [0.001, 0.1, 10], folds: 3, seed: 4)
    #expect(a.best == b.best)
    #expect(a.scores.map(\.accuracy) == b.scores.map(\.accuracy))
    let bestAcc = a.scores.map(\.accuracy).max()!
    #expect(a.best == a.scores.first { $0.accuracy == bestAcc }!.C)
    #expect(throws: HeadsError.self) { try t.crossValidateC(data, candidates: [1], folds: 1) }
}

@Test func metricsFromAKnownConfusion() throws {
    let m = try ClassificationMetrics(predicted: [0, 0, 1, 1, 1, 2], labels: [0, 1, 1, 1, 2, 2], classes: 3)
    #expect(m.confusion == [[1, 0, 0], [1, 2, 0], [0, 1, 1]])
    #expect(m.accuracy == 4.0 / 6.0)
    #expect(m.precision == [0.5, 2.0 / 3.0, 1.0])
    #expect(m.recall == [1.0, 2.0 / 3.0, 0.5])
    let head = try LinearHead(classes: 3, dimension: 2, weight: [1, 0, 0, 1, 0, 0], bias: [0, 0, 0.5])
    let p = try head.predict([2, 0], topK: 2)
    let e2 = Float(exp(2.0)), e05 = Float(exp(0.5))
    #expect(p.map(\.label) == [0, 2])
    #expect(abs(p[0].probability - e2 / (e2 + 1 + e05)) < 1e-6)
    #expect(abs(p[1].probability - e05 / (e2 + 1 + e05)) < 1e-6)
}
