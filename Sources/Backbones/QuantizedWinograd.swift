import Foundation
import CInt8
import NN

// int8 Winograd F(2x2, 3x3) for the 3x3 stride-1 convolutions of a quantized network (ResNet's):
// 16 products per 2x2 output tile and input channel instead of 36. The transformed input is
// requantized to bytes per Winograd position with a calibrated multiplier (the Winograd domain's
// own ranges: `Int8Calibration.winograd`), the transformed weights quantized per position and
// output channel; see CInt8's probe_qwino_args.

/// A 3x3 stride-1 convolution computed by CInt8's probe_qwino: the weights' Winograd transform,
/// quantized and packed per position, and the epilogue's terms.
final class WinogradConv: @unchecked Sendable {
    let geometry: ConvGeometry
    let inputStride: Int
    /// Tiles per pass (a multiple of the VNNI kernel's 6 pixels): the 16 positions' int32 sums of a
    /// pass (64 x tiles x output channels bytes) stay within 256 KB, in L2 until the output
    /// transform reads them; a layer whose transformed weights are larger than that (16 x 256 x 256
    /// bytes and up) takes 126 tiles a pass instead, since each pass reads all its weights (ResNet's
    /// 7x7 and 14x14 layers, whose group of images runs together: one or two passes per group).
    let blockTiles: Int
    private let mult: UnsafeMutablePointer<Int16>
    private let gemm: UnsafeMutablePointer<probe_qconv_args>
    private var owned: [UnsafeMutableRawPointer] = []
    private let input, output, residual: QuantizedNetwork.Quantization?
    /// The call's arguments without its buffers and size (filled per call).
    var arguments = probe_qwino_args()

    /// Whether a convolution can run as Winograd F(2x2, 3x3) on an input quantized as `input`.
    static func eligible(_ g: ConvGeometry, input: QuantizedNetwork.Quantization) -> Bool {
        g.kernelH == 3 && g.kernelW == 3 && g.stride == 1 && g.padding == 1 && g.groups == 1 && input.zero.allSatisfy { $0 == 0 }
    }

    init(_ c: FoldedConv, input: QuantizedNetwork.Quantization, inputStride: Int, output: QuantizedNetwork.Quantization?,
         residual: QuantizedNetwork.Quantization?, multipliers: [Int32]) {
        let g = c.geometry
        geometry = g
        self.inputStride = inputStride
        self.input = input
        self.output = output
        self.residual = residual
        let oc = g.outChannels, cin = g.inChannels
        blockTiles = 16 * cin * oc <= 256 << 10 ? max(6, min(60, 4096 / max(1, oc) / 6 * 6)) : 126
        // U = G g G^T of each (output, input) channel pair, the input channel's scale folded in:
        // u[(p * oc + o) * cin + ch]
        var u = [Float](repeating: 0, count: 16 * oc * cin)
        // w = g (9), t = G g (4 x 3), then each row of t times G^T, with G's rows (1, 0, 0),
        // (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1)
        let w = UnsafeMutablePointer<Double>.allocate(capacity: 21), t = w + 9
        defer { w.deallocate() }
        for o in 0..<oc {
            for ch in 0..<cin {
                let base = (o * cin + ch) * 9, s = Double(input.scale[ch])
                for k in 0..<9 { w[k] = Double(c.weight[base + k]) * s }
                for k in 0..<3 {
                    t[k] = w[k]
                    t[3 + k] = (w[k] + w[3 + k] + w[6 + k]) * 0.5
                    t[6 + k] = (w[k] - w[3 + k] + w[6 + k]) * 0.5
                    t[9 + k] = w[6 + k]
                }
                for i in 0..<4 {
                    let (a, b, d) = (t[3 * i], t[3 * i + 1], t[3 * i + 2])
                    let row = i * 4 * oc * cin + o * cin + ch, step = oc * cin
                    u[row] = Float(a)
                    u[row + step] = Float((a + b + d) * 0.5)
                    u[row + 2 * step] = Float((a - b + d) * 0.5)
                    u[row + 3 * step] = Float(d)
                }
            }
        }
        mult = .allocate(capacity: 16)
        gemm = .allocate(capacity: 16)
        var bias = Array(UnsafeBufferPointer(start: c.bias, count: oc))
        for p in 0..<16 {
            mult[p] = Int16(multipliers[p])
            let (values, scales) = u.withUnsafeBufferPointer {
                QuantizedConv.quantize($0.baseAddress! + p * oc * cin, channels: oc, count: cin, pairsOf: cin)
            }
            let packedCount = probe_qconv_packed_size(Int32(oc), 1, Int32(inputStride))
            let packed = UnsafeMutablePointer<Int8>.allocate(capacity: packedCount)
            probe_qconv_pack(values, Int32(oc), 1, Int32(cin), Int32(inputStride), packed)
            let offset = Int32(probe_wino_offset(Int32(p)))
            let accOffset = UnsafeMutablePointer<Int32>.allocate(capacity: oc)
            let scale = UnsafeMutablePointer<Float>.allocate(capacity: oc)
            let m = Float(multipliers[p]) / 32768
            for o in 0..<oc {
                var sum: Int32 = 0
                for ch in 0..<cin { sum += Int32(values[o * cin + ch]) }
                accOffset[o] = -offset * sum
                scale[o] = scales[o] / m
            }
            owned += [UnsafeMutableRawPointer(packed), UnsafeMutableRawPointer(accOffset), UnsafeMutableRawPointer(scale)]
            if p == 5 {
                // bias correction (as QuantizedConv's): only position 5 has a mean, 4 x the input
                // channel's mean in its quantized units, and it reaches each output pixel once
                for o in 0..<oc {
                    var e: Double = 0
                    for ch in 0..<cin {
                        let i = o * cin + ch
                        e += Double(Float(values[i]) * scales[o] - u[p * oc * cin + i]) * 4 * Double(input.mean[ch] / input.scale[ch])
                    }
                    bias[o] -= Float(e)
                }
            }
            var a = probe_qconv_args()
            a.out_channels = Int32(oc)
            a.taps = 1
            a.cin_stride = Int32(inputStride)
            a.weights = UnsafePointer(packed)
            a.acc_offset = UnsafePointer(accOffset)
            a.scale = UnsafePointer(scale)
            a.pairs_bounded = probe_qconv_pairs_bounded(packed, Int32(oc), 1, Int32(inputStride))
            (gemm + p).initialize(to: a)
        }
        let biasPointer = UnsafeMutablePointer<Float>.allocate(capacity: oc)
        biasPointer.initialize(from: bias, count: oc)
        owned.append(UnsafeMutableRawPointer(biasPointer))
        arguments.in_stride = Int32(inputStride)
        arguments.block_tiles = Int32(blockTiles)
        arguments.mult = UnsafePointer(mult)
        arguments.gemm = UnsafePointer(gemm)
        arguments.epilogue.out_channels = Int32(oc)
        arguments.epilogue.bias = UnsafePointer(biasPointer)
        arguments.epilogue.activation = QuantizedConv.code(c.activation)
        if let residual {
            arguments.epilogue.res_scale = UnsafePointer(residual.scalePointer)
            arguments.epilogue.res_zero = UnsafePointer(residual.zeroPointer)
        }
        if let output {
            arguments.epilogue.out_inv_scale = UnsafePointer(output.inverseScale)
            arguments.epilogue.out_zero = UnsafePointer(output.zeroPointer)
        }
    }

    deinit {
        mult.deallocate()
        gemm.deallocate()
        for p in owned { p.deallocate() }
    }

    /// Scratch bytes of one worker.
    var scratchBytes: Int { probe_qwino_scratch_bytes(Int32(blockTiles), Int32(inputStride), Int32(geometry.outChannels)) }

    /// Tiles of an output of `height` x `width`.
    static func tiles(height: Int, width: Int) -> Int { ((height + 1) / 2) * ((width + 1) / 2) }

    /// The multiplier (1...32767) of a Winograd position whose transformed values have histogram `h`
    /// (bin i: value i - PROBE_WINO_VMAX) and byte offset `offset`: the one minimizing the squared
    /// error of the requantized values (rounding and clipping, exactly as probe_wino_quantize
    /// computes them), among 32767 x 2^(-k/32), k = 0...96 (down to 1/8: no clipping at all).
    static func multiplier(histogram h: UnsafeBufferPointer<Int64>, offset: Int32) -> Int32 {
        let vmax = Int(PROBE_WINO_VMAX)
        let used = h.indices.filter { h[$0] > 0 }
        var best = (error: Double.infinity, m: Int32(32767))
        for k in 0...96 {
            let m = Int32((32767 * pow(2, -Double(k) / 32)).rounded())
            var error = 0.0
            for i in used {
                let v = Int32(i - vmax)
                let r = Int32(probe_wino_quantize(v, m, offset)) - offset
                let d = Double(v) - Double(r) * 32768 / Double(m)
                error += Double(h[i]) * d * d
            }
            if error < best.error { best = (error, m) }
        }
        return best.m
    }
}

extension QuantizedNetwork {
    /// The Winograd multipliers of each tensor written by a convolution that can run as Winograd
    /// (16 per such tensor, [] for the others), from the transformed inputs of this network (its
    /// direct convolutions) on `count` images; nil when no convolution can.
    func winogradMultipliers(images: UnsafePointer<Float>, count: Int, height: Int, width: Int) -> [[Int32]]? {
        var eligible: [Int: (x: Int, y: Int)] = [:]  // op index -> its input and output tensors
        for (i, op) in ops.enumerated() {
            guard case .conv(let c, let x, let y, _) = op, WinogradConv.eligible(c.geometry, input: quantization[x]) else { continue }
            eligible[i] = (x, y)
        }
        guard !eligible.isEmpty else { return nil }
        let bins = 2 * Int(PROBE_WINO_VMAX) + 1
        var hist = [Int: [Int64]]()
        for i in eligible.keys { hist[i] = [Int64](repeating: 0, count: 16 * bins) }
        let ws = makeWorkspace(height, width, driver.options)
        var out = [Float](repeating: 0, count: Self.group * featureDimension)
        for first in stride(from: 0, to: count, by: Self.group) {
            out.withUnsafeMutableBufferPointer { f in
                forward(ws: ws, workers: driver.options.workers, input: images + first * 3 * height * width,
                        count: min(Self.group, count - first), features: f.baseAddress!) { i, _, input, h, w in
                    guard let e = eligible[i] else { return }
                    hist[i]!.withUnsafeMutableBufferPointer {
                        probe_qwino_histogram(input, Int32(h), Int32(w), Int32(self.tensorChannels[e.x]), Int32(self.pixelStride[e.x]),
                                              $0.baseAddress!)
                    }
                }
            }
        }
        var result = [[Int32]](repeating: [], count: tensorChannels.count)
        for (i, (_, y)) in eligible {
            result[y] = (0..<16).map { p in
                hist[i]!.withUnsafeBufferPointer {
                    WinogradConv.multiplier(histogram: UnsafeBufferPointer(rebasing: $0[p * bins ..< (p + 1) * bins]),
                                            offset: Int32(probe_wino_offset(Int32(p))))
                }
            }
        }
        return result
    }
}
