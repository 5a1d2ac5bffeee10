import Foundation
@testable import Heads

// An independent, plain float64 implementation of the tutorial's head training, written with naive
// loops and no code shared with the module. Tests compare the module against it.

enum Ref {
    /// Mean cross-entropy of logits W x + b over the given rows, and its gradient (float64).
    static func lossAndGrad(w: [Double], b: [Double], x: [[Double]], y: [Int], classes c: Int)
        -> (loss: Double, gw: [Double], gb: [Double]) {
        let d = x[0].count
        var loss = 0.0
        var gw = [Double](repeating: 0, count: c * d)
        var gb = [Double](repeating: 0, count: c)
        let n = Double(x.count)
        for (r, row) in x.enumerated() {
            var z = [Double](repeating: 0, count: c)
            for j in 0..<c {
                var s = b[j]
                for i in 0..<d { s += w[j * d + i] * row[i] }
                z[j] = s
            }
            let m = z.max()!
            let lse = m + log(z.map { exp($0 - m) }.reduce(0, +))
            loss += (lse - z[y[r]]) / n
            for j in 0..<c {
                let g = (exp(z[j] - lse) - (j == y[r] ? 1 : 0)) / n
                gb[j] += g
                for i in 0..<d { gw[j * d + i] += g * row[i] }
            }
        }
        return (loss, gw, gb)
    }

    /// torch.optim.SGD + StepLR over fixed batch orders; returns final (w, b) and per-epoch running train loss.
    static func sgd(w w0: [Double], b b0: [Double], x: [[Double]], y: [Int], classes c: Int,
                    orders: [[Int]], batch: Int, lr lr0: Double, momentum: Double, dampening: Double = 0,
                    weightDecay: Double, nesterov: Bool, stepSize: Int, gamma: Double) -> (w: [Double], b: [Double], losses: [Double]) {
        var p = w0 + b0
        var buf: [Double]? = nil
        var lr = lr0
        var losses: [Double] = []
        let nw = w0.count
        for (e, order) in orders.enumerated() {
            var running = 0.0
            var s = 0
            while s < order.count {
                let idx = Array(order[s..<min(s + batch, order.count)])
                let r = lossAndGrad(w: Array(p[0..<nw]), b: Array(p[nw...]), x: idx.map { x[$0] },
                                    y: idx.map { y[$0] }, classes: c)
                running += r.loss * Double(idx.count)
                var g = r.gw + r.gb
                for i in g.indices { g[i] += weightDecay * p[i] }
                if var bb = buf {
                    for i in bb.indices { bb[i] = momentum * bb[i] + (1 - dampening) * g[i] }
                    buf = bb
                } else {
                    buf = g
                }
                for i in p.indices {
                    let dir = nesterov ? g[i] + momentum * buf![i] : buf![i]
                    p[i] -= lr * dir
                }
                s += batch
            }
            losses.append(running / Double(order.count))
            if (e + 1) % stepSize == 0 { lr *= gamma }
        }
        return (Array(p[0..<nw]), Array(p[nw...]), losses)
    }
}

/// The deterministic scenario shared with tools/bench_heads_torch.py (`parity`); exact in float32.
enum Parity {
    static let n = 10, d = 6, c = 3
    static var x: [Float] {
        var v: [Float] = []
        for i in 0..<n { for j in 0..<d { v.append(Float(((i * 7 + j * 13) % 17) - 8) / 8) } }
        return v
    }
    static var y: [Int] { (0..<n).map { ($0 * 5 + 1) % c } }
    static var w: [Float] {
        var v: [Float] = []
        for k in 0..<c { for j in 0..<d { v.append(Float(((k * 11 + j * 3) % 7) - 3) / Float(10)) } }
        return v
    }
    static var b: [Float] { (0..<c).map { Float($0 - 1) / Float(20) } }
    static func order(_ epoch: Int) -> [Int] { (0..<n).map { ($0 * 3 + epoch) % n } }
}

/// Deterministic pseudo-random matrices for tests (not the module's generator).
func testMatrix(rows: Int, cols: Int, seed: Int) -> [Float] {
    (0..<(rows * cols)).map { Float(sin(Double($0 * 7919 + seed * 104_729) * 0.001) * 1.5) }
}
