#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Mean negative log-likelihood of labels under softmax(logits / T), rows x classes logits, in float64.
public func temperatureNLL(logits: [Float], labels: [Int], classes c: Int, temperature t: Double) -> Double {
    let n = labels.count
    guard n > 0, c > 0 else { return 0 }
    let s = 1 / t
    var total = 0.0
    logits.withUnsafeBufferPointer { z in
        for r in 0..<n {
            let zr = z.baseAddress! + r * c
            var mx = -Double.infinity
            for j in 0..<c { mx = max(mx, s * Double(zr[j])) }
            var sum = 0.0
            for j in 0..<c { sum += exp(s * Double(zr[j]) - mx) }
            total += mx + log(sum) - s * Double(zr[labels[r]])
        }
    }
    return total / Double(n)
}

/// Temperature scaling (Guo et al., 2017): the T > 0 minimising the mean NLL of softmax(logits / T)
/// on a labelled split. The NLL is convex in 1/T, hence unimodal in log T: golden-section search on
/// log T over [log 1e-3, log 1e3] to a width of 1e-10 (a bound is returned when the minimum lies
/// beyond it, e.g. for separable data, whose NLL keeps falling as T -> 0).
public func fitTemperature(logits: [Float], labels: [Int], classes: Int) throws(HeadsError) -> Double {
    guard !labels.isEmpty, logits.count == labels.count * classes else {
        throw .shapeMismatch("\(logits.count) logits for \(labels.count) rows x \(classes) classes")
    }
    for (i, l) in labels.enumerated() where l < 0 || l >= classes { throw .labelOutOfRange(row: i, label: l, classes: classes) }
    func f(_ u: Double) -> Double { temperatureNLL(logits: logits, labels: labels, classes: classes, temperature: exp(u)) }
    let g = (5.0.squareRoot() - 1) / 2
    var a = log(1e-3), b = log(1e3)
    var x1 = b - g * (b - a), x2 = a + g * (b - a)
    var f1 = f(x1), f2 = f(x2)
    while b - a > 1e-10 {
        if f1 <= f2 {
            b = x2; x2 = x1; f2 = f1
            x1 = b - g * (b - a); f1 = f(x1)
        } else {
            a = x1; x1 = x2; f1 = f2
            x2 = a + g * (b - a); f2 = f(x2)
        }
    }
    return exp((a + b) / 2)
}

/// Softmax of logits / T, row by row (rows x classes), in float64, rounded to float32.
public func softmax(logits: [Float], classes c: Int, temperature t: Double = 1) -> [Float] {
    var out = [Float](repeating: 0, count: logits.count)
    guard c > 0 else { return out }
    let s = 1 / t
    for r in 0..<(logits.count / c) {
        var mx = -Double.infinity
        for j in 0..<c { mx = max(mx, s * Double(logits[r * c + j])) }
        var sum = 0.0
        for j in 0..<c { sum += exp(s * Double(logits[r * c + j]) - mx) }
        for j in 0..<c { out[r * c + j] = Float(exp(s * Double(logits[r * c + j]) - mx) / sum) }
    }
    return out
}

/// Expected calibration error with `bins` equal-width confidence bins (Guo et al., 2017):
/// confidence = the top probability, bin b = (b/M, (b+1)/M]; ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|.
/// The prediction is the first class of highest probability.
public func expectedCalibrationError(probabilities p: [Float], labels: [Int], classes c: Int, bins m: Int = 15) throws(HeadsError) -> Double {
    guard m >= 1 else { throw .invalidOption("bins must be at least 1, got \(m)") }
    guard !labels.isEmpty, p.count == labels.count * c else {
        throw .shapeMismatch("\(p.count) probabilities for \(labels.count) rows x \(c) classes")
    }
    var count = [Int](repeating: 0, count: m)
    var correct = [Int](repeating: 0, count: m)
    var confidence = [Double](repeating: 0, count: m)
    for r in 0..<labels.count {
        var best = 0
        for j in 1..<max(c, 1) where p[r * c + j] > p[r * c + best] { best = j }
        let conf = Double(p[r * c + best])
        let b = min(m - 1, max(0, Int((conf * Double(m)).rounded(.up)) - 1))
        count[b] += 1
        confidence[b] += conf
        if best == labels[r] { correct[b] += 1 }
    }
    var ece = 0.0
    for b in 0..<m where count[b] > 0 {
        ece += abs(Double(correct[b]) - confidence[b]) / Double(labels.count)
    }
    return ece
}

/// Temperature scaling of a head on a labelled split: the temperature and the NLL and ECE
/// (15 bins) before (T = 1) and after.
public struct CalibrationResult: Sendable, Equatable, Codable {
    public var temperature: Double
    public var nllBefore: Double
    public var nllAfter: Double
    public var eceBefore: Double
    public var eceAfter: Double
    public var bins: Int
    public var count: Int

    enum CodingKeys: String, CodingKey {
        case temperature, bins, count
        case nllBefore = "nll_before", nllAfter = "nll_after", eceBefore = "ece_before", eceAfter = "ece_after"
    }
}

/// Fits the temperature of `head` on `split` (first views) and measures NLL and ECE before and after.
public func calibrate(_ head: LinearHead, on split: LabeledFeatures, bins: Int = 15) throws(HeadsError) -> CalibrationResult {
    guard split.dimension == head.dimension else { throw .dimensionMismatch(expected: head.dimension, got: split.dimension) }
    for (i, l) in split.labels.enumerated() where l >= head.classes { throw .labelOutOfRange(row: i, label: l, classes: head.classes) }
    let z = try head.logits(split.firstViews, rows: split.count)
    let c = head.classes
    let t = try fitTemperature(logits: z, labels: split.labels, classes: c)
    return CalibrationResult(
        temperature: t,
        nllBefore: temperatureNLL(logits: z, labels: split.labels, classes: c, temperature: 1),
        nllAfter: temperatureNLL(logits: z, labels: split.labels, classes: c, temperature: t),
        eceBefore: try expectedCalibrationError(probabilities: softmax(logits: z, classes: c), labels: split.labels, classes: c, bins: bins),
        eceAfter: try expectedCalibrationError(probabilities: softmax(logits: z, classes: c, temperature: t), labels: split.labels,
                                               classes: c, bins: bins),
        bins: bins, count: split.count)
}
