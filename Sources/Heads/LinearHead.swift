import NN
import Reproducible

/// One class with its softmax probability.
public struct Prediction: Sendable, Equatable {
    /// Class index (into the class list the head was trained with).
    public var label: Int
    public var probability: Float
    public init(label: Int, probability: Float) {
        self.label = label
        self.probability = probability
    }
}

/// A linear classification head: logits = W x + b, exactly `torch.nn.Linear(dimension, classes)`
/// (`weight` is classes x dimension row-major, like its state_dict's `weight`).
public struct LinearHead: Sendable, Equatable {
    public let classes: Int
    public let dimension: Int
    /// classes x dimension, row-major.
    public var weight: [Float]
    /// classes.
    public var bias: [Float]

    public init(classes: Int, dimension: Int, weight: [Float], bias: [Float]) throws(HeadsError) {
        guard classes >= 1, dimension >= 1 else {
            throw .invalidOption("a head needs at least 1 class and 1 dimension, got \(classes) x \(dimension)")
        }
        guard weight.count == classes * dimension else {
            throw .shapeMismatch("weight has \(weight.count) values for \(classes) x \(dimension)")
        }
        guard bias.count == classes else {
            throw .shapeMismatch("bias has \(bias.count) values for \(classes) classes")
        }
        self.classes = classes
        self.dimension = dimension
        self.weight = weight
        self.bias = bias
    }

    init(unchecked classes: Int, _ dimension: Int, _ weight: [Float], _ bias: [Float]) {
        self.classes = classes
        self.dimension = dimension
        self.weight = weight
        self.bias = bias
    }

    /// All-zero head.
    public static func zeros(classes: Int, dimension: Int) -> LinearHead {
        LinearHead(unchecked: classes, dimension,
                   [Float](repeating: 0, count: classes * dimension), [Float](repeating: 0, count: classes))
    }

    /// PyTorch's `nn.Linear` initialisation: weight from kaiming_uniform(a = sqrt(5)), which is
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    /// Values are drawn from `SplitMix64(seed:stream: 1)`: weight row-major first, then bias;
    /// each value is `-bound + 2 * bound * u`, with u = `nextFloat()` (same distribution as torch,
    /// not the same numbers).
    public static func pytorchDefault(classes: Int, dimension: Int, seed: UInt64) -> LinearHead {
        var rng = SplitMix64(seed: seed, stream: RandomStream.initialisation)
        let bound = 1 / Float(Double(max(dimension, 1)).squareRoot())
        var w = [Float](repeating: 0, count: classes * dimension)
        for i in w.indices { w[i] = -bound + 2 * bound * rng.nextFloat() }
        var b = [Float](repeating: 0, count: classes)
        for i in b.indices { b[i] = -bound + 2 * bound * rng.nextFloat() }
        return LinearHead(unchecked: classes, dimension, w, b)
    }

    /// Logits for `rows` feature vectors (rows x dimension row-major) -> rows x classes.
    public func logits(_ features: [Float], rows: Int) throws(HeadsError) -> [Float] {
        guard rows >= 0, features.count == rows * dimension else {
            throw .dimensionMismatch(expected: dimension, got: rows > 0 ? features.count / rows : features.count)
        }
        var out = [Float](repeating: 0, count: rows * classes)
        if rows == 0 { return out }
        features.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                logitsUnchecked(x.baseAddress!, rows: rows, into: o.baseAddress!)
            }
        }
        return out
    }

    /// Logits of `rows` vectors at `x` into `out` (rows x classes). sgemm for many rows and
    /// classes, hand dot products otherwise (sgemm's packing costs more than 2-class products).
    func logitsUnchecked(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                let wp = w.baseAddress!
                if classes > 8 && rows * classes >= 64 {
                    for r in 0..<rows { for c in 0..<classes { out[r * classes + c] = b[c] } }
                    sgemm(transA: false, transB: true, m: rows, n: classes, k: dimension,
                          a: x, lda: dimension, b: wp, ldb: dimension, beta: 1, c: out, ldc: classes)
                } else {
                    for r in 0..<rows {
                        let xr = x + r * dimension
                        for c in 0..<classes {
                            out[r * classes + c] = dot(wp + c * dimension, xr, dimension) + b[c]
                        }
                    }
                }
            }
        }
    }

    /// Softmax probabilities for `rows` vectors -> rows x classes; with a `temperature` T (from
    /// temperature scaling, see `calibrate`), softmax(logits / T).
    public func probabilities(_ features: [Float], rows: Int, temperature: Double = 1) throws(HeadsError) -> [Float] {
        var z = try logits(features, rows: rows)
        if temperature != 1 {
            guard temperature > 0, temperature.isFinite else { throw .invalidOption("temperature must be positive, got \(temperature)") }
            let s = Float(1 / temperature)
            for i in z.indices { z[i] *= s }
        }
        z.withUnsafeMutableBufferPointer { p in
            for r in 0..<rows { _ = softmaxCrossEntropyRow(p.baseAddress! + r * classes, classes, label: -1) }
        }
        return z
    }

    /// Top-k classes of one feature vector, most probable first (ties: lower class index first).
    public func predict(_ features: [Float], topK: Int = 1, temperature: Double = 1) throws(HeadsError) -> [Prediction] {
        try predict(batch: features, rows: 1, topK: topK, temperature: temperature)[0]
    }

    /// Top-k classes of each of `rows` feature vectors.
    public func predict(batch features: [Float], rows: Int, topK: Int = 1, temperature: Double = 1) throws(HeadsError) -> [[Prediction]] {
        guard topK >= 1 else { throw .invalidOption("top-k must be at least 1, got \(topK)") }
        let p = try probabilities(features, rows: rows, temperature: temperature)
        let k = min(topK, classes)
        var out: [[Prediction]] = []
        out.reserveCapacity(rows)
        for r in 0..<rows {
            let row = (0..<classes).map { Prediction(label: $0, probability: p[r * classes + $0]) }
            let sorted = row.sorted { $0.probability > $1.probability || ($0.probability == $1.probability && $0.label < $1.label) }
            out.append(Array(sorted.prefix(k)))
        }
        return out
    }
}
