import XCTest
import CInt8

// int8 Winograd F(2x2, 3x3) (probe_qwino): exactly a 3x3 convolution where nothing is rounded
// (small inputs, weights whose transform is an integer), and the same bytes on every kernel
// version, worker split and pass size on random operands.

/// One probe_qwino call's operands: 16 positions' int8 weights u[p][o][c] (unpacked), their
/// multipliers, per-position GEMM scales, and the epilogue.
private struct Wino {
    var height, width, cin, oc: Int
    var u: [[Int8]]                 // [p][o * cin + c]
    var mult: [Int16]
    var scales: [[Float]]           // [p][o]
    var bias: [Float]
    var activation: Int32
    var residual: [UInt8]?          // pixels x oc (stride oc), zero point 3, scale 0.25
    var f32Output: Bool
    var input: [UInt8]              // images x (height * width + 1) x cinStride, each image's last pixel zeros
    var images = 1
    var cinStride: Int { (cin + 3) / 4 * 4 }
    var imagePixels: Int { height * width + 1 }
    var tiles: Int { images * ((height + 1) / 2) * ((width + 1) / 2) }

    /// probe_qwino over `ranges` of tiles, `blockTiles` per pass; the output's bytes.
    func run(_ ranges: [(Int, Int)], blockTiles: Int) -> [UInt8] {
        let pixels = images * imagePixels, cs = cinStride
        let out = Buffer<UInt8>(repeating: 0xAB, count: pixels * oc * (f32Output ? 4 : 1))
        var keep: [AnyObject] = []
        var gemm: [probe_qconv_args] = []
        for p in 0..<16 {
            let packed = pack(u[p], oc: oc, taps: 1, cin: cin, cinStride: cs)
            let offset = probe_wino_offset(Int32(p))
            let acc = Buffer((0..<oc).map { o in -offset * (0..<cin).reduce(Int32(0)) { $0 + Int32(u[p][o * cin + $1]) } })
            let scale = Buffer(scales[p])
            keep += [packed, acc, scale]
            var g = probe_qconv_args()
            g.out_channels = Int32(oc); g.taps = 1; g.cin_stride = Int32(cs)
            g.weights = UnsafePointer(packed.pointer); g.acc_offset = UnsafePointer(acc.pointer)
            g.scale = UnsafePointer(scale.pointer)
            g.pairs_bounded = probe_qconv_pairs_bounded(packed.pointer, Int32(oc), 1, Int32(cs))
            gemm.append(g)
        }
        let gemmBuffer = Buffer(gemm), multBuffer = Buffer(mult), biasBuffer = Buffer(bias)
        let inputBuffer = Buffer(input), res = residual.map { Buffer($0) }
        let resZero = Buffer([Int32](repeating: 3, count: oc)), resScale = Buffer([Float](repeating: 0.25, count: oc))
        let inv = Buffer((0..<oc).map { Float(1) / Float(0.5 + Double($0 % 5) * 0.3) }), outZero = Buffer((0..<oc).map { Int32($0 % 7) })
        var a = probe_qwino_args()
        a.height = Int32(height); a.width = Int32(width); a.in_stride = Int32(cs); a.block_tiles = Int32(blockTiles)
        a.image_pixels = Int32(imagePixels)
        a.mult = UnsafePointer(multBuffer.pointer); a.gemm = UnsafePointer(gemmBuffer.pointer)
        a.epilogue.out_channels = Int32(oc); a.epilogue.bias = UnsafePointer(biasBuffer.pointer); a.epilogue.activation = activation
        if let res {
            a.epilogue.residual = UnsafePointer(res.pointer); a.epilogue.res_stride = Int32(oc)
            a.epilogue.res_zero = UnsafePointer(resZero.pointer); a.epilogue.res_scale = UnsafePointer(resScale.pointer)
        }
        a.epilogue.out_stride = Int32(oc)
        a.epilogue.out_inv_scale = UnsafePointer(inv.pointer); a.epilogue.out_zero = UnsafePointer(outZero.pointer)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: probe_qwino_scratch_bytes(Int32(blockTiles), Int32(cs), Int32(oc)), alignment: 64)
        defer { scratch.deallocate() }
        out.pointer.withMemoryRebound(to: Float.self, capacity: f32Output ? pixels * oc : 0) { f32 in
            if f32Output { a.epilogue.out_f32 = f32 } else { a.epilogue.out_u8 = out.pointer }
            withExtendedLifetime((keep, gemmBuffer, multBuffer, biasBuffer, inputBuffer, res, resZero, resScale, inv, outZero)) {
                for (t0, t1) in ranges { probe_qwino(&a, inputBuffer.pointer, Int32(t0), Int32(t1), scratch) }
            }
        }
        return out.array
    }
}

final class WinogradKernelTests: XCTestCase {
    override func tearDown() {
        probe_int8_use_kernel(probe_int8_best_kernel())
        super.tearDown()
    }

    /// G g G^T of a 3x3 g (row-major), as doubles.
    private func transform(_ g: [Double]) -> [Double] {
        let G: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        var u = [Double](repeating: 0, count: 16)
        for i in 0..<4 { for l in 0..<4 { for j in 0..<3 { for k in 0..<3 { u[i * 4 + l] += G[i][j] * g[j * 3 + k] * G[l][k] } } } }
        return u
    }

    func testQuantizeHandComputed() {
        // round(v * mult / 2^15) half up, + offset, clamped to 0...255
        XCTAssertEqual(probe_wino_quantize(100, 32767, 128), 228)        // 99.997 -> 100
        XCTAssertEqual(probe_wino_quantize(-100, 16384, 128), 78)        // -50
        XCTAssertEqual(probe_wino_quantize(-3, 16384, 128), 127)         // -1.5 -> -1 (half up)
        XCTAssertEqual(probe_wino_quantize(3, 16384, 128), 130)          // 1.5 -> 2
        XCTAssertEqual(probe_wino_quantize(1020, 32767, 128), 255)       // clipped
        XCTAssertEqual(probe_wino_quantize(-1020, 32767, 128), 0)        // clipped
        XCTAssertEqual(probe_wino_quantize(1020, 8192, 0), 255)          // position 5: 255
        XCTAssertEqual(probe_wino_offset(5), 0)
        XCTAssertEqual(probe_wino_offset(0), 128)
        XCTAssertEqual(probe_wino_offset(15), 128)
    }

    /// Small inputs (|V| < 2^14: multiplier 32767 keeps V exactly) and weights in {-4, 0, 4} (their
    /// transform is an integer within int8), scale 1: the output is the convolution itself, exactly.
    func testExactlyTheConvolutionWhereNothingRounds() {
        var rng = SplitMix64(state: 31)
        for trial in 0..<40 {
            let h = rng.int(1...9), w = rng.int(1...9), cin = rng.int(1...37), oc = rng.int(1...35)
            let cs = (cin + 3) / 4 * 4
            var input = [UInt8](repeating: 0, count: (h * w + 1) * cs)
            for p in 0..<(h * w) { for c in 0..<cin { input[p * cs + c] = UInt8(rng.int(0...15)) } }
            let pixels = h * w + 1  // the output's last pixel (the padding pixel's place) is not written
            let g = (0..<(oc * cin * 9)).map { _ in Double(4 * rng.int(-1...1)) }
            var u = [[Int8]](repeating: [Int8](repeating: 0, count: oc * cin), count: 16)
            for o in 0..<oc {
                for c in 0..<cin {
                    let t = transform(Array(g[((o * cin + c) * 9)..<((o * cin + c) * 9 + 9)]))
                    for p in 0..<16 {
                        XCTAssertEqual(t[p], t[p].rounded())
                        u[p][o * cin + c] = Int8(t[p])
                    }
                }
            }
            let wino = Wino(height: h, width: w, cin: cin, oc: oc, u: u, mult: [Int16](repeating: 32767, count: 16),
                            scales: [[Float]](repeating: [Float](repeating: 1, count: oc), count: 16),
                            bias: [Float](repeating: 0, count: oc), activation: Int32(PROBE_ACT_NONE), residual: nil,
                            f32Output: true, input: input)
            var expected = [Float](repeating: 0, count: pixels * oc)
            withUnsafeBytes(of: UInt32(0xABAB_ABAB)) { b in
                let untouched = b.load(as: Float.self)
                for o in 0..<oc { expected[h * w * oc + o] = untouched }
            }
            for y in 0..<h {
                for x in 0..<w {
                    for o in 0..<oc {
                        var s = 0.0
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let iy = y + ky - 1, ix = x + kx - 1
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                for c in 0..<cin { s += g[(o * cin + c) * 9 + ky * 3 + kx] * Double(input[(iy * w + ix) * cs + c]) }
                            }
                        }
                        expected[(y * w + x) * oc + o] = Float(s)
                    }
                }
            }
            for k in kernels {
                XCTAssertEqual(probe_int8_use_kernel(k), 0)
                let got = floats(wino.run([(0, wino.tiles)], blockTiles: rng.int(1...7)))
                XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "trial \(trial) kernel \(k): \(h)x\(w), \(cin) -> \(oc)")
            }
        }
    }

    /// Random operands (inputs 0...255, any multipliers and int8 weights, clipping, residuals,
    /// activations, u8 or float outputs): every version, split and pass size gives the scalar's bytes.
    func testVersionsAgree() {
        var rng = SplitMix64(state: 77)
        for trial in 0..<60 {
            let h = rng.int(1...12), w = rng.int(1...12), cin = rng.int(1...70), oc = rng.int(1...70)
            let cs = (cin + 3) / 4 * 4
            var input = [UInt8](repeating: 0, count: (h * w + 1) * cs)
            for p in 0..<(h * w) { for c in 0..<cin { input[p * cs + c] = UInt8(rng.int(0...255)) } }
            let bounded = rng.chance(0.5)
            let u = (0..<16).map { _ in (0..<(oc * cin)).map { _ in Int8(bounded ? rng.int(-64...64) : rng.int(-127...127)) } }
            let wino = Wino(height: h, width: w, cin: cin, oc: oc, u: u, mult: (0..<16).map { _ in Int16(rng.int(1...32767)) },
                            scales: (0..<16).map { _ in (0..<oc).map { _ in Float(rng.int(1...1000)) * 1e-5 } },
                            bias: (0..<oc).map { _ in Float(rng.int(-500...500)) * 0.01 },
                            activation: Int32(rng.int(0...2)), residual: rng.chance(0.5) ? (0..<((h * w + 1) * oc)).map { _ in UInt8(rng.int(0...255)) } : nil,
                            f32Output: rng.chance(0.3), input: input)
            XCTAssertEqual(probe_int8_use_kernel(Int32(PROBE_INT8_SCALAR)), 0)
            let reference = wino.run([(0, wino.tiles)], blockTiles: 64)
            if !wino.f32Output {
                XCTAssertTrue(reference.contains { $0 != 0 } && reference.contains { $0 != 255 }, "trial \(trial): a degenerate case")
            }
            let cut = rng.int(0...wino.tiles)
            for k in kernels {
                XCTAssertEqual(probe_int8_use_kernel(k), 0)
                XCTAssertEqual(wino.run([(0, wino.tiles)], blockTiles: rng.int(1...13)), reference, "trial \(trial) kernel \(k)")
                XCTAssertEqual(wino.run([(cut, wino.tiles), (0, cut)], blockTiles: 6), reference, "trial \(trial) kernel \(k), split")
            }
        }
    }

    /// Several images in one call (tile t of image t / T, each image's pixels from i x image_pixels):
    /// each image's bytes those of its own call, on every version.
    func testImagesOfAGroup() {
        var rng = SplitMix64(state: 5)
        for trial in 0..<20 {
            let h = rng.int(1...9), w = rng.int(1...9), cin = rng.int(1...40), oc = rng.int(1...40), n = rng.int(2...4)
            let cs = (cin + 3) / 4 * 4, ip = h * w + 1
            var input = [UInt8](repeating: 0, count: n * ip * cs)
            for i in 0..<n { for p in 0..<(h * w) { for c in 0..<cin { input[(i * ip + p) * cs + c] = UInt8(rng.int(0...255)) } } }
            let residual = (0..<(n * ip * oc)).map { _ in UInt8(rng.int(0...255)) }
            var group = Wino(height: h, width: w, cin: cin, oc: oc,
                             u: (0..<16).map { _ in (0..<(oc * cin)).map { _ in Int8(rng.int(-64...64)) } },
                             mult: (0..<16).map { _ in Int16(rng.int(2000...32767)) },
                             scales: (0..<16).map { _ in (0..<oc).map { _ in Float(rng.int(1...1000)) * 1e-5 } },
                             bias: (0..<oc).map { _ in Float(rng.int(-500...500)) * 0.01 }, activation: Int32(PROBE_ACT_RELU),
                             residual: residual, f32Output: false, input: input)
            group.images = n
            for k in kernels {
                XCTAssertEqual(probe_int8_use_kernel(k), 0)
                let all = group.run([(0, group.tiles)], blockTiles: rng.int(1...20))
                for i in 0..<n {
                    var one = group
                    one.images = 1
                    one.input = Array(input[(i * ip * cs)..<((i + 1) * ip * cs)])
                    one.residual = Array(residual[(i * ip * oc)..<((i + 1) * ip * oc)])
                    XCTAssertEqual(Array(all[(i * ip * oc)..<((i + 1) * ip * oc)]), one.run([(0, one.tiles)], blockTiles: 6),
                                   "trial \(trial) kernel \(k) image \(i)")
                }
            }
        }
    }

    func testHistogram() {
        // a 3x3 image of one channel: 4 tiles; tile 0's patch has the image's top-left 3x3 at rows
        // and columns 1...3 (row and column 0 are padding)
        let v: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        var hist = [Int64](repeating: 0, count: 16 * (2 * Int(PROBE_WINO_VMAX) + 1))
        probe_qwino_histogram(v, 3, 3, 1, 1, &hist)
        let bins = 2 * Int(PROBE_WINO_VMAX) + 1
        for p in 0..<16 { XCTAssertEqual(hist[(p * bins)..<((p + 1) * bins)].reduce(0, +), 4) }
        // position 5 of tile 0: d11 + d12 + d21 + d22 = 1 + 2 + 4 + 5
        XCTAssertEqual(hist[5 * bins + Int(PROBE_WINO_VMAX) + 12], 1)
        // position 0 of tile 0: d00 - d02 - d20 + d22 = 0 - 0 - 0 + 5
        XCTAssertGreaterThanOrEqual(hist[0 * bins + Int(PROBE_WINO_VMAX) + 5], 1)
    }
}
