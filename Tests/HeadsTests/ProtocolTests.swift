import Foundation
import Testing
import Reproducible
@testable import Heads

// Balanced accuracy, ECE, temperature scaling, class weights, the linear-probe sweep and few-shot
// draws, each against numbers worked out by hand or computed independently here in float64.

@Test func balancedAccuracyIsTheMeanRecallOfThePresentClasses() throws {
    // class 0: 3 of 3 right; class 1: 1 of 2 right; class 2: no rows (left out of the mean).
    let m = try ClassificationMetrics(predicted: [0, 0, 0, 0, 1], labels: [0, 0, 0, 1, 1], classes: 3)
    #expect(m.accuracy == 0.8)
    #expect(m.balancedAccuracy == 0.75)
    // Always predicting the majority class: accuracy 0.9, balanced 0.5.
    let major = try ClassificationMetrics(predicted: [Int](repeating: 0, count: 10), labels: [Int](repeating: 0, count: 9) + [1], classes: 2)
    #expect(major.accuracy == 0.9)
    #expect(major.balancedAccuracy == 0.5)
    #expect(major.formatted().contains("balanced accuracy 0.5000"))
}

@Test func expectedCalibrationErrorOfAHandCheckedCase() throws {
    // Confidences 0.9 (right), 0.9 (wrong) -> bin (13/15, 14/15]: |0.5 - 0.9| * 2/4 = 0.2.
    // 0.6 (right), 0.55 (right) -> bin (8/15, 9/15]: |1 - 0.575| * 2/4 = 0.2125.
    let p: [Float] = [0.9, 0.1, 0.1, 0.9, 0.4, 0.6, 0.55, 0.45]
    let ece = try expectedCalibrationError(probabilities: p, labels: [0, 0, 1, 0], classes: 2, bins: 15)
    let expected = (abs(0.5 - (Double(Float(0.9)) * 2) / 2) * 2 + abs(1 - (Double(Float(0.6)) + Double(Float(0.55))) / 2) * 2) / 4
    #expect(abs(ece - expected) < 1e-12)
    #expect(abs(ece - 0.4125) < 1e-6)
    // One bin: |accuracy - mean confidence|.
    let one = try expectedCalibrationError(probabilities: p, labels: [0, 0, 1, 0], classes: 2, bins: 1)
    #expect(abs(one - abs(0.75 - Double(Float(0.9) + Float(0.9) + Float(0.6) + Float(0.55)) / 4)) < 1e-7)
    // Perfectly calibrated extremes: confidence 1, always right.
    #expect(try expectedCalibrationError(probabilities: [1, 0, 0, 1], labels: [0, 1], classes: 2) == 0)
    #expect(throws: HeadsError.self) { try expectedCalibrationError(probabilities: p, labels: [0], classes: 2) }
}

@Test func temperatureScalingRecoversAKnownTemperature() throws {
    // Logits z, labels drawn from softmax(z / 2.5): the NLL-optimal temperature is near 2.5.
    let n = 20_000, c = 5, t0 = 2.5
    var rng = SplitMix64(seed: 7)
    var z = [Float](repeating: 0, count: n * c)
    var y = [Int](repeating: 0, count: n)
    for r in 0..<n {
        for j in 0..<c { z[r * c + j] = 8 * (rng.nextFloat() - 0.5) }
        let p = (0..<c).map { exp(Double(z[r * c + $0]) / t0) }
        var u = Double(rng.nextFloat()) * p.reduce(0, +)
        var k = 0
        while k < c - 1 && u >= p[k] { u -= p[k]; k += 1 }
        y[r] = k
    }
    let t = try fitTemperature(logits: z, labels: y, classes: c)
    #expect(abs(t - t0) / t0 < 0.05, "fitted \(t)")
    let before = temperatureNLL(logits: z, labels: y, classes: c, temperature: 1)
    let after = temperatureNLL(logits: z, labels: y, classes: c, temperature: t)
    #expect(after < before - 0.05)
    // The minimum: nearby temperatures are no better.
    #expect(after <= temperatureNLL(logits: z, labels: y, classes: c, temperature: t * 1.01))
    #expect(after <= temperatureNLL(logits: z, labels: y, classes: c, temperature: t / 1.01))
    // Calibration of a head on such data lowers ECE as well.
    let probsBefore = softmax(logits: z, classes: c), probsAfter = softmax(logits: z, classes: c, temperature: t)
    #expect(try expectedCalibrationError(probabilities: probsAfter, labels: y, classes: c)
            < expectedCalibrationError(probabilities: probsBefore, labels: y, classes: c))
    // A head predicts with its temperature: softmax(logits / T).
    let head = try LinearHead(classes: 2, dimension: 1, weight: [1, -1], bias: [0, 0])
    let p = try head.probabilities([1], rows: 1, temperature: 2)
    #expect(abs(Double(p[0]) - 1 / (1 + exp(-1.0))) < 1e-6)
}

/// sum_i s_i CE_i + 1/(2C) ||W||^2 in float64, written out here (scikit-learn's objective / C).
func referenceObjective(_ head: LinearHead, _ data: LabeledFeatures, C: Double, weights: [Double]? = nil) -> Double {
    let c = head.classes, d = head.dimension
    var total = 0.0
    for r in 0..<data.count {
        let z = (0..<c).map { j in Double(head.bias[j]) + (0..<d).reduce(0.0) { $0 + Double(head.weight[j * d + $1]) * Double(data.values[r * d + $1]) } }
        let m = z.max()!
        total += (weights?[data.labels[r]] ?? 1) * (m + log(z.map { exp($0 - m) }.reduce(0, +)) - z[data.labels[r]])
    }
    return total + head.weight.reduce(0.0) { $0 + Double($1) * Double($1) } / (2 * C)
}

@Test func lbfgsObjectiveMatchesAFloat64ReferenceAndIsThreadIndependent() throws {
    // 300 rows: three blocks of the blocked objective.
    let data = try convexProblem(n: 300, d: 5, classes: 3)
    for C in [0.01, 1.0, 100.0] {
        var o = LBFGSOptions()
        o.C = C
        o.standardize = false
        o.gradientTolerance = 1e-10
        o.relativeTolerance = 0
        let r = try LBFGSTrainer(options: o).train(data)
        // The trainer's own value of its optimum, and the reference's value at its (float32) head.
        let ref = referenceObjective(r.head, data, C: C)
        #expect(abs(r.sumObjective - ref) / ref < 1e-6, "C=\(C): \(r.sumObjective) vs \(ref)")
        // The Newton optimum of the same objective (mean form, lambda = 1/(C N)).
        let rows = (0..<300).map { i in (0..<5).map { Double(data.values[i * 5 + $0]) } }
        let newton = newtonReference(x: rows, y: data.labels, classes: 3, lambda: 1 / (C * 300))
        let nh = try LinearHead(classes: 3, dimension: 5, weight: newton.w.map(Float.init), bias: newton.b.map(Float.init))
        let best = referenceObjective(nh, data, C: C)
        #expect(abs(r.sumObjective - best) / best < 1e-6, "C=\(C): \(r.sumObjective) vs Newton \(best)")
    }
    // Any worker count: the same bits.
    var o = LBFGSOptions()
    o.standardize = true
    o.workers = 1
    let one = try LBFGSTrainer(options: o).train(data)
    o.workers = 3
    let three = try LBFGSTrainer(options: o).train(data)
    #expect(one.head == three.head)
    #expect(one.objective == three.objective)
}

@Test func balancedClassWeightsActLikeScikitLearns() throws {
    #expect(balancedClassWeights(labels: [0, 0, 0, 1], classes: 2) == [4.0 / 6.0, 2.0])
    #expect(balancedClassWeights(labels: [0, 2, 2, 2], classes: 3) == [2.0, 0, 4.0 / 6.0])
    // Labels [0 x 30, 1 x 10]: balanced weights 2/3 and 2. sum 2/3 CE_0 + 2 CE_1 + ||W||^2/(2C) is 2/3
    // of the unweighted objective on the data with class 1 written three times, at C' = 2C/3: same minimiser.
    let base = try convexProblem(n: 80, d: 3, classes: 2)
    let rows = Array((0..<80).filter { base.labels[$0] == 0 }.prefix(30))
    let extra = Array((0..<80).filter { base.labels[$0] == 1 }.prefix(10))
    #expect(rows.count == 30 && extra.count == 10)
    let imbalanced = try subset(base, rows: rows + extra)
    let tripled = try subset(base, rows: rows + extra + extra + extra)
    var o = LBFGSOptions()
    o.C = 0.3
    o.standardize = false
    o.gradientTolerance = 1e-10
    o.relativeTolerance = 0
    o.classWeight = .balanced
    let weighted = try LBFGSTrainer(options: o).train(imbalanced).head
    o.classWeight = .none
    o.C = 0.3 * 2 / 3
    let duplicated = try LBFGSTrainer(options: o).train(tripled).head
    for (a, b) in zip(weighted.weight + weighted.bias, duplicated.weight + duplicated.bias) {
        #expect(abs(a - b) < 1e-4 * max(1, abs(b)), "\(a) vs \(b)")
    }
}

/// Two overlapping 2-D Gaussian classes, `n0` of class 0 and `n1` of class 1.
func gaussianPair(n0: Int, n1: Int, seed: UInt64) throws -> LabeledFeatures {
    var rng = SplitMix64(seed: seed)
    func normal() -> Float {
        let u1 = max(Double(rng.nextFloat()), 1e-12), u2 = Double(rng.nextFloat())
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
    var v: [Float] = [], y: [Int] = []
    for i in 0..<(n0 + n1) {
        let k = i < n0 ? 0 : 1
        v += [normal() + (k == 0 ? 0 : 1.5), normal()]
        y.append(k)
    }
    return try LabeledFeatures(values: v, count: y.count, dimension: 2, labels: y, classes: 2)
}

@Test func balancedClassWeightsRaiseBalancedAccuracyOnImbalancedData() throws {
    let train = try gaussianPair(n0: 950, n1: 50, seed: 1)
    let val = try gaussianPair(n0: 500, n1: 500, seed: 2)
    var o = LBFGSOptions()
    o.C = 1
    let plain = try LBFGSTrainer(options: o).train(train, validation: val).validationMetrics!
    o.classWeight = .balanced
    let balanced = try LBFGSTrainer(options: o).train(train, validation: val).validationMetrics!
    #expect(balanced.balancedAccuracy > plain.balancedAccuracy + 0.1, "\(plain.balancedAccuracy) -> \(balanced.balancedAccuracy)")
    // The minority class's recall rises (the unweighted fit favours the majority).
    #expect(balanced.recall[1] > plain.recall[1] + 0.2)
    // SGD (PyTorch's CrossEntropyLoss(weight=)) moves the same way.
    var s = SGDOptions.tutorial()
    s.epochs = 5
    s.batchSize = 16
    s.learningRate = 0.05
    let sgdPlain = try SGDTrainer(options: s).train(train).finalHead
    s.classWeight = .balanced
    let sgdBalanced = try SGDTrainer(options: s).train(train).finalHead
    let a = try evaluate(sgdPlain, on: val), b = try evaluate(sgdBalanced, on: val)
    #expect(b.balancedAccuracy > a.balancedAccuracy + 0.1, "\(a.balancedAccuracy) -> \(b.balancedAccuracy)")
}

@Test func fewShotDrawsAreSeededAndNested() throws {
    let labels = (0..<200).map { $0 % 4 == 3 ? 3 : $0 % 3 }   // class 3 has 50, others ~50
    let a = fewShotRows(labels: labels, classes: 4, shots: 4, seed: 9, draw: 0)
    #expect(a == fewShotRows(labels: labels, classes: 4, shots: 4, seed: 9, draw: 0))
    #expect(a != fewShotRows(labels: labels, classes: 4, shots: 4, seed: 10, draw: 0))
    #expect(a != fewShotRows(labels: labels, classes: 4, shots: 4, seed: 9, draw: 1))
    for k in 0..<4 { #expect(a.filter { labels[$0] == k }.count == 4) }
    let one = fewShotRows(labels: labels, classes: 4, shots: 1, seed: 9, draw: 0)
    #expect(Set(one).isSubset(of: Set(a)))
    // A class with fewer images than shots gives all of them.
    let few = fewShotRows(labels: [0, 0, 0, 1], classes: 2, shots: 2, seed: 0, draw: 0)
    #expect(few.filter { $0 == 3 } == [3] && few.count == 3)
}

@Test func linearProbeChoosesTheBestHeldOutCAndRefits() throws {
    let train = try gaussianPair(n0: 300, n1: 300, seed: 3)
    let val = try gaussianPair(n0: 200, n1: 200, seed: 4)
    var o = LinearProbeOptions()
    o.candidates = [1e-4, 1e-3, 1e-2, 0.1, 1, 10]
    o.seed = 5
    let r = try linearProbe(train: train, validation: val, options: o)
    #expect(r.holdoutCount == 60)
    let best = r.sweep.map(\.holdoutAccuracy).max()!
    #expect(r.C == r.sweep.first { $0.holdoutAccuracy == best }!.C)
    // The warm-started refit reaches the optimum of a fit from zero at the same C.
    var s = o.solver
    s.C = r.C
    let cold = try LBFGSTrainer(options: s).train(train)
    #expect(abs(r.fit.sumObjective - cold.sumObjective) / cold.sumObjective < 1e-8)
    #expect(abs(r.validation!.accuracy - (try evaluate(cold.head, on: val)).accuracy) <= 1.0 / 400)
    #expect(r.validation!.accuracy > 0.7)
    // Same seed, same choice; the held-out draw depends on the seed.
    let again = try linearProbe(train: train, validation: val, options: o)
    #expect(again.sweep.map(\.holdoutAccuracy) == r.sweep.map(\.holdoutAccuracy))
    let labels = train.labels
    #expect(holdoutSplit(labels: labels, classes: 2, fraction: 0.1, seed: 5).heldOut
            != holdoutSplit(labels: labels, classes: 2, fraction: 0.1, seed: 6).heldOut)
    // Stratified: 10% of each class; a class of one image stays in the fit.
    let split = holdoutSplit(labels: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2], classes: 3, fraction: 0.1, seed: 1)
    #expect(split.heldOut.count == 2 && split.heldOut.contains { $0 < 10 } && split.heldOut.contains { $0 >= 10 && $0 < 20 })
    #expect(split.fit.contains(20) && split.fit.count == 19)
    // Any worker count, the same bits (the float32 sweep and the float64 refit cut rows into fixed blocks).
    var o1 = o, o3 = o
    o1.solver.workers = 1
    o3.solver.workers = 3
    let big = try gaussianPair(n0: 400, n1: 300, seed: 6)   // several 128-row blocks
    let w1 = try linearProbe(train: big, options: o1), w3 = try linearProbe(train: big, options: o3)
    #expect(w1.fit.head == w3.fit.head && w1.sweep.map(\.holdoutAccuracy) == w3.sweep.map(\.holdoutAccuracy))
    #expect(LinearProbeOptions.dinov2Candidates.count == 45)
    #expect(LinearProbeOptions.dinov2Candidates.first == 1e-6 && LinearProbeOptions.dinov2Candidates.last == 1e5)
}

@Test func stratifiedFoldsKeepEachClassesShareAndEachGroupTogether() {
    let labels = (0..<100).map { $0 < 60 ? 0 : 1 }
    let folds = stratifiedFolds(labels: labels, classes: 2, folds: 4, seed: 2)
    for f in 0..<4 {   // 15 + 10 of each class per fold
        #expect(folds.indices.filter { folds[$0] == f && labels[$0] == 0 }.count == 15)
        #expect(folds.indices.filter { folds[$0] == f && labels[$0] == 1 }.count == 10)
    }
    #expect(folds == stratifiedFolds(labels: labels, classes: 2, folds: 4, seed: 2))
    #expect(folds != stratifiedFolds(labels: labels, classes: 2, folds: 4, seed: 3))
    // Groups of two rows (one image's two samples) share a fold.
    let grouped = stratifiedFolds(labels: labels, groups: labels.indices.map { $0 / 2 }, classes: 2, folds: 4, seed: 2)
    for r in stride(from: 0, to: 100, by: 2) { #expect(grouped[r] == grouped[r + 1]) }
}
