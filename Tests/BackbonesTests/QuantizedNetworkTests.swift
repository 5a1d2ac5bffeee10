import Foundation
import Testing
import NN
import CInt8
@testable import Backbones

/// The int8 network's contract: an image's features are the same bits whatever the batch, the
/// worker count or the kernel version (CInt8's sums are exact in int32 and its epilogue is one
/// fixed sequence of float operations), and the calibration is a function of its images.
/// Quality against float32 is measured on real weights and images in ExtractTests.
@Suite(.serialized) struct QuantizedNetworkTests {
    /// `count` random "normalized images" of 3 x side x side, reproducible.
    static func images(_ count: Int, side: Int, seed: UInt32) -> [Float] {
        var s = seed
        return (0..<(count * 3 * side * side)).map { _ in
            s = s &* 1664525 &+ 1013904223
            return Float(s >> 8) / Float(1 << 24) * 4 - 2
        }
    }

    static func quantized(_ arch: Architecture, workers: Int, side: Int) throws -> (FoldedNetwork, QuantizedNetwork) {
        let folded = try FoldedNetwork(arch, weights: SeededWeights(), options: ForwardOptions(workers: workers))
        let calibrationImages = images(3, side: side, seed: 7)
        let c = calibrationImages.withUnsafeBufferPointer {
            folded.calibrateInt8(images: $0.baseAddress!, count: 3, height: side, width: side, imageSHA256: ["c", "a", "b"])
        }
        return (folded, try QuantizedNetwork(folded, calibration: c))
    }

    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func featuresDoNotDependOnBatchWorkersOrKernels(_ arch: Architecture) throws {
        let side = 64
        let x = Self.images(4, side: side, seed: 99)
        let (_, one) = try Self.quantized(arch, workers: 1, side: side)
        let (_, two) = try Self.quantized(arch, workers: 2, side: side)
        #expect(one.calibration == two.calibration)
        #expect(one.calibration.images == ["a", "b", "c"])
        let reference = one.features(x, height: side, width: side)
        #expect(reference.count == 4 * arch.featureDimension)
        #expect(reference.contains { $0 != 0 } && reference.allSatisfy(\.isFinite))
        #expect(two.features(x, height: side, width: side) == reference)
        // one image at a time (workers share its layers), and in another batch
        let per = 3 * side * side
        for i in 0..<4 {
            let single = two.features(Array(x[i * per ..< (i + 1) * per]), height: side, width: side)
            #expect(single == Array(reference[i * arch.featureDimension ..< (i + 1) * arch.featureDimension]))
        }
        // every kernel version this CPU runs gives the same bits
        let best = int8KernelName
        defer { useInt8Kernels(best) }
        for k in availableInt8Kernels {
            #expect(useInt8Kernels(k))
            #expect(two.features(x, height: side, width: side) == reference, "int8 kernels \(k)")
        }
        #expect(!useInt8Kernels("no-such-kernels"))
    }

    @Test func int8FeaturesFollowTheFloatOnes() throws {
        // Seeded weights: a loose check that the quantized network computes the same function
        // (real weights and images are measured in ExtractTests against the thresholds).
        let side = 64
        let (folded, q) = try Self.quantized(.mobilenetV2, workers: 2, side: side)
        let x = Self.images(3, side: side, seed: 7)  // the calibration images themselves
        let f = folded.features(x, height: side, width: side), g = q.features(x, height: side, width: side)
        let d = 1280
        for i in 0..<3 {
            let a = Array(f[i * d ..< (i + 1) * d]), b = Array(g[i * d ..< (i + 1) * d])
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect(dot / (na * nb).squareRoot() > 0.9)
        }
    }

    static func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
        return dot / (na * nb).squareRoot()
    }

    /// ResNet's 3x3 stride-1 convolutions run as int8 Winograd (their tensors have multipliers, the
    /// arithmetic's version is 3), nothing else does (MobileNetV2 has none: version 2), and the
    /// Winograd network computes nearly what the direct one of the same ranges does.
    @Test func resnetsStrideOneConvolutionsRunAsWinograd() throws {
        let side = 64
        let (folded, q) = try Self.quantized(.resnet18, workers: 2, side: side)
        let w = try #require(q.calibration.winograd)
        #expect(q.calibration.arithmeticVersion == 3)
        var winograd = 0
        for op in folded.ops {
            guard case .conv(let c, _, let y, _) = op else { continue }
            let g = c.geometry
            if g.kernelH == 3 && g.stride == 1 && g.groups == 1 {
                #expect(w[y].count == 16 && w[y].allSatisfy { (1...32767).contains($0) })
                winograd += 1
            } else {
                #expect(w[y].isEmpty)
            }
        }
        #expect(winograd == 13)  // layer1: 4, layers 2-4: 3 each
        #expect(q.ops.filter { if case .winograd = $0 { true } else { false } }.count == 13)
        let (_, m) = try Self.quantized(.mobilenetV2, workers: 1, side: 32)
        #expect(m.calibration.winograd == nil && m.calibration.arithmeticVersion == 2)

        var directCalibration = q.calibration
        directCalibration.winograd = nil
        let direct = try QuantizedNetwork(folded, calibration: directCalibration)
        let x = Self.images(3, side: side, seed: 5)
        let a = q.features(x, height: side, width: side), b = direct.features(x, height: side, width: side)
        #expect(a != b)
        for i in 0..<3 {
            let range = (i * 512)..<((i + 1) * 512)
            #expect(Self.cosine(a[range], b[range]) > 0.999)
        }
    }

    /// A Winograd position's multiplier: the finest step that clips nothing when the values are
    /// small; about the range's own size when they are spread (clipping a little beats a coarse step).
    @Test func theWinogradMultiplierFitsTheValues() {
        let bins = 2 * Int(PROBE_WINO_VMAX) + 1, vmax = Int(PROBE_WINO_VMAX)
        func multiplier(_ values: ClosedRange<Int>, offset: Int32) -> Int32 {
            var h = [Int64](repeating: 0, count: bins)
            for v in values { h[v + vmax] += 10 }
            return h.withUnsafeBufferPointer { WinogradConv.multiplier(histogram: $0, offset: offset) }
        }
        #expect(multiplier(-100...100, offset: 128) == 32767)
        // signed, spread over +-1020: 127 steps cover about +-1020 (mult ~ 127 / 1020 x 2^15 = 4080;
        // within a step or two of the candidates' grid, 2^(1/32) apart: on integer values a step of
        // exactly 4 rounds worse than one of 4.09)
        let spread = multiplier(-1020...1020, offset: 128)
        #expect(spread >= 3900 && spread < 4600, "\(spread)")
        // position 5 (offset 0): 0...1020 over 255 steps, the same multiplier's range doubled
        let positive = multiplier(0...1020, offset: 0)
        #expect(positive >= 7800 && positive < 9200, "\(positive)")
        // and the offset matters: the same values as signed ones need half the multiplier
        #expect(multiplier(0...1020, offset: 128) < positive)
    }

    @Test func theRangeMinimizesTheQuantizationError() {
        // uniform values on [0, 1]: nothing to clip
        let uniform = [Double](repeating: 100, count: 512)
        let r = FoldedNetwork.bestRange(histogram: uniform, low: 0, high: 1)
        #expect(r[0] == 0 && r[1] > 0.97 && r[1] <= 1)
        // a million values in [0, 0.01) and one at 1: the outlier is clipped
        var spiky = [Double](repeating: 0, count: 512)
        for i in 0..<5 { spiky[i] = 200_000 }
        spiky[511] = 1
        let s = FoldedNetwork.bestRange(histogram: spiky, low: 0, high: 1)
        #expect(s[0] == 0 && s[1] >= 5.0 / 512 && s[1] < 0.5)
        // and no other upper edge does better (the error model computed directly, bin by bin)
        func error(_ h: [Double], _ a: Double, _ b: Double) -> Double {
            let step = (b - a) / Double(Int8Calibration.levels), w = 1.0 / Double(h.count)
            var e = 0.0
            for (i, c) in h.enumerated() {
                let x = (Double(i) + 0.5) * w
                e += c * (x < a ? (a - x) * (a - x) : x > b ? (x - b) * (x - b) : step * step / 12)
            }
            return e
        }
        let best = error(spiky, 0, Double(s[1]))
        for edge in 1...512 { #expect(best <= error(spiky, 0, Double(edge) / 512) * (1 + 1e-9)) }
        // symmetric values around 0: the range keeps both sides and contains 0
        let t = FoldedNetwork.bestRange(histogram: uniform, low: -1, high: 1)
        #expect(t[0] < -0.97 && t[1] > 0.97)
    }

    @Test func aCalibrationOfAnotherNetworkIsRefused() throws {
        let (_, q) = try Self.quantized(.mobilenetV2, workers: 1, side: 32)
        let resnet = try FoldedNetwork(.resnet18, weights: SeededWeights(), options: ForwardOptions(workers: 1))
        #expect(throws: BackboneError.self) { try QuantizedNetwork(resnet, calibration: q.calibration) }
        // and the calibration round-trips through its JSON
        #expect(try Int8Calibration.fromJSON(q.calibration.json()) == q.calibration)
    }

    /// The weights' quantization with the bound on pairs (AVX2's vpmaddubsw): every same-sign pair of
    /// input channels (2m, 2m + 1) within PROBE_PAIR_MAX, the scale the smallest that allows it,
    /// each value the rounded one (or, where rounding took a pair to 129, one less in magnitude).
    @Test func weightPairsAreBoundedAtTheSmallestScale() throws {
        let channels = 40, taps = 3, cin = 7, n = taps * cin
        var s: UInt32 = 11
        // correlated neighbours (as RGB weights of a tap), so that the bound often sets the scale
        let w: [Float] = (0..<(channels * n)).map { i in
            s = s &* 1664525 &+ 1013904223
            let noise = Float(s >> 8) / Float(1 << 24) - 0.5
            return (i % 2 == 0 ? 1 : 0.9) * Float((i / 2) % 5 - 2) + noise
        }
        let (plain, plainScales) = w.withUnsafeBufferPointer { QuantizedConv.quantize($0.baseAddress!, channels: channels, count: n) }
        let (q, scales) = w.withUnsafeBufferPointer { QuantizedConv.quantize($0.baseAddress!, channels: channels, count: n, pairsOf: cin) }
        var widened = 0
        for o in 0..<channels {
            let wo = Array(w[(o * n)..<((o + 1) * n)]), qo = q[(o * n)..<((o + 1) * n)].map(Int.init)
            let m = wo.map(abs).max()!
            var pair: Float = 0
            for t in 0..<taps {
                for c in stride(from: 0, to: cin - 1, by: 2) {
                    let (a, b) = (wo[t * cin + c], wo[t * cin + c + 1])
                    if a * b > 0 { pair = max(pair, abs(a) + abs(b)) }
                    let (qa, qb) = (qo[t * cin + c], qo[t * cin + c + 1])
                    #expect(qa * qb <= 0 || abs(qa + qb) <= Int(PROBE_PAIR_MAX))
                }
            }
            #expect(plainScales[o] == m / 127)
            #expect(scales[o] == max(m / 127, pair / Float(PROBE_PAIR_MAX)))
            if scales[o] > plainScales[o] { widened += 1 }
            for i in 0..<n {
                let r = (wo[i] / scales[o]).rounded()
                #expect(abs(qo[i]) <= 127)
                if Float(qo[i]) != r { #expect(abs(Float(qo[i])) == abs(r) - 1) }
            }
        }
        #expect(widened > channels / 2)
        #expect(plain != q)
        // the bound is what probe_qconv_pairs_bounded checks
        for (values, expected) in [(q, Int32(1)), (plain, 0)] {
            var packed = [Int8](repeating: 0, count: probe_qconv_packed_size(Int32(channels), Int32(taps), 8))
            probe_qconv_pack(values, Int32(channels), Int32(taps), Int32(cin), 8, &packed)
            #expect(probe_qconv_pairs_bounded(packed, Int32(channels), Int32(taps), 8) == expected)
        }
    }
}
