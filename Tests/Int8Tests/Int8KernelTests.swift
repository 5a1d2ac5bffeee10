import XCTest
import CInt8

// The int8 kernels (Sources/CInt8): the scalar version's semantics on hand-computed cases, and every
// version this CPU has (AVX2, AVX-512 VNNI) byte-identical to the scalar one on random shapes:
// convolution, depthwise convolution, max pooling, quantization of the input image.

/// A seeded generator (SplitMix64), so that a failing case can be replayed.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in range (small ranges: the modulo bias does not matter here).
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
}

/// Memory that C reads and writes, freed with the object (which Swift may release right after the
/// last use of `pointer`: calls keep their buffers alive with withExtendedLifetime).
final class Buffer<T> {
    let pointer: UnsafeMutablePointer<T>
    let count: Int
    init(_ values: [T]) {
        count = values.count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(from: values, count: count)
    }
    init(repeating value: T, count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: count)
    }
    deinit { pointer.deallocate() }
    var array: [T] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// The kernel versions this CPU has.
var kernels: [Int32] { Array(Int32(PROBE_INT8_SCALAR)...probe_int8_best_kernel()) }

/// A convolution's operands (weights packed), for probe_qconv.
private struct QConv {
    var oc, taps, cin, cinStride: Int
    var weights: Buffer<Int8>            // packed
    var accOffset: Buffer<Int32>, scale: Buffer<Float>, bias: Buffer<Float>
    var activation: Int32
    var residual: Buffer<UInt8>?
    var resStride = 0, resZero: Int32 = 0, resScale: Float = 0
    var f32Output: Bool
    var outStride: Int, outInvScale: Float, outZero: Int32
    /// Per-channel values (nil: the scalar above in every channel).
    var resZeros: [Int32]? = nil, resScales: [Float]? = nil, outInvScales: [Float]? = nil, outZeros: [Int32]? = nil
    var input: Buffer<UInt8>
    var indirection: Buffer<Int32>
    var pixels: Int
    /// probe_qconv_pairs_bounded of the weights (1: AVX2's vpmaddubsw way).
    var pairsBounded: Int32 = 0
    /// The int32 sums as the output (out_i32) instead of f32Output's or u8.
    var i32Output = false

    /// Output bytes: pixels x outStride elements (u8, f32 or i32), filled with 0xAB before the call(s).
    var outputBytes: Int { pixels * outStride * (f32Output || i32Output ? 4 : 1) }

    /// Runs probe_qconv on each of `ranges` (with the kernel in use) into a fresh output; its bytes.
    func run(_ ranges: [(Int, Int)]) -> [UInt8] {
        let out = Buffer<UInt8>(repeating: 0xAB, count: outputBytes)
        let rz = Buffer(resZeros ?? Array(repeating: resZero, count: oc)), rs = Buffer(resScales ?? Array(repeating: resScale, count: oc))
        let oi = Buffer(outInvScales ?? Array(repeating: outInvScale, count: oc)), oz = Buffer(outZeros ?? Array(repeating: outZero, count: oc))
        out.pointer.withMemoryRebound(to: Float.self, capacity: f32Output || i32Output ? pixels * outStride : 0) { f32 in
            var a = probe_qconv_args(
                out_channels: Int32(oc), taps: Int32(taps), cin_stride: Int32(cinStride),
                weights: UnsafePointer(weights.pointer), acc_offset: UnsafePointer(accOffset.pointer),
                scale: UnsafePointer(scale.pointer), bias: UnsafePointer(bias.pointer), activation: activation,
                residual: residual.map { UnsafePointer($0.pointer) }, res_stride: Int32(resStride), res_zero: UnsafePointer(rz.pointer),
                res_scale: UnsafePointer(rs.pointer), out_u8: f32Output || i32Output ? nil : out.pointer,
                out_f32: f32Output && !i32Output ? f32 : nil,
                out_stride: Int32(outStride), out_inv_scale: UnsafePointer(oi.pointer), out_zero: UnsafePointer(oz.pointer),
                pairs_bounded: pairsBounded, out_i32: nil)
            if i32Output { a.out_i32 = UnsafeMutableRawPointer(f32).assumingMemoryBound(to: Int32.self) }
            withExtendedLifetime((self, rz, rs, oi, oz)) {
                for (p0, p1) in ranges { probe_qconv(&a, input.pointer, indirection.pointer, Int32(p0), Int32(p1)) }
            }
        }
        return out.array
    }
}

/// Packs w[oc][taps][cin] for the kernels.
func pack(_ w: [Int8], oc: Int, taps: Int, cin: Int, cinStride: Int) -> Buffer<Int8> {
    let packed = Buffer<Int8>(repeating: 0x55, count: probe_qconv_packed_size(Int32(oc), Int32(taps), Int32(cinStride)))
    withExtendedLifetime(packed) {
        w.withUnsafeBufferPointer { probe_qconv_pack($0.baseAddress, Int32(oc), Int32(taps), Int32(cin), Int32(cinStride), packed.pointer) }
    }
    return packed
}

func floats(_ bytes: [UInt8]) -> [Float] {
    bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

final class Int8KernelTests: XCTestCase {
    override func tearDown() {
        probe_int8_use_kernel(probe_int8_best_kernel())
        super.tearDown()
    }

    func testKernelNames() {
        XCTAssertEqual(String(cString: probe_int8_kernel_name(Int32(PROBE_INT8_SCALAR))), "scalar")
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        XCTAssertEqual(probe_int8_kernel(), Int32(PROBE_INT8_SCALAR))
        XCTAssertEqual(probe_int8_use_kernel(probe_int8_best_kernel()), 0)
        XCTAssertEqual(probe_int8_use_kernel(probe_int8_best_kernel() + 1), -1)
        XCTAssertEqual(probe_int8_kernel(), probe_int8_best_kernel())
    }

    func testPackLayout() {
        // 17 channels (two blocks, the second zero-padded), 2 taps of 3 channels (stride 4).
        let oc = 17, taps = 2, cin = 3, cs = 4
        let w = (0..<(oc * taps * cin)).map { Int8(truncatingIfNeeded: $0 % 200 - 100) }
        let packed = pack(w, oc: oc, taps: taps, cin: cin, cinStride: cs).array
        XCTAssertEqual(packed.count, 2 * taps * cs * 16)
        let groups = taps * cs / 4
        for o in 0..<32 {
            for k in 0..<(taps * cs) {
                let (t, c) = (k / cs, k % cs)
                let expected: Int8 = o < oc && c < cin ? w[(o * taps + t) * cin + c] : 0
                XCTAssertEqual(packed[(((o / 16) * groups + k / 4) * 16 + o % 16) * 4 + k % 4], expected, "o \(o) k \(k)")
            }
        }
    }

    /// The scalar version's semantics on numbers computed by hand: one pixel, 3 input channels
    /// (stride 4), 3 output channels, a residual; each activation, u8 and f32 output.
    func testScalarHandComputed() {
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        // x = (10, 20, 30 | pad 5); w0 = (1, -2, 3), w1 = (-127, 0, 127), w2 = (0, 0, 1).
        // acc = 10 - 40 + 90 = 60; -1270 + 3810 = 2540; 30.
        // + acc_offset (-5, 40, 0) = 55, 2580, 30; * scale (0.5, 0.25, 0.125) = 27.5, 645, 3.75;
        // + bias (1, -700, -2.5) = 28.5, -55, 1.25; + (residual (12, 3, 2) - 2) * 0.5 = 33.5, -54.5, 1.25.
        var conv = QConv(
            oc: 3, taps: 1, cin: 3, cinStride: 4,
            weights: pack([1, -2, 3, -127, 0, 127, 0, 0, 1], oc: 3, taps: 1, cin: 3, cinStride: 4),
            accOffset: Buffer([-5, 40, 0]), scale: Buffer([0.5, 0.25, 0.125]), bias: Buffer([1, -700, -2.5]),
            activation: Int32(PROBE_ACT_NONE), residual: Buffer([12, 3, 2]), resStride: 3, resZero: 2, resScale: 0.5,
            f32Output: true, outStride: 3, outInvScale: 2, outZero: 3,
            input: Buffer([10, 20, 30, 5]), indirection: Buffer([0]), pixels: 1)
        XCTAssertEqual(floats(conv.run([(0, 1)])), [33.5, -54.5, 1.25])
        conv.activation = Int32(PROBE_ACT_RELU)
        XCTAssertEqual(floats(conv.run([(0, 1)])), [33.5, 0, 1.25])
        conv.activation = Int32(PROBE_ACT_RELU6)
        XCTAssertEqual(floats(conv.run([(0, 1)])), [6, 0, 1.25])
        // u8: clamp(rint(v * 2) + 3, 0, 255); 2.5 rounds to even (2).
        conv.f32Output = false
        conv.activation = Int32(PROBE_ACT_NONE)
        XCTAssertEqual(conv.run([(0, 1)]), [70, 0, 5])       // 67 + 3; -109 + 3 -> 0; 2 + 3
        conv.activation = Int32(PROBE_ACT_RELU6)
        XCTAssertEqual(conv.run([(0, 1)]), [15, 3, 5])       // 12 + 3; 0 + 3; 2 + 3
        conv.outInvScale = 100                               // 3350 -> clamped to 512 -> 255
        conv.activation = Int32(PROBE_ACT_RELU)
        XCTAssertEqual(conv.run([(0, 1)]), [255, 3, 128])    // 125 + 3
        // per-channel output scales and zero points (and residual ones): 33.5 * 2 + 3, -54.5 * 1 + 100, 1.25 * 4 + 0
        conv.activation = Int32(PROBE_ACT_NONE)
        conv.outInvScales = [2, 1, 4]
        conv.outZeros = [3, 100, 0]
        XCTAssertEqual(conv.run([(0, 1)]), [70, 46, 5])      // 67 + 3; -54 (-54.5 to even) + 100; 5
        conv.resZeros = [2, 3, 0]                            // residual terms 5, 0, 1: 33.5, -55, 2.25
        conv.resScales = [0.5, 1, 0.5]
        XCTAssertEqual(conv.run([(0, 1)]), [70, 45, 9])      // 67 + 3; -55 + 100; 9
        conv.outInvScales = nil; conv.outZeros = nil; conv.resZeros = nil; conv.resScales = nil
        // No residual: 28.5, -55, 1.25 (f32).
        conv.residual = nil
        conv.f32Output = true
        conv.activation = Int32(PROBE_ACT_NONE)
        XCTAssertEqual(floats(conv.run([(0, 1)])), [28.5, -55, 1.25])
    }

    /// A padding tap (the indirection entry of the zero-point pixel) contributes exactly nothing
    /// once acc_offset = -zero * (sum of the channel's weights) is added: 3 taps of one channel,
    /// the middle one padding.
    func testScalarPaddingTap() {
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        let zero: Int32 = 7
        // Input pixels: (9), (11), then the padding pixel (zero point); channel stride 4.
        let input = Buffer<UInt8>([9, 0, 0, 0, 11, 0, 0, 0, 7, 7, 7, 7])
        let w: [Int8] = [2, 5, -3]                           // taps of channel 0 (1 output channel)
        // acc = (9 - 7) * 2 + 0 * 5 + (11 - 7) * -3 = -8, as sum(x * w) - 7 * (2 + 5 - 3) = 18 + 35 - 33 - 28.
        let conv = QConv(
            oc: 1, taps: 3, cin: 1, cinStride: 4, weights: pack(w, oc: 1, taps: 3, cin: 1, cinStride: 4),
            accOffset: Buffer([-zero * (2 + 5 - 3)]), scale: Buffer([1]), bias: Buffer([0]),
            activation: Int32(PROBE_ACT_NONE), residual: nil, f32Output: true, outStride: 1, outInvScale: 1, outZero: 0,
            input: input, indirection: Buffer([0, 8, 4]), pixels: 1)
        XCTAssertEqual(floats(conv.run([(0, 1)])), [-8])
    }

    /// Every kernel version gives the scalar version's bytes on random convolutions: output channels
    /// below, at and above multiples of 16 and 64, pixel counts not multiples of the tiles, taps
    /// 1 / 9 / 49, channel strides 4...1024, padding entries, residual or not, u8 or f32 output,
    /// each activation, special floats (NaN, infinities, -0, saturation), pixel ranges split in pieces.
    func testQConvVersionsAgree() {
        var rng = SplitMix64(state: 20_261_129)
        let versions = kernels
        XCTAssertGreaterThanOrEqual(versions.count, 1)
        var checked = 0, bounded = 0, outputsI32 = 0
        for iteration in 0..<400 {
            let taps = [1, 9, 49][rng.int(0...2)]
            let cinStride: Int
            switch (taps, iteration % 8) {
            case (49, _): cinStride = 4 * rng.int(1...2)
            case (_, 0): cinStride = 4 * rng.int(64...256)          // up to 1024
            case (9, _): cinStride = 4 * rng.int(1...24)
            default: cinStride = 4 * rng.int(1...64)
            }
            let cin = max(1, cinStride - rng.int(0...3))
            let ocChoices = [1, 3, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 100, 128, 144, 150, 192, 200]
            let oc = rng.chance(0.7) ? ocChoices[rng.int(0...(ocChoices.count - 1))] : rng.int(1...260)
            let pixels = rng.int(1...(taps == 49 ? 30 : 45))
            let inPixels = rng.int(1...20)
            // Input pixels, then the padding pixel (the zero points); activations up to 255, often high
            // (where vpmaddubsw would saturate without the AVX2 version's split).
            let high = rng.chance(0.3)
            var x = (0..<(inPixels * cinStride)).map { _ in UInt8(high ? rng.int(200...255) : rng.int(0...255)) }
            x += (0..<cinStride).map { _ in UInt8(rng.int(0...255)) }
            let ind = (0..<(pixels * taps)).map { _ in Int32((rng.chance(0.2) ? inPixels : rng.int(0...(inPixels - 1))) * cinStride) }
            var w = (0..<(oc * taps * cin)).map { _ in Int8(high && rng.chance(0.5) ? (rng.chance(0.5) ? 127 : -127) : rng.int(-127...127)) }
            let boundPairs = rng.chance(0.5)
            if boundPairs {
                // Same-sign pairs of input channels (2m, 2m + 1) brought within PROBE_PAIR_MAX, often
                // right at it (the largest pair sums, 255 * 128, with the high activations)
                for i in stride(from: 0, to: w.count, by: cin) {
                    for c in stride(from: 0, to: cin - 1, by: 2) where Int(w[i + c]) * Int(w[i + c + 1]) > 0 {
                        let a = Int(w[i + c]), b = Int(w[i + c + 1])
                        guard abs(a + b) > Int(PROBE_PAIR_MAX) || rng.chance(0.3) else { continue }
                        let m = rng.chance(0.5) ? Int(PROBE_PAIR_MAX) : rng.int(2...Int(PROBE_PAIR_MAX))
                        let first = rng.int(max(1, m - 127)...min(127, m - 1))
                        w[i + c] = Int8(a.signum() * first)
                        w[i + c + 1] = Int8(a.signum() * (m - first))
                    }
                }
            }
            let weightScale = 1 / Float(taps * cin * 127 * 8)
            var accOffset = (0..<oc).map { _ in Int32(rng.int(-20000...20000)) }
            var scale = (0..<oc).map { _ in Float(rng.int(1...1000)) * weightScale * (rng.chance(0.1) ? -1 : 1) }
            var bias = (0..<oc).map { _ in Float(rng.int(-1000...1000)) / 500 }
            if rng.chance(0.5) {
                // Special values on a few channels: -0 (0 * negative scale + -0 bias), NaN, infinities,
                // values beyond the u8 range either way.
                for _ in 0..<rng.int(1...4) {
                    let o = rng.int(0...(oc - 1))
                    switch rng.int(0...4) {
                    case 0: scale[o] = -0.5; bias[o] = -0.0; accOffset[o] = 0
                    case 1: scale[o] = .nan
                    case 2: scale[o] = .infinity
                    case 3: bias[o] = -.infinity
                    default: bias[o] = rng.chance(0.5) ? 1e6 : -1e6
                    }
                }
            }
            let outStride = oc + rng.int(0...5)
            let residual = rng.chance(0.5)
            let resStride = oc + rng.int(0...3)
            var conv = QConv(
                oc: oc, taps: taps, cin: cin, cinStride: cinStride,
                weights: pack(w, oc: oc, taps: taps, cin: cin, cinStride: cinStride),
                accOffset: Buffer(accOffset), scale: Buffer(scale), bias: Buffer(bias),
                activation: Int32(rng.int(0...2)),
                residual: residual ? Buffer((0..<(pixels * resStride)).map { _ in UInt8(rng.int(0...255)) }) : nil,
                resStride: resStride, resZero: Int32(rng.int(0...255)), resScale: Float(rng.int(1...100)) / 1000,
                f32Output: rng.chance(0.3), outStride: outStride, outInvScale: Float(rng.int(1...400)) / 10,
                outZero: Int32(rng.chance(0.1) ? rng.int(-40...300) : rng.int(0...255)),
                input: Buffer(x), indirection: Buffer(ind), pixels: pixels)
            if rng.chance(0.05) { conv.outInvScale = .infinity }
            conv.i32Output = !conv.f32Output && rng.chance(0.2)
            conv.pairsBounded = probe_qconv_pairs_bounded(conv.weights.pointer, Int32(oc), Int32(taps), Int32(cinStride))
            if boundPairs { XCTAssertEqual(conv.pairsBounded, 1, "iteration \(iteration)") }
            bounded += Int(conv.pairsBounded)
            if rng.chance(0.7) {
                // per-channel terms (output zero points often all 0: relu6 outputs, a requantization
                // mode of the VNNI version)
                let zeroOutputs = rng.chance(0.3)
                conv.outInvScales = (0..<oc).map { _ in Float(rng.int(1...400)) / 10 }
                conv.outZeros = (0..<oc).map { _ in zeroOutputs ? 0 : Int32(rng.int(0...255)) }
                conv.resZeros = (0..<oc).map { _ in Int32(rng.int(0...255)) }
                conv.resScales = (0..<oc).map { _ in Float(rng.int(1...100)) / 1000 }
            }
            // A pixel range (often all), and the same range split at random points.
            var (p0, p1) = (0, pixels)
            if rng.chance(0.3) {
                p0 = rng.int(0...(pixels - 1))
                p1 = rng.int((p0 + 1)...pixels)
            }
            var pieces: [(Int, Int)] = []
            var start = p0
            while start < p1 {
                let end = rng.chance(0.5) ? p1 : min(p1, start + rng.int(1...13))
                pieces.append((start, end))
                start = end
            }
            XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
            let reference = conv.run([(p0, p1)])
            if conv.i32Output {
                // the sums themselves: sum over taps and channels of x * w, plus acc_offset
                let sums = reference.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
                for p in p0..<p1 {
                    for o in 0..<oc {
                        var s = Int(accOffset[o])
                        for t in 0..<taps {
                            let base = Int(ind[p * taps + t])
                            for c in 0..<cin { s += Int(x[base + c]) * Int(w[(o * taps + t) * cin + c]) }
                        }
                        XCTAssertEqual(Int(sums[p * outStride + o]), s, "iteration \(iteration): pixel \(p) channel \(o)")
                    }
                }
                outputsI32 += 1
            }
            for version in versions {
                XCTAssertEqual(probe_int8_use_kernel(version), 0)
                let whole = conv.run([(p0, p1)])
                let split = conv.run(pieces)
                let name = String(cString: probe_int8_kernel_name(version))
                let shape = "iteration \(iteration) \(name): oc \(oc) taps \(taps) cin \(cin)/\(cinStride) pixels \(p0)..<\(p1) of \(pixels) "
                    + "residual \(residual) f32 \(conv.f32Output) i32 \(conv.i32Output) act \(conv.activation)"
                if whole != reference {
                    let i = whole.indices.first { whole[$0] != reference[$0] }!
                    XCTFail("\(shape): byte \(i) differs (\(whole[i]) vs scalar \(reference[i]))")
                }
                XCTAssertTrue(split == reference, "\(shape): split in \(pieces.count) pieces")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 400 * versions.count)
        XCTAssertGreaterThan(bounded, 150)  // about half of the cases take the AVX2 vpmaddubsw way
        XCTAssertGreaterThan(outputsI32, 30)
        probe_int8_use_kernel(probe_int8_best_kernel())
    }

    /// probe_qconv_pairs_bounded: same-sign pairs (k even, k + 1) of each output channel within
    /// PROBE_PAIR_MAX; opposite signs, and values of different pairs, never matter.
    func testPairsBounded() {
        func bounded(_ w: [Int8], oc: Int = 1, cin: Int = 4) -> Int32 {
            let packed = pack(w, oc: oc, taps: 1, cin: cin, cinStride: 4)
            return withExtendedLifetime(packed) { probe_qconv_pairs_bounded(packed.pointer, Int32(oc), 1, 4) }
        }
        XCTAssertEqual(PROBE_PAIR_MAX, 128)
        XCTAssertEqual(bounded([127, 1, -1, -127]), 1)
        XCTAssertEqual(bounded([64, 64, -64, -64]), 1)
        XCTAssertEqual(bounded([127, -127, -127, 127]), 1)
        XCTAssertEqual(bounded([1, 127, 127, 0]), 1)     // k = 1 and 2: different pairs
        XCTAssertEqual(bounded([127, 2, 0, 0]), 0)
        XCTAssertEqual(bounded([0, 0, -65, -64]), 0)
        XCTAssertEqual(bounded([100, 100, 0]), 0, "cin 3 (padded to 4)")
        XCTAssertEqual(bounded([100, 0, 100]), 1, "cin 3: channel 2 pairs with padding")
        // the second of 17 output channels (the second block of 16)
        XCTAssertEqual(bounded(Array(repeating: 64, count: 16 * 4) + [64, 65, 0, 0], oc: 17), 0)
        XCTAssertEqual(bounded(Array(repeating: 64, count: 16 * 4) + [64, 64, 0, 0], oc: 17), 1)
    }

    /// The scalar output really depends on what the comparison must catch (the test above could
    /// otherwise pass on outputs that ignore the weights): changing one weight changes the output.
    func testComparisonSeesAWeightChange() {
        XCTAssertEqual(probe_int8_use_kernel(probe_int8_best_kernel()), 0)
        func run(_ w0: Int8) -> [UInt8] {
            let conv = QConv(
                oc: 20, taps: 9, cin: 8, cinStride: 8,
                weights: pack([w0] + [Int8](repeating: 1, count: 20 * 9 * 8 - 1), oc: 20, taps: 9, cin: 8, cinStride: 8),
                accOffset: Buffer(repeating: 0, count: 20), scale: Buffer(repeating: 0.01, count: 20), bias: Buffer(repeating: 0, count: 20),
                activation: Int32(PROBE_ACT_NONE), residual: nil, f32Output: true, outStride: 20, outInvScale: 1, outZero: 0,
                input: Buffer(repeating: 100, count: 8), indirection: Buffer(repeating: 0, count: 9 * 7), pixels: 7)
            return conv.run([(0, 7)])
        }
        XCTAssertNotEqual(run(1), run(2))
    }

    /// probe_qdwconv3x3 by hand: a 2x2 map, 2 channels (stride 4), stride 1, relu6 then u8.
    func testScalarDepthwiseHandComputed() {
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        // Pixels (row-major): channel 0 = 1, 2, 3, 4; channel 1 = 10, 20, 30, 40; channels 2-3 zero.
        let input = Buffer<UInt8>([1, 10, 0, 0, 2, 20, 0, 0, 3, 30, 0, 0, 4, 40, 0, 0])
        // w[tap][c]: channel 0 weights 1 on every tap, channel 1 weight -1 on the centre tap only.
        var w = [Int8](repeating: 0, count: 18)
        for t in 0..<9 { w[t * 2] = 1 }
        w[4 * 2 + 1] = -1
        let out = Buffer<UInt8>(repeating: 0xAB, count: 16)
        let accOffset = Buffer<Int32>([0, 50]), scale = Buffer<Float>([0.5, 0.25]), bias = Buffer<Float>([0.25, 0])
        let invScale = Buffer<Float>([4, 8]), zero = Buffer<Int32>([1, 2])
        withExtendedLifetime((input, accOffset, scale, bias, out, invScale, zero)) {
            probe_qdwconv3x3(input.pointer, 2, 2, 2, 4, 1, w, accOffset.pointer, scale.pointer, bias.pointer,
                             Int32(PROBE_ACT_RELU6), invScale.pointer, zero.pointer, out.pointer, 0, 2)
        }
        // Channel 0: every output sees all 4 pixels (padding skipped): 10 * 0.5 + 0.25 = 5.25 -> 5.25 * 4 = 21 + 1 = 22.
        // Channel 1: (50 - x) * 0.25 = 10, 7.5, 5, 2.5 -> relu6 6, 6, 5, 2.5 -> 48, 48, 40, 20 (+ 2); channels 2-3: 0.
        XCTAssertEqual(out.array, [22, 50, 0, 0, 22, 50, 0, 0, 22, 42, 0, 0, 22, 22, 0, 0])
    }

    /// Every version's depthwise convolution gives the scalar one's bytes: random maps (1...21 pixels
    /// a side), channels 1...200 (not multiples of 8 or 16), pixel strides above the channels,
    /// strides 1 and 2, special floats, rows split in pieces.
    func testDepthwiseVersionsAgree() {
        var rng = SplitMix64(state: 77)
        for iteration in 0..<300 {
            let (h, w, stride) = (rng.int(1...21), rng.int(1...21), rng.int(1...2))
            // Some multiples of 16 (plus 8): the AVX2 version's 16-channel chunks without (or with
            // only) its 8-channel tail.
            let channels = rng.chance(0.2) ? 16 * rng.int(1...4) + 8 * rng.int(0...1)
                : rng.chance(0.7) ? rng.int(1...70) : rng.int(71...200)
            let strideC = (channels + 3) / 4 * 4 + 4 * rng.int(0...1)
            let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1)
            let input = Buffer((0..<(h * w * strideC)).map { _ in UInt8(rng.int(0...255)) })
            let weights = (0..<(9 * channels)).map { _ in Int8(rng.int(-127...127)) }
            let accOffset = Buffer((0..<channels).map { _ in Int32(rng.int(-3000...3000)) })
            var scaleValues = (0..<channels).map { _ in Float(rng.int(-200...1000)) / 40000 }
            if rng.chance(0.3) { scaleValues[rng.int(0...(channels - 1))] = rng.chance(0.5) ? .nan : -.infinity }
            let scale = Buffer(scaleValues), bias = Buffer((0..<channels).map { _ in Float(rng.int(-1000...1000)) / 300 })
            let activation = Int32(rng.int(0...2))
            // Output scales sometimes large (6 * inv_scale past 512), zero points often all 0 (the VNNI
            // version's requantization modes).
            let largeScales = rng.chance(0.3), zeroOutputs = rng.chance(0.3)
            var invScaleValues = (0..<channels).map { _ in Float(rng.int(1...300)) / (largeScales ? 1 : 10) }
            // Sometimes an output scale that is 0, negative or infinite, or zero points outside
            // 0...255: the requantization modes' general cases.
            if rng.chance(0.1) { invScaleValues[rng.int(0...(channels - 1))] = [0, -3, .infinity][rng.int(0...2)] }
            let invScale = Buffer(invScaleValues)
            let wideZeros = rng.chance(0.1)
            let zero = Buffer((0..<channels).map { _ in
                zeroOutputs ? 0 : Int32(wideZeros && rng.chance(0.3) ? rng.int(-400...700) : rng.int(0...255))
            })
            let r0 = rng.int(0...(oh - 1)), r1 = rng.chance(0.3) ? oh + 2 : rng.int((r0 + 1)...oh)   // r1 past the end: clamped
            func run(split: Bool) -> [UInt8] {
                let out = Buffer<UInt8>(repeating: 0xAB, count: oh * ow * strideC)
                var row = r0
                while row < r1 {
                    let end = split ? min(r1, row + rng.int(1...3)) : r1
                    withExtendedLifetime((input, accOffset, scale, bias, out, invScale, zero)) {
                        probe_qdwconv3x3(input.pointer, Int32(h), Int32(w), Int32(channels), Int32(strideC), Int32(stride),
                                         weights, accOffset.pointer, scale.pointer, bias.pointer, activation, invScale.pointer, zero.pointer,
                                         out.pointer, Int32(row), Int32(end))
                    }
                    row = end
                }
                return out.array
            }
            XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
            let reference = run(split: false)
            XCTAssertTrue(reference.contains { $0 != 0xAB })
            for version in kernels {
                XCTAssertEqual(probe_int8_use_kernel(version), 0)
                let name = String(cString: probe_int8_kernel_name(version))
                let shape = "iteration \(iteration) \(name): \(h)x\(w)x\(channels)/\(strideC) stride \(stride) rows \(r0)..<\(r1)"
                XCTAssertTrue(run(split: false) == reference, shape)
                XCTAssertTrue(run(split: true) == reference, shape + " split")
            }
        }
        probe_int8_use_kernel(probe_int8_best_kernel())
    }

    /// probe_qmaxpool3x3s2 by hand (3x3 map, 1 channel in 4 bytes), then every version on random maps.
    func testMaxPool() {
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        let values: [UInt8] = [5, 1, 9, 2, 8, 3, 7, 6, 4]                  // 3x3, channel 0
        let input = Buffer<UInt8>(values.flatMap { v -> [UInt8] in [v, 100 - v, 0, 0] })
        let out = Buffer<UInt8>(repeating: 0xAB, count: 2 * 2 * 4)
        withExtendedLifetime((input, out)) { probe_qmaxpool3x3s2(input.pointer, 3, 3, 4, out.pointer) }
        // Output (0,0): rows 0-1, cols 0-1 = 5 1 2 8; (0,1): cols 1-2 = 1 9 8 3; (1,0): rows 1-2 = 2 8 7 6; (1,1): 8 3 6 4.
        XCTAssertEqual(out.array, [8, 99, 0, 0, 9, 99, 0, 0, 8, 98, 0, 0, 8, 97, 0, 0])

        var rng = SplitMix64(state: 5)
        for iteration in 0..<200 {
            let (h, w, strideC) = (rng.int(1...19), rng.int(1...19), 4 * rng.int(1...40))
            let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1)
            let input = Buffer((0..<(h * w * strideC)).map { _ in UInt8(rng.int(0...255)) })
            func run() -> [UInt8] {
                let out = Buffer<UInt8>(repeating: 0xAB, count: oh * ow * strideC)
                withExtendedLifetime((input, out)) { probe_qmaxpool3x3s2(input.pointer, Int32(h), Int32(w), Int32(strideC), out.pointer) }
                return out.array
            }
            XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
            let reference = run()
            for version in kernels {
                XCTAssertEqual(probe_int8_use_kernel(version), 0)
                XCTAssertTrue(run() == reference, "iteration \(iteration) \(String(cString: probe_int8_kernel_name(version))): \(h)x\(w)/\(strideC)")
            }
        }
        probe_int8_use_kernel(probe_int8_best_kernel())
    }

    /// probe_quantize_chw by hand (rounding to even, clamping, the zero point in the padding
    /// channel), then every version on random images (1-5 channels, strides 4 and 8; NaN, infinities, halves).
    func testQuantizeImage() {
        XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
        // 2 pixels, 3 channels (planes), inv_scale 2 (channel 2: 4), zero 10 (channel 1: 20): x * inv_scale
        // rounded to even, + zero, clamped to 0...255; channel 3 (padding): 0.
        let x: [Float] = [0.25, -1.25, 3, 200, -6, .nan]                // planes: c0 = (0.25, -1.25), c1 = (3, 200), c2 = (-6, nan)
        let out = Buffer<UInt8>(repeating: 0xAB, count: 8)
        withExtendedLifetime(out) { probe_quantize_chw(x, 3, 1, 2, [2, 2, 4], [10, 20, 10], 4, out.pointer) }
        // 0.5 -> 0 + 10; -2.5 -> -2 + 10; 6 + 20; 400 + 20 -> 255; -24 + 10 -> 0; nan -> -512 + 10 -> 0.
        XCTAssertEqual(out.array, [10, 26, 0, 0, 8, 255, 0, 0])

        var rng = SplitMix64(state: 11)
        for iteration in 0..<300 {
            let (channels, h, w) = (rng.int(1...5), rng.int(1...23), rng.int(1...23))
            let strideC = (channels + 3) / 4 * 4 + (rng.chance(0.2) ? 4 : 0)
            let image = (0..<(channels * h * w)).map { _ -> Float in
                switch rng.int(0...30) {
                case 0: return .nan
                case 1: return rng.chance(0.5) ? .infinity : -.infinity
                case 2...5: return Float(rng.int(-20...20)) / 2
                default: return Float(rng.int(-100_000...100_000)) / 10000
                }
            }
            let invScale = (0..<channels).map { _ in rng.chance(0.2) ? 1 : Float(rng.int(1...500)) / 10 }
            let zero = (0..<channels).map { _ in Int32(rng.chance(0.1) ? rng.int(-100...300) : rng.int(0...255)) }
            func run() -> [UInt8] {
                let out = Buffer<UInt8>(repeating: 0xAB, count: h * w * strideC)
                withExtendedLifetime(out) {
                    probe_quantize_chw(image, Int32(channels), Int32(h), Int32(w), invScale, zero, Int32(strideC), out.pointer)
                }
                return out.array
            }
            XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
            let reference = run()
            for version in kernels {
                XCTAssertEqual(probe_int8_use_kernel(version), 0)
                XCTAssertTrue(run() == reference,
                              "iteration \(iteration) \(String(cString: probe_int8_kernel_name(version))): \(channels)x\(h)x\(w)/\(strideC) zero \(zero)")
            }
        }
        probe_int8_use_kernel(probe_int8_best_kernel())
    }
}
