import Foundation
import Testing
@testable import Heads

// Torch's final weights for the `Parity` scenario (5 epochs, batch 4 with a partial last batch,
// SGD lr 0.1 momentum 0.9 weight_decay 0.01, StepLR(2, 0.5)), generated once by
// `python3 tools/bench_heads_torch.py parity` (torch 2.15.0, CPU). The same test also checks
// against the float64 reference in Reference.swift, which needs no fixture.
let torchParityPlain: (w: [Float], b: [Float]) = (
    [0.26331875, 0.08100196, 0.21507867, 0.36631098, 0.74174774, -0.11120867, -0.17912453, -0.42739555, -0.35776728,
     -0.034672733, -0.35236377, 0.070004851, -0.46741679, 0.15478222, 0.14268862, -0.14002702, -0.0061612935, -0.054601815],
    [-0.052697584, 0.14697655, -0.094279081])
let torchParityNesterov: (w: [Float], b: [Float]) = (
    [0.29528537, 0.093027659, 0.2337652, 0.4203085, 0.76905298, -0.10014064, -0.19910586, -0.4342365, -0.4151302,
     -0.075353816, -0.37080067, 0.061004773, -0.47728574, 0.15065563, 0.18136498, -0.15440144, -0.017145988, -0.05614071],
    [-0.068559535, 0.15086666, -0.082307145])

@Test(arguments: [false, true])
func sgdMatchesFloat64ReferenceAndTorch(nesterov: Bool) throws {
    let epochs = 5
    let train = try LabeledFeatures(values: Parity.x, count: Parity.n, dimension: Parity.d, labels: Parity.y, classes: Parity.c)
    let head = try LinearHead(classes: Parity.c, dimension: Parity.d, weight: Parity.w, bias: Parity.b)
    var o = SGDOptions()
    o.learningRate = 0.1; o.momentum = 0.9; o.weightDecay = 0.01; o.nesterov = nesterov
    o.batchSize = 4; o.epochs = epochs; o.stepSize = 2; o.gamma = 0.5
    let result = try SGDTrainer(options: o).run(train, validation: nil, initialHead: head) { e, perm in
        for (i, v) in Parity.order(e).enumerated() { perm[i] = v }
    }
    let xs = Parity.x
    let rows = (0..<Parity.n).map { i in (0..<Parity.d).map { Double(xs[i * Parity.d + $0]) } }
    let ref = Ref.sgd(w: Parity.w.map(Double.init), b: Parity.b.map(Double.init), x: rows, y: Parity.y,
                      classes: Parity.c, orders: (0..<epochs).map(Parity.order), batch: 4, lr: 0.1,
                      momentum: 0.9, weightDecay: 0.01, nesterov: nesterov, stepSize: 2, gamma: 0.5)
    let got = result.finalHead
    for i in ref.w.indices { #expect(abs(Double(got.weight[i]) - ref.w[i]) < 2e-6, "weight \(i)") }
    for i in ref.b.indices { #expect(abs(Double(got.bias[i]) - ref.b[i]) < 2e-6, "bias \(i)") }
    for (e, m) in result.epochs.enumerated() { #expect(abs(m.trainLoss - ref.losses[e]) < 1e-5, "loss of epoch \(e)") }
    #expect(result.epochs.map(\.learningRate) == [0.1, 0.1, 0.05, 0.05, 0.025])
    let torch = nesterov ? torchParityNesterov : torchParityPlain
    for i in torch.w.indices { #expect(abs(got.weight[i] - torch.w[i]) < 2e-6, "torch weight \(i)") }
    for i in torch.b.indices { #expect(abs(got.bias[i] - torch.b[i]) < 2e-6, "torch bias \(i)") }
    // The reference itself agrees with torch (so the fixture and the reference tell the same story).
    for i in torch.w.indices { #expect(abs(ref.w[i] - Double(torch.w[i])) < 2e-6) }
}

@Test func sgdDampeningAndPlainSGDMatchTheReference() throws {
    let train = try LabeledFeatures(values: Parity.x, count: Parity.n, dimension: Parity.d, labels: Parity.y, classes: Parity.c)
    let head = try LinearHead(classes: Parity.c, dimension: Parity.d, weight: Parity.w, bias: Parity.b)
    let xs = Parity.x
    let rows = (0..<Parity.n).map { i in (0..<Parity.d).map { Double(xs[i * Parity.d + $0]) } }
    for (momentum, dampening) in [(0.9, 0.5), (0.0, 0.0)] {
        var o = SGDOptions()
        o.learningRate = 0.05; o.momentum = momentum; o.dampening = dampening
        o.batchSize = 3; o.epochs = 4; o.stepSize = 3; o.gamma = 0.1
        let r = try SGDTrainer(options: o).run(train, validation: nil, initialHead: head) { e, perm in
            for (i, v) in Parity.order(e).enumerated() { perm[i] = v }
        }
        let ref = Ref.sgd(w: Parity.w.map(Double.init), b: Parity.b.map(Double.init), x: rows, y: Parity.y,
                          classes: Parity.c, orders: (0..<4).map(Parity.order), batch: 3, lr: 0.05,
                          momentum: momentum, dampening: dampening, weightDecay: 0, nesterov: false,
                          stepSize: 3, gamma: 0.1)
        for i in ref.w.indices { #expect(abs(Double(r.finalHead.weight[i]) - ref.w[i]) < 2e-6, "m \(momentum) d \(dampening) w[\(i)]") }
        for i in ref.b.indices { #expect(abs(Double(r.finalHead.bias[i]) - ref.b[i]) < 2e-6) }
    }
}

@Test func crossEntropyGradientMatchesFiniteDifferences() throws {
    let c = 3, d = 5, bsz = 3
    let head = LinearHead.pytorchDefault(classes: c, dimension: d, seed: 7)
    let x = testMatrix(rows: bsz, cols: d, seed: 3)
    let y = [2, 0, 1]
    let ws = SGDWorkspace(head: head, batchSize: bsz, count: bsz)
    let (lossSum, _) = x.withUnsafeBufferPointer { xp in
        for s in 0..<bsz { ws.rows[s] = xp.baseAddress! + s * d }
        return y.withUnsafeBufferPointer { ws.forwardBackward(labels: $0.baseAddress!, count: bsz) }
    }
    let rows = (0..<bsz).map { i in (0..<d).map { Double(x[i * d + $0]) } }
    let w = head.weight.map(Double.init), b = head.bias.map(Double.init)
    let f = { (w: [Double], b: [Double]) in Ref.lossAndGrad(w: w, b: b, x: rows, y: y, classes: c).loss }
    #expect(abs(lossSum / Double(bsz) - f(w, b)) < 1e-6)
    let h = 1e-5
    for i in 0..<(c * d) {
        var wp = w, wm = w
        wp[i] += h; wm[i] -= h
        let fd = (f(wp, b) - f(wm, b)) / (2 * h)
        #expect(abs(Double(ws.gradW[i]) - fd) < 1e-5, "dW[\(i)] \(ws.gradW[i]) vs \(fd)")
    }
    for j in 0..<c {
        var bp = b, bm = b
        bp[j] += h; bm[j] -= h
        let fd = (f(w, bp) - f(w, bm)) / (2 * h)
        #expect(abs(Double(ws.gradB[j]) - fd) < 1e-5, "db[\(j)]")
    }
}

@Test func pytorchInitialisationBoundsAndDeterminism() {
    let h = LinearHead.pytorchDefault(classes: 2, dimension: 1280, seed: 42)
    let bound = Float(1 / 1280.0.squareRoot())
    #expect(h.weight.allSatisfy { abs($0) <= bound })
    #expect(h.bias.allSatisfy { abs($0) <= bound })
    // Uniform: mean near 0, variance near bound^2 / 3.
    let mean = h.weight.reduce(0, +) / Float(h.weight.count)
    let variance = h.weight.map { $0 * $0 }.reduce(0, +) / Float(h.weight.count)
    #expect(abs(mean) < 0.05 * bound)
    #expect(abs(variance / (bound * bound / 3) - 1) < 0.05)
    #expect(h == LinearHead.pytorchDefault(classes: 2, dimension: 1280, seed: 42))
    #expect(h != LinearHead.pytorchDefault(classes: 2, dimension: 1280, seed: 43))
}

/// Two Gaussian-ish blobs per class in D dims: linearly separable with margin.
func blobs(n: Int, d: Int, classes: Int, seed: Int, views: Int = 1) throws -> LabeledFeatures {
    let noise = testMatrix(rows: n * views, cols: d, seed: seed)
    var v = [Float](repeating: 0, count: n * views * d)
    var y = [Int](repeating: 0, count: n)
    for i in 0..<n {
        y[i] = (i * 7 + seed) % classes
        for k in 0..<views {
            for j in 0..<d {
                let center: Float = j % classes == y[i] ? 2 : 0
                v[(i * views + k) * d + j] = center + 0.3 * noise[(i * views + k) * d + j]
            }
        }
    }
    return try LabeledFeatures(values: v, count: n, dimension: d, views: views, labels: y, classes: classes)
}

@Test func tutorialTrainingLearnsAndKeepsTheFirstBestEpoch() throws {
    let train = try blobs(n: 60, d: 32, classes: 3, seed: 1)
    let val = try blobs(n: 30, d: 32, classes: 3, seed: 2)
    let r = try SGDTrainer(options: .tutorial(seed: 5)).train(train, validation: val)
    #expect(r.epochs.count == 25)
    let accs = r.epochs.compactMap(\.validationAccuracy)
    let best = accs.max()!
    #expect(r.bestValidationAccuracy == best)
    #expect(r.bestEpoch == accs.firstIndex(of: best))
    #expect(best == 1.0)
    // The kept head really has that accuracy.
    let m = try evaluate(r.bestHead, on: val)
    #expect(m.accuracy == best)
    // StepLR(7, 0.1) schedule.
    #expect(abs(r.epochs[6].learningRate - 0.001) < 1e-15)
    #expect(abs(r.epochs[7].learningRate - 0.0001) < 1e-15)
    #expect(abs(r.epochs[21].learningRate - 0.000001) < 1e-15)
    // Same seed, same run; another seed, another run.
    let again = try SGDTrainer(options: .tutorial(seed: 5)).train(train, validation: val)
    #expect(again.finalHead == r.finalHead)
    #expect(again.epochs.map(\.trainLoss) == r.epochs.map(\.trainLoss))
    let other = try SGDTrainer(options: .tutorial(seed: 6)).train(train, validation: val)
    #expect(other.finalHead != r.finalHead)
}

@Test func augmentedViewsDrawOneViewPerImagePerEpoch() throws {
    // K identical views train exactly like one view (the view stream is separate from shuffling).
    let one = try blobs(n: 20, d: 8, classes: 2, seed: 3)
    var dup: [Float] = []
    for i in 0..<one.count {
        let row = one.values[(i * 8)..<(i * 8 + 8)]
        dup += row; dup += row; dup += row
    }
    let three = try LabeledFeatures(values: dup, count: 20, dimension: 8, views: 3, labels: one.labels)
    var o = SGDOptions.tutorial(seed: 9)
    o.epochs = 4
    let a = try SGDTrainer(options: o).train(one)
    let b = try SGDTrainer(options: o).train(three)
    #expect(a.finalHead == b.finalHead)
    // Distinct views change the result, and reproducibly so.
    let distinct = try blobs(n: 20, d: 8, classes: 2, seed: 3, views: 3)
    let c1 = try SGDTrainer(options: o).train(distinct)
    let c2 = try SGDTrainer(options: o).train(distinct)
    #expect(c1.finalHead == c2.finalHead)
    let firstOnly = try SGDTrainer(options: o).train(try blobs(n: 20, d: 8, classes: 2, seed: 3, views: 1))
    #expect(c1.finalHead != firstOnly.finalHead)
}

@Test func badInputIsATypedError() throws {
    #expect(throws: HeadsError.shapeMismatch("5 values for 2 images x 1 views x 3 dims")) {
        try LabeledFeatures(values: [1, 2, 3, 4, 5], count: 2, dimension: 3, labels: [0, 1])
    }
    #expect(throws: HeadsError.labelOutOfRange(row: 1, label: 2, classes: 2)) {
        try LabeledFeatures(values: [1, 2, 3, 4], count: 2, dimension: 2, labels: [0, 2], classes: 2)
    }
    #expect(throws: HeadsError.nonFinite(row: 1, column: 0)) {
        try LabeledFeatures(values: [1, 2, .nan, 4], count: 2, dimension: 2, labels: [0, 1])
    }
    let t = try LabeledFeatures(values: [1, 2, 3, 4], count: 2, dimension: 2, labels: [0, 1])
    let v = try LabeledFeatures(values: [1, 2, 3], count: 1, dimension: 3, labels: [0])
    #expect(throws: HeadsError.dimensionMismatch(expected: 2, got: 3)) { try SGDTrainer().train(t, validation: v) }
    var o = SGDOptions()
    o.batchSize = 0
    #expect(throws: HeadsError.self) { try SGDTrainer(options: o).train(t) }
    let head = LinearHead.zeros(classes: 2, dimension: 2)
    #expect(throws: HeadsError.dimensionMismatch(expected: 2, got: 3)) { try head.predict([1, 2, 3]) }
}

@Test func tutorialLogFormat() throws {
    let train = try blobs(n: 12, d: 4, classes: 2, seed: 1)
    var o = SGDOptions.tutorial(seed: 1)
    o.epochs = 2
    let r = try SGDTrainer(options: o).train(train, validation: train)
    let lines = formatTutorialLog(r).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    #expect(lines[0] == "Epoch 0/1")
    #expect(lines[1] == "----------")
    #expect(lines[2] == String(format: "train Loss: %.4f Acc: %.4f", r.epochs[0].trainLoss, r.epochs[0].trainAccuracy))
    #expect(lines[3] == String(format: "val Loss: %.4f Acc: %.4f", r.epochs[0].validationLoss!, r.epochs[0].validationAccuracy!))
    #expect(lines[4] == "")
    #expect(lines[5] == "Epoch 1/1")
    #expect(lines[10] == "Training complete in 0m 0s")
    #expect(lines[11] == String(format: "Best val Acc: %.6f", r.bestValidationAccuracy!))
}
