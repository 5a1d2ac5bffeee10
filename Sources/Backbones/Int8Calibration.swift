import Foundation
import NN
import Parallelism

// Post-training static quantization, step 1: the range of every channel of every activation tensor
// of a network, observed on a sample of the user's images. `QuantizedNetwork` turns the ranges into
// scales and zero points (8-bit: 0...255, see CInt8's header).

/// The calibrated activation ranges of a network: what an int8 network needs besides the weights.
/// Stored with the features it produced (the store's `quantizations` table), so that every later
/// extraction into the same store, on any machine, quantizes the same way.
public struct Int8Calibration: Codable, Sendable, Equatable {
    /// How the ranges were chosen (see `Int8Calibration.observerName`).
    public var observer: String
    /// SHA-256 of the calibration images, sorted.
    public var images: [String]
    /// Per tensor of the folded network (0: the normalized input image, then each layer's
    /// output), per channel: low, high (low <= 0 <= high): [low0, high0, low1, high1, ...].
    public var ranges: [[Float]]
    /// Per tensor, per channel: the mean value on the calibration images, clipped to the range,
    /// with which each layer's bias absorbs the expected error of its quantized weights (bias
    /// correction, Nagel et al. 2019).
    public var means: [[Float]]
    /// Per tensor written by a 3x3 stride-1 convolution that runs as int8 Winograd F(2x2, 3x3): the
    /// 16 multipliers (1...32767, in 2^-15) that requantize its transformed input per Winograd
    /// position (CInt8's probe_qwino_args), calibrated on the same images; [] for the other
    /// tensors. nil: no convolution runs as Winograd (calibrations before Winograd, and networks
    /// without such convolutions, such as MobileNetV2).
    public var winograd: [[Int32]]?

    public static let observerName = "histogram-mse"
    /// Bins of each tensor's histogram.
    public static let bins = 512
    /// Quantization steps of an activation (8-bit: 0...255, CInt8's PROBE_Q_MAX).
    public static let levels = 255

    public init(observer: String = Int8Calibration.observerName, images: [String], ranges: [[Float]], means: [[Float]],
                winograd: [[Int32]]? = nil) {
        self.observer = observer
        self.images = images
        self.ranges = ranges
        self.means = means
        self.winograd = winograd
    }

    /// The version of the int8 arithmetic this calibration is computed with (part of the features'
    /// identity in the store): 2 for direct convolutions only, 3 with Winograd convolutions.
    public var arithmeticVersion: Int { winograd == nil ? 2 : 3 }

    /// The canonical JSON (sorted keys): what the store keeps and what the model's identity hashes.
    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }

    public static func fromJSON(_ s: String) throws -> Int8Calibration {
        try JSONDecoder().decode(Int8Calibration.self, from: Data(s.utf8))
    }

    /// A readable description: "histogram-mse over 32 images".
    public var summary: String { "\(observer) over \(images.count) image\(images.count == 1 ? "" : "s")" }
}

extension FoldedNetwork {
    /// Calibrates int8 activation ranges, per channel of every tensor, on `count` images (NCHW,
    /// 3 x height x width each, normalized), whose SHA-256 are `imageSHA256` (recorded with the
    /// ranges). Two passes: the first finds each channel's minimum and maximum, the second fills a
    /// histogram of `Int8Calibration.bins` bins over [min(0, minimum), max(0, maximum)]; the range
    /// kept is the one that minimizes the expected squared error of quantizing the histogram's
    /// values to 255 steps: clipping error outside, a uniform rounding error of step^2 / 12
    /// inside (the criterion of PyTorch's HistogramObserver, searched exhaustively over bin edges).
    /// `winograd`: then a third pass, of the int8 network of these ranges, calibrates the
    /// multipliers of its 3x3 stride-1 convolutions (`Int8Calibration.winograd`); false: direct
    /// convolutions only (arithmetic version 2).
    public func calibrateInt8(images: UnsafePointer<Float>, count: Int, height: Int, width: Int,
                              imageSHA256: [String], winograd: Bool = true) -> Int8Calibration {
        let tensors = tensorChannels.count
        let perImage = 3 * height * width
        let n = Int8Calibration.bins
        // The images are spread over the workers, each with its own workspace and statistics,
        // merged in worker order; minima, maxima and bin counts (integers, exact in Float below
        // 2^24) do not depend on the order, so neither does the calibration.
        final class Statistics: @unchecked Sendable {
            var lo: [[Float]], hi: [[Float]], hist: [[Float]] = []
            init(_ channels: [Int]) { lo = channels.map { [Float](repeating: 0, count: $0) }; hi = lo }
        }
        let workers = max(1, min(driver.options.workers, count))
        let stats = (0..<workers).map { _ in Statistics(tensorChannels) }
        let spaces = (0..<workers).map { _ in observationWorkspace(height: height, width: width) }
        let saved = blasThreads()
        setBLASThreads(1)
        defer { setBLASThreads(saved) }
        let source = UncheckedSendable(images)
        parallelSlices(count, workers: workers) { w, range in
            let s = stats[w]
            for i in range {
                observe(image: source.value + i * perImage, height: height, width: width, workspace: spaces[w]) { t, v in
                    let c = tensorChannels[t], plane = v.count / c
                    for ch in 0..<c {
                        var a = s.lo[t][ch], b = s.hi[t][ch]
                        for x in v[ch * plane ..< (ch + 1) * plane] { a = min(a, x); b = max(b, x) }
                        s.lo[t][ch] = a; s.hi[t][ch] = b
                    }
                }
            }
        }
        var lo = stats[0].lo, hi = stats[0].hi
        for s in stats.dropFirst() {
            for t in 0..<tensors {
                for ch in 0..<tensorChannels[t] { lo[t][ch] = min(lo[t][ch], s.lo[t][ch]); hi[t][ch] = max(hi[t][ch], s.hi[t][ch]) }
            }
        }
        let (fixedLo, fixedHi) = (lo, hi)
        for s in stats { s.hist = tensorChannels.map { [Float](repeating: 0, count: $0 * n) } }
        parallelSlices(count, workers: workers) { w, range in
            let s = stats[w]
            for i in range {
                observe(image: source.value + i * perImage, height: height, width: width, workspace: spaces[w]) { t, v in
                    let c = tensorChannels[t], plane = v.count / c
                    s.hist[t].withUnsafeMutableBufferPointer { h in
                        for ch in 0..<c where fixedHi[t][ch] > fixedLo[t][ch] {
                            let scale = Float(n) / (fixedHi[t][ch] - fixedLo[t][ch]), l = fixedLo[t][ch]
                            let row = h.baseAddress! + ch * n
                            for x in v[ch * plane ..< (ch + 1) * plane] { row[min(n - 1, max(0, Int((x - l) * scale)))] += 1 }
                        }
                    }
                }
            }
        }
        var hist = stats[0].hist
        for s in stats.dropFirst() {
            for t in 0..<tensors { for i in hist[t].indices { hist[t][i] += s.hist[t][i] } }
        }
        var ranges: [[Float]] = [], means: [[Float]] = []
        for t in 0..<tensors {
            var r: [Float] = [], m: [Float] = []
            for ch in 0..<tensorChannels[t] {
                guard hi[t][ch] > lo[t][ch] else { r += [0, 1]; m.append(0); continue }
                let h = hist[t][ch * n ..< (ch + 1) * n].map(Double.init)
                let ab = Self.bestRange(histogram: h, low: lo[t][ch], high: hi[t][ch])
                r += ab
                // the mean of the values as the quantized network sees them: clipped to the range
                let width = (Double(hi[t][ch]) - Double(lo[t][ch])) / Double(n)
                var sum = 0.0, total = 0.0
                for (i, c) in h.enumerated() where c > 0 {
                    sum += c * min(Double(ab[1]), max(Double(ab[0]), Double(lo[t][ch]) + (Double(i) + 0.5) * width))
                    total += c
                }
                m.append(Float(total > 0 ? sum / total : 0))
            }
            ranges.append(r)
            means.append(m)
        }
        var calibration = Int8Calibration(images: imageSHA256.sorted(), ranges: ranges, means: means)
        // the Winograd domain's ranges, on the direct int8 network of these ranges
        if winograd, let direct = try? QuantizedNetwork(self, calibration: calibration) {
            calibration.winograd = direct.winogradMultipliers(images: images, count: count, height: height, width: width)
        }
        return calibration
    }

    /// The [a, b] (bin edges, a <= 0 <= b) minimizing the expected squared quantization error of
    /// the histogram's values with `Int8Calibration.levels` steps. Prefix sums make each
    /// candidate O(1).
    static func bestRange(histogram h: [Double], low: Float, high: Float) -> [Float] {
        let n = h.count
        let width = (Double(high) - Double(low)) / Double(n)
        func edge(_ i: Int) -> Double { Double(low) + Double(i) * width }
        var c = [Double](repeating: 0, count: n + 1), s1 = c, s2 = c
        for i in 0..<n {
            let x = edge(i) + width / 2
            c[i + 1] = c[i] + h[i]
            s1[i + 1] = s1[i] + h[i] * x
            s2[i + 1] = s2[i] + h[i] * x * x
        }
        // candidate lower edges: those <= 0 (the first only when low = 0); upper: those >= 0
        let zero = min(n, max(0, Int((-Double(low) / width).rounded(.down))))
        let lowerEdges = low < 0 ? Array(0...zero) : [0]
        var best = (error: Double.infinity, a: 0, b: n)
        let levels = Double(Int8Calibration.levels)
        for a in lowerEdges where edge(a) <= 0 {
            let ea = edge(a)
            let left = ea * ea * c[a] - 2 * ea * s1[a] + s2[a]
            if left >= best.error { continue }
            var b = n
            while b > a && edge(b) >= 0 {
                let eb = edge(b)
                let right = (s2[n] - s2[b]) - 2 * eb * (s1[n] - s1[b]) + eb * eb * (c[n] - c[b])
                let step = (eb - ea) / levels
                let error = left + right + (c[b] - c[a]) * step * step / 12
                if error < best.error { best = (error, a, b) }
                b -= 1
            }
        }
        let a = Float(min(0, edge(best.a))), b = Float(max(0, edge(best.b)))
        return b > a ? [a, b] : [low, high]
    }
}

/// The arithmetic a backbone's features are computed in.
public enum Precision: String, Sendable, Codable, CaseIterable {
    /// The folded float32 network (`FoldedNetwork`): the default.
    case float32
    /// Post-training static int8 quantization (`QuantizedNetwork`), calibrated on the user's images.
    case int8
}
