import Foundation
import CInt8
import NN
import Parallelism

/// The int8 version of a folded network (post-training static quantization): weights int8,
/// symmetric per output channel (-127...127); activations 8-bit (0...255) per channel with the
/// scales and zero points of an `Int8Calibration` (an input channel's scale folded into the
/// weights that read it, its zero point into the accumulator's offset); BatchNorm folded, ReLU/ReLU6 and residual
/// additions fused into each convolution's epilogue (float32), max pooling on the quantized
/// values (max commutes with quantization: its output keeps its input's scale), the last layer's
/// output and the global average pool in float32. Activations are HWC bytes; the kernels are
/// CInt8's (AVX2, AVX-512 VNNI or scalar, chosen at run time, the same bytes on each).
///
/// Every sum of products is exact in int32 and the epilogue is one fixed sequence of float
/// operations, so an image's features are the same bits for any batch size, worker count or CPU.
public final class QuantizedNetwork: Backbone, @unchecked Sendable {
    public let architecture: Architecture
    public var name: String { architecture.name }
    public var featureDimension: Int { architecture.featureDimension }
    public let calibration: Int8Calibration

    enum Op {
        case conv(QuantizedConv, x: Int, y: Int, residual: Int?)
        case depthwise(QuantizedConv, x: Int, y: Int)
        case winograd(WinogradConv, x: Int, y: Int, residual: Int?)
        case maxPool(x: Int, y: Int)
    }

    /// Scales and zero points of a quantized tensor's channels (kept alive for the kernels).
    final class Quantization: @unchecked Sendable {
        let scale: [Float]
        let zero: [Int32]
        let inverseScale: UnsafeMutablePointer<Float>
        let zeroPointer: UnsafeMutablePointer<Int32>
        let scalePointer: UnsafeMutablePointer<Float>

        /// Mean of each channel on the calibration images.
        let mean: [Float]

        /// From per-channel ranges [low0, high0, low1, high1, ...] and means.
        init(ranges r: [Float], means: [Float]) {
            mean = means
            let c = r.count / 2
            var scale = [Float](repeating: 1, count: c), zero = [Int32](repeating: 0, count: c)
            for ch in 0..<c {
                let s = (r[2 * ch + 1] - r[2 * ch]) / Float(Int8Calibration.levels)
                scale[ch] = s
                zero[ch] = Int32(min(Float(Int8Calibration.levels), max(0, (-r[2 * ch] / s).rounded())))
            }
            self.scale = scale
            self.zero = zero
            inverseScale = .allocate(capacity: c)
            inverseScale.initialize(from: scale.map { 1 / $0 }, count: c)
            zeroPointer = .allocate(capacity: c)
            zeroPointer.initialize(from: zero, count: c)
            scalePointer = .allocate(capacity: c)
            scalePointer.initialize(from: scale, count: c)
        }

        deinit {
            inverseScale.deallocate()
            zeroPointer.deallocate()
            scalePointer.deallocate()
        }
    }

    let ops: [Op]
    let tensorChannels: [Int]
    /// Bytes per pixel of each tensor (channels rounded up to a multiple of 4).
    let pixelStride: [Int]
    let quantization: [Quantization]
    let slots: [Int]
    let slotCount: Int
    let featureTensor: Int
    let layerShapes: [LayerShape]
    let driver: Driver<QuantizedWorkspace>

    /// Quantizes `network` with the activation ranges of `calibration` (from `network.calibrateInt8`).
    public init(_ network: FoldedNetwork, calibration: Int8Calibration) throws {
        architecture = network.architecture
        self.calibration = calibration
        let channels = network.tensorChannels
        guard calibration.ranges.count == channels.count, calibration.means.map(\.count) == channels,
              zip(calibration.ranges, channels).allSatisfy({ r, c in
                  r.count == 2 * c && (0..<c).allSatisfy { r[2 * $0] <= 0 && r[2 * $0 + 1] > r[2 * $0] }
              }) else {
            throw BackboneError.unrecognized("the int8 calibration has \(calibration.ranges.count) ranges, \(network.name) has \(channels.count) tensors: it was made for another network")
        }
        if let w = calibration.winograd, w.count != channels.count || w.contains(where: { !$0.isEmpty && ($0.count != 16 || $0.contains { !(1...32767).contains($0) }) }) {
            throw BackboneError.unrecognized("the int8 calibration's Winograd multipliers do not fit \(network.name)")
        }
        tensorChannels = channels
        pixelStride = channels.map { ($0 + 3) / 4 * 4 }
        var q = zip(calibration.ranges, calibration.means).map { Quantization(ranges: $0, means: $1) }
        featureTensor = network.featureTensor
        var ops: [Op] = []
        for op in network.ops {
            switch op {
            case .maxPool(let x, let y):
                q[y] = q[x]  // max commutes with a monotone quantization
                ops.append(.maxPool(x: x, y: y))
            case .conv(let c, let x, let y, let r):
                let g = c.geometry
                let toFloat = y == network.featureTensor
                if !toFloat && g.outChannels % 4 != 0 {
                    throw BackboneError.unrecognized("\(network.name): int8 needs a multiple of 4 output channels, a layer has \(g.outChannels)")
                }
                if c.isDepthwise3x3 {
                    guard q[x].zero.allSatisfy({ $0 == 0 }), r == nil, !toFloat else {
                        throw BackboneError.unrecognized("\(network.name): an int8 depthwise convolution needs a non-negative input and a quantized output")
                    }
                    ops.append(.depthwise(QuantizedConv(depthwise: c, input: q[x], output: q[y]), x: x, y: y))
                } else if let m = calibration.winograd?[y], !m.isEmpty {
                    guard WinogradConv.eligible(g, input: q[x]) else {
                        throw BackboneError.unrecognized("\(network.name): the int8 calibration has Winograd multipliers for a convolution that cannot run as Winograd")
                    }
                    ops.append(.winograd(WinogradConv(c, input: q[x], inputStride: pixelStride[x], output: toFloat ? nil : q[y],
                                                      residual: r.map { q[$0] }, multipliers: m), x: x, y: y, residual: r))
                } else if g.groups == 1 {
                    ops.append(.conv(QuantizedConv(c, input: q[x], inputStride: pixelStride[x], output: toFloat ? nil : q[y],
                                                   residual: r.map { q[$0] }), x: x, y: y, residual: r))
                } else {
                    throw BackboneError.unrecognized("\(network.name): int8 supports plain and depthwise 3x3 convolutions, not groups of \(g.groups)")
                }
            }
        }
        self.ops = ops
        quantization = q
        (slots, slotCount) = (network.slots, network.slotCount)
        layerShapes = network.layerShapes
        driver = Driver(options: network.driver.options)  // (the float network itself is not kept)
    }

    /// Images a worker runs through the network together (a workspace holds them): the layers
    /// whose weights are large (ResNet's 14x14 and 7x7 ones) read them once for the group.
    static let group = 4

    public func features(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int) -> [Float] {
        driver.forEachGroup(batch: batch, count: count, height: height, width: width, perImageOut: featureDimension,
                            group: Self.group, makeWorkspace: makeWorkspace) { ws, o, x, n, out in
            forward(ws: ws, workers: o.workers, input: x, count: n, features: out)
        }
    }

    /// A workspace for `QuantizedNetwork.group` images of height x width. Each tensor holds the
    /// group's images one after the other, each followed by its padding pixel (filled with the
    /// tensor's zero points when a convolution reads it).
    func makeWorkspace(_ height: Int, _ width: Int, _ options: ForwardOptions) -> QuantizedWorkspace {
        let hw = tensorSizes(layerShapes, tensors: tensorChannels.count, height: height, width: width)
        let g = Self.group
        var slotBytes = [Int](repeating: 1, count: slotCount)
        for t in 1..<tensorChannels.count where slots[t] >= 0 && t != featureTensor {
            slotBytes[slots[t]] = max(slotBytes[slots[t]], g * pixelStride[t] * (hw[t].0 * hw[t].1 + 1))
        }
        var indirection: [[Int32]] = []
        var scratch = 0
        for op in ops {
            if case .winograd(let c, _, _, _) = op { scratch = max(scratch, c.scratchBytes) }
            guard case .conv(let c, let x, _, _) = op else { indirection.append([]); continue }
            indirection.append(c.indirection(height: hw[x].0, width: hw[x].1, pixelStride: pixelStride[x], images: c.batched ? g : 1))
        }
        let (fh, fw) = hw[featureTensor]
        return QuantizedWorkspace(height: height, width: width, sizes: hw, slotBytes: slotBytes,
                                  inputBytes: g * pixelStride[0] * (height * width + 1),
                                  featureFloats: g * featureDimension * (fh * fw + 1), indirection: indirection,
                                  scratchBytes: scratch, workers: max(1, options.workers))
    }

    /// `count` (<= group) images: quantize, the layers, average pool. `observe(op, image, input,
    /// height, width)` sees each convolution's input of each image before the convolution runs.
    func forward(ws: QuantizedWorkspace, workers: Int, input: UnsafePointer<Float>, count n: Int,
                 features: UnsafeMutablePointer<Float>,
                 observe: ((Int, Int, UnsafePointer<UInt8>, Int, Int) -> Void)? = nil) {
        let hw = ws.sizes
        /// Pixels of one image of tensor t, its padding pixel included.
        func imagePixels(_ t: Int) -> Int { hw[t].0 * hw[t].1 + 1 }
        func at(_ t: Int) -> UnsafeMutablePointer<UInt8> { t == 0 ? ws.input : ws.buffers[slots[t]] }
        func image(_ t: Int, _ i: Int) -> UnsafeMutablePointer<UInt8> { at(t) + i * imagePixels(t) * pixelStride[t] }
        func fillPadding(_ t: Int) {
            for i in 0..<n {
                let pad = image(t, i) + pixelStride[t] * hw[t].0 * hw[t].1
                for (ch, z) in quantization[t].zero.enumerated() { pad[ch] = UInt8(z) }
            }
        }
        let d = featureDimension
        for i in 0..<n {
            probe_quantize_chw(input + i * 3 * ws.height * ws.width, 3, Int32(ws.height), Int32(ws.width), quantization[0].inverseScale,
                               quantization[0].zeroPointer, Int32(pixelStride[0]), image(0, i))
        }
        for (k, op) in ops.enumerated() {
            switch op {
            case .conv(let c, let x, let y, let r):
                if c.geometry.padding > 0 { fillPadding(x) }
                if let observe { for i in 0..<n { observe(k, i, image(x, i), hw[x].0, hw[x].1) } }
                var a = c.arguments
                a.out_stride = Int32(y == featureTensor ? d : pixelStride[y])
                if let r { a.res_stride = Int32(pixelStride[r]) }
                // batched: one call over the group's pixels (each image's padding pixel as an output
                // pixel too, whose value is never read); else image by image
                let (images, pixels) = c.batched ? (1, n * imagePixels(y)) : (n, hw[y].0 * hw[y].1)
                for i in 0..<images {
                    if y == featureTensor {
                        a.out_f32 = ws.features + i * imagePixels(y) * d
                    } else {
                        a.out_u8 = image(y, i)
                    }
                    if let r { a.residual = UnsafePointer(image(r, i)) }
                    let input = UncheckedSendable(UnsafePointer(image(x, i)))
                    let args = UncheckedSendable(a)
                    ws.indirection[k].withUnsafeBufferPointer { ind in
                        let ind = UncheckedSendable(ind.baseAddress!)
                        split(pixels, workers: workers) { _, p0, p1 in
                            withUnsafePointer(to: args.value) { probe_qconv($0, input.value, ind.value, Int32(p0), Int32(p1)) }
                        }
                    }
                }
            case .winograd(let c, let x, let y, let r):
                fillPadding(x)  // (zeros)
                var a = c.arguments
                (a.height, a.width) = (Int32(hw[x].0), Int32(hw[x].1))
                a.image_pixels = Int32(imagePixels(x))
                if y == featureTensor {
                    a.epilogue.out_f32 = ws.features
                    a.epilogue.out_stride = Int32(d)
                } else {
                    a.epilogue.out_u8 = at(y)
                    a.epilogue.out_stride = Int32(pixelStride[y])
                }
                if let r {
                    a.epilogue.residual = UnsafePointer(at(r))
                    a.epilogue.res_stride = Int32(pixelStride[r])
                }
                let input = UncheckedSendable(UnsafePointer(at(x)))
                let args = UncheckedSendable(a), scratch = UncheckedSendable(ws.scratch)
                split(n * WinogradConv.tiles(height: hw[x].0, width: hw[x].1), workers: min(workers, ws.scratch.count)) { w, t0, t1 in
                    withUnsafePointer(to: args.value) { probe_qwino($0, input.value, Int32(t0), Int32(t1), scratch.value[w]) }
                }
            case .depthwise(let c, let x, let y):
                let (h, w) = hw[x], ch = c.geometry.inChannels, stride = Int32(pixelStride[x])
                for i in 0..<n {
                    let input = UncheckedSendable(UnsafePointer(image(x, i))), output = UncheckedSendable(image(y, i))
                    split(hw[y].0, workers: workers) { _, r0, r1 in
                        probe_qdwconv3x3(input.value, Int32(h), Int32(w), Int32(ch), stride, Int32(c.geometry.stride),
                                         c.weights, c.accOffset, c.scale, c.bias, c.activationCode,
                                         c.arguments.out_inv_scale, c.arguments.out_zero, output.value, Int32(r0), Int32(r1))
                    }
                }
            case .maxPool(let x, let y):
                for i in 0..<n {
                    probe_qmaxpool3x3s2(image(x, i), Int32(hw[x].0), Int32(hw[x].1), Int32(pixelStride[x]), image(y, i))
                }
            }
        }
        // global average pool of each image's float output, pixel by pixel in order
        let (fh, fw) = hw[featureTensor]
        let pixels = fh * fw
        let inv = 1 / Float(pixels)
        for i in 0..<n {
            let f = features + i * d, rows = ws.features + i * (pixels + 1) * d
            for ch in 0..<d { f[ch] = 0 }
            for p in 0..<pixels {
                let row = rows + p * d
                for ch in 0..<d { f[ch] += row[ch] }
            }
            for ch in 0..<d { f[ch] *= inv }
        }
    }

    /// Runs `body(worker, begin, end)` on pieces of 0..<count, on up to `workers` threads (the
    /// kernels' sums are exact, so the pieces do not change any result).
    private func split(_ count: Int, workers: Int, _ body: @escaping @Sendable (Int, Int, Int) -> Void) {
        if workers <= 1 || count < 2 * workers {
            body(0, 0, count)
            return
        }
        parallelSlices(count, workers: workers) { w, r in body(w, r.lowerBound, r.upperBound) }
    }
}

/// A convolution quantized for CInt8: packed int8 weights and the epilogue's per-channel terms.
final class QuantizedConv: @unchecked Sendable {
    let geometry: ConvGeometry
    let weights: UnsafeMutablePointer<Int8>
    let accOffset: UnsafeMutablePointer<Int32>
    let scale: UnsafeMutablePointer<Float>
    let bias: UnsafeMutablePointer<Float>
    let activationCode: Int32
    /// The call's arguments without its buffers (filled per call).
    var arguments = probe_qconv_args()
    /// The quantizations the arguments point into (kept alive with the layer).
    private var input, output, residual: QuantizedNetwork.Quantization?

    static func code(_ a: Activation) -> Int32 {
        switch a {
        case .none: return Int32(PROBE_ACT_NONE)
        case .relu: return Int32(PROBE_ACT_RELU)
        case .relu6: return Int32(PROBE_ACT_RELU6)
        }
    }

    /// Symmetric per-channel quantization of `count` weights of each of `channels` channels
    /// (channel-major): the int8 values and each channel's scale, max |w| / 127.
    ///
    /// `pairsOf: cin` (a channel's weights are [tap][cin]): the scale is also at least P / 128, P
    /// the largest |w[t][2m]| + |w[t][2m + 1]| of two weights of the same sign (input channels 2m and
    /// 2m + 1 of a tap: a pair of the packed layout), and a pair that rounding took to 129 loses 1 on the
    /// weight rounded up more. Then the pairs are within PROBE_PAIR_MAX and AVX2's vpmaddubsw is exact
    /// (probe_qconv_pairs_bounded), on every CPU's weights alike. The cost, measured on MobileNetV2's
    /// ImageNet weights: in most layers most channels' scales grow, by 1.05-1.36x on average per layer
    /// (the 3-channel stem's by 1.56x); int8 against float32 features,
    /// all 397 ants and bees, cosine mean 0.9918 and minimum 0.9740 (0.9923 and 0.9715 without).
    static func quantize(_ w: UnsafePointer<Float>, channels: Int, count: Int, pairsOf cin: Int? = nil)
        -> (values: [Int8], scales: [Float]) {
        var values = [Int8](repeating: 0, count: channels * count)
        var scales = [Float](repeating: 1, count: channels)
        let pairMax = Float(PROBE_PAIR_MAX)
        for o in 0..<channels {
            let wo = w + o * count
            var m: Float = 0, pair: Float = 0
            for i in 0..<count { m = max(m, abs(wo[i])) }
            if let cin {
                forEachPair(count: count, cin: cin) { i in
                    if (wo[i] > 0 && wo[i + 1] > 0) || (wo[i] < 0 && wo[i + 1] < 0) { pair = max(pair, abs(wo[i]) + abs(wo[i + 1])) }
                }
            }
            let s = m > 0 ? max(m / 127, pair / pairMax) : 1
            scales[o] = s
            for i in 0..<count { values[o * count + i] = Int8(max(-127, min(127, (wo[i] / s).rounded()))) }
            guard let cin else { continue }
            forEachPair(count: count, cin: cin) { i in
                let k = o * count + i
                let a = Int(values[k]), b = Int(values[k + 1])
                guard a * b > 0 && abs(a + b) > PROBE_PAIR_MAX else { return }
                // the real sum is within 128 (up to float rounding), each rounding adds < 1/2
                if abs(Float(a)) - abs(wo[i] / s) >= abs(Float(b)) - abs(wo[i + 1] / s) {
                    values[k] = Int8(a - a.signum())
                } else {
                    values[k + 1] = Int8(b - b.signum())
                }
            }
        }
        return (values, scales)
    }

    /// `body(i)` for the first index of each pair (2m, 2m + 1) of input channels within a tap
    /// (weights [tap][cin]; an odd cin's last channel pairs with padding, which is 0).
    private static func forEachPair(count: Int, cin: Int, _ body: (Int) -> Void) {
        for t in stride(from: 0, to: count, by: cin) {
            for c in stride(from: 0, to: cin - 1, by: 2) { body(t + c) }
        }
    }

    private init(geometry: ConvGeometry, packed: [Int8], accOffset: [Int32], scale: [Float], bias: [Float],
                 activation: Activation) {
        self.geometry = geometry
        func copy<T>(_ a: [T]) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: max(1, a.count))
            p.initialize(from: a, count: a.count)
            return p
        }
        weights = copy(packed)
        self.accOffset = copy(accOffset)
        self.scale = copy(scale)
        self.bias = copy(bias)
        activationCode = Self.code(activation)
    }

    /// A plain convolution (groups 1) reading a tensor quantized as `input` with `inputStride`
    /// bytes per pixel, writing one quantized as `output` (nil: float32), adding a residual
    /// quantized as `residual`.
    convenience init(_ c: FoldedConv, input: QuantizedNetwork.Quantization, inputStride: Int,
                     output: QuantizedNetwork.Quantization?, residual: QuantizedNetwork.Quantization?) {
        let g = c.geometry
        let taps = g.kernelH * g.kernelW, cin = g.inChannels
        // float weights [oc][c][tap] -> [oc][tap][c] (the HWC activations' order), each input
        // channel's scale folded in
        var reordered = [Float](repeating: 0, count: g.outChannels * taps * cin)
        for o in 0..<g.outChannels {
            for ch in 0..<cin {
                for t in 0..<taps { reordered[(o * taps + t) * cin + ch] = c.weight[(o * cin + ch) * taps + t] * input.scale[ch] }
            }
        }
        let (values, scales) = reordered.withUnsafeBufferPointer {
            Self.quantize($0.baseAddress!, channels: g.outChannels, count: taps * cin, pairsOf: cin)
        }
        var packed = [Int8](repeating: 0, count: probe_qconv_packed_size(Int32(g.outChannels), Int32(taps), Int32(inputStride)))
        probe_qconv_pack(values, Int32(g.outChannels), Int32(taps), Int32(cin), Int32(inputStride), &packed)
        var offsets = [Int32](repeating: 0, count: g.outChannels)
        for o in 0..<g.outChannels {
            for t in 0..<taps { for ch in 0..<cin { offsets[o] -= input.zero[ch] * Int32(values[(o * taps + t) * cin + ch]) } }
        }
        // bias correction: the expected error of the quantized weights on the calibration means
        // (input channel ch's mean in its quantized units is mean / scale; its scale is in the weights)
        var bias = Array(UnsafeBufferPointer(start: c.bias, count: g.outChannels))
        for o in 0..<g.outChannels {
            var e: Double = 0
            for t in 0..<taps {
                for ch in 0..<cin {
                    let i = (o * taps + t) * cin + ch
                    e += Double(Float(values[i]) * scales[o] - reordered[i]) * Double(input.mean[ch] / input.scale[ch])
                }
            }
            bias[o] -= Float(e)
        }
        self.init(geometry: g, packed: packed, accOffset: offsets, scale: scales, bias: bias, activation: c.activation)
        self.input = input
        self.output = output
        self.residual = residual
        arguments.out_channels = Int32(g.outChannels)
        arguments.taps = Int32(taps)
        arguments.cin_stride = Int32(inputStride)
        arguments.weights = UnsafePointer(self.weights)
        arguments.acc_offset = UnsafePointer(self.accOffset)
        arguments.scale = UnsafePointer(self.scale)
        arguments.bias = UnsafePointer(self.bias)
        arguments.activation = activationCode
        arguments.pairs_bounded = probe_qconv_pairs_bounded(self.weights, Int32(g.outChannels), Int32(taps), Int32(inputStride))
        if let residual {
            arguments.res_scale = UnsafePointer(residual.scalePointer)
            arguments.res_zero = UnsafePointer(residual.zeroPointer)
        }
        if let output {
            arguments.out_inv_scale = UnsafePointer(output.inverseScale)
            arguments.out_zero = UnsafePointer(output.zeroPointer)
        }
    }

    /// A depthwise 3x3 convolution: weights [tap][channel].
    convenience init(depthwise c: FoldedConv, input: QuantizedNetwork.Quantization, output: QuantizedNetwork.Quantization) {
        let g = c.geometry
        let (values, scales) = Self.quantize(c.weight, channels: g.outChannels, count: 9)
        var byTap = [Int8](repeating: 0, count: 9 * g.outChannels)
        for ch in 0..<g.outChannels { for t in 0..<9 { byTap[t * g.outChannels + ch] = values[ch * 9 + t] } }
        let offsets = (0..<g.outChannels).map { ch in -input.zero[ch] * values[ch * 9 ..< ch * 9 + 9].reduce(Int32(0)) { $0 + Int32($1) } }
        var bias = Array(UnsafeBufferPointer(start: c.bias, count: g.outChannels))
        for ch in 0..<g.outChannels {
            var e: Double = 0
            for t in 0..<9 { e += Double(Float(values[ch * 9 + t]) * scales[ch] - c.weight[ch * 9 + t]) * Double(input.mean[ch]) }
            bias[ch] -= Float(e)
        }
        self.init(geometry: g, packed: byTap, accOffset: offsets, scale: zip(scales, input.scale).map { $0 * $1 }, bias: bias,
                  activation: c.activation)
        self.input = input
        self.output = output
        arguments.out_inv_scale = UnsafePointer(output.inverseScale)
        arguments.out_zero = UnsafePointer(output.zeroPointer)
    }

    deinit {
        weights.deallocate()
        accOffset.deallocate()
        scale.deallocate()
        bias.deallocate()
    }

    /// For each output pixel and tap, the byte offset of the input pixel it reads (padding: the
    /// pixel after the image's last, which holds the zero point). `images` > 1: that many images,
    /// each followed by its padding pixel, in the input and the output (whose padding pixel is an
    /// output pixel too, all of its taps on the padding: a value nothing reads).
    func indirection(height h: Int, width w: Int, pixelStride: Int, images: Int = 1) -> [Int32] {
        let g = geometry
        let (oh, ow) = g.outputSize(height: h, width: w)
        let taps = g.kernelH * g.kernelW
        let outPixels = images > 1 ? oh * ow + 1 : oh * ow
        var out: [Int32] = []
        out.reserveCapacity(images * outPixels * taps)
        for i in 0..<images {
            let base = i * (h * w + 1) * pixelStride
            var one = [Int32](repeating: Int32(base + h * w * pixelStride), count: outPixels * taps)
            for y in 0..<oh {
                for x in 0..<ow {
                    for ky in 0..<g.kernelH {
                        let iy = y * g.stride + ky - g.padding
                        guard iy >= 0 && iy < h else { continue }
                        for kx in 0..<g.kernelW {
                            let ix = x * g.stride + kx - g.padding
                            guard ix >= 0 && ix < w else { continue }
                            one[(y * ow + x) * taps + ky * g.kernelW + kx] = Int32(base + (iy * w + ix) * pixelStride)
                        }
                    }
                }
            }
            out += one
        }
        return out
    }

    /// Whether the network runs this convolution once over a group of images rather than image
    /// by image: when its weights are large (256 KB and up: ResNet's 14x14 and 7x7 layers), so
    /// that they are read once for the group.
    var batched: Bool { geometry.groups == 1 && Int(arguments.taps) * Int(arguments.cin_stride) * geometry.outChannels >= 256 << 10 }
}

/// One image's buffers of a quantized network: a byte buffer per slot, the quantized input, the
/// last layer's float output, and each convolution's indirection for this image size.
final class QuantizedWorkspace: ImageWorkspace {
    let height: Int, width: Int
    let sizes: [(Int, Int)]
    let buffers: [UnsafeMutablePointer<UInt8>]
    let input: UnsafeMutablePointer<UInt8>
    let features: UnsafeMutablePointer<Float>
    let indirection: [[Int32]]
    /// Per worker: the Winograd convolutions' scratch (none without them).
    let scratch: [UnsafeMutableRawPointer]

    init(height: Int, width: Int, sizes: [(Int, Int)], slotBytes: [Int], inputBytes: Int, featureFloats: Int, indirection: [[Int32]],
         scratchBytes: Int, workers: Int) {
        self.height = height
        self.width = width
        self.sizes = sizes
        buffers = slotBytes.map { n in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: n)
            p.initialize(repeating: 0, count: n)
            return p
        }
        input = .allocate(capacity: inputBytes)
        input.initialize(repeating: 0, count: inputBytes)
        features = .allocate(capacity: max(1, featureFloats))
        features.initialize(repeating: 0, count: max(1, featureFloats))
        self.indirection = indirection
        scratch = scratchBytes > 0 ? (0..<workers).map { _ in .allocate(byteCount: scratchBytes, alignment: 64) } : []
    }

    deinit {
        for b in buffers { b.deallocate() }
        for s in scratch { s.deallocate() }
        input.deallocate()
        features.deallocate()
    }

    func runSingleThreaded() {}
}

/// The int8 kernels in use: "avx512-vnni", "avx2" or "scalar" (the best this CPU has, unless
/// `useInt8Kernels` chose another).
public var int8KernelName: String { String(cString: probe_int8_kernel_name(probe_int8_kernel())) }

/// The int8 kernel versions this CPU can run, best last.
public var availableInt8Kernels: [String] {
    (0...probe_int8_best_kernel()).map { String(cString: probe_int8_kernel_name($0)) }
}

/// Uses the int8 kernels called `name` ("scalar", "avx2", "avx512-vnni") from now on; false when
/// this CPU cannot run them (nothing changes). Every version gives the same features.
@discardableResult
public func useInt8Kernels(_ name: String) -> Bool {
    guard let k = availableInt8Kernels.firstIndex(of: name) else { return false }
    return probe_int8_use_kernel(Int32(k)) == 0
}
