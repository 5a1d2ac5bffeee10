import Foundation
import NN
import Synchronization
import Weights
import Parallelism

// Backbones: the registry of architectures (Architecture.swift), their descriptions
// (NetworkBody.swift) and the frozen feature extractor built from them (FoldedNetwork.swift: eval
// mode, bound from a state dict by key name, BatchNorm folded into the convolutions at load time).
//
// The common protocol: `features(batch:count:)` takes `count` images in PyTorch's NCHW float32
// layout (3 x 224 x 224 each, already normalized) and returns `count * featureDimension` floats,
// row-major (count, featureDimension): the pooled features. Calls are thread-safe (serialized:
// each model owns one preallocated workspace and uses both cores itself).

/// A frozen feature extractor.
public protocol Backbone: AnyObject, Sendable {
    /// The architecture's name ("resnet18").
    var name: String { get }
    /// Length of the feature vector (512 for ResNet-18).
    var featureDimension: Int { get }
    /// Pooled features of `count` NCHW images of 3 x height x width: (count, featureDimension) row-major.
    /// `batch` must hold count * 3 * height * width floats. Empty input (count, height or width 0) gives [].
    func features(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int) -> [Float]
}

extension Backbone {
    /// Pooled features of `count` NCHW images of 3 x 224 x 224.
    public func features(batch: UnsafePointer<Float>, count: Int) -> [Float] {
        features(batch: batch, count: count, height: 224, width: 224)
    }
    /// Convenience over an array (count inferred from its size, 3 x 224 x 224 each).
    public func features(_ batch: [Float], height: Int = 224, width: Int = 224) -> [Float] {
        let per = 3 * height * width
        return batch.withUnsafeBufferPointer { features(batch: $0.baseAddress!, count: $0.count / per, height: height, width: width) }
    }
}

/// Errors building a backbone from weights.
public enum BackboneError: Error, CustomStringConvertible {
    case missingTensor(String, model: String)
    case badShape(String, expected: [Int], got: [Int])
    case unrecognized(String)
    case unknownArchitecture(String)

    public var description: String {
        switch self {
        case .missingTensor(let name, let model):
            return "the weights have no tensor '\(name)' needed by \(model); check that the file is a \(model) state_dict (probe weights inspect FILE lists its tensors)"
        case .badShape(let name, let expected, let got):
            return "tensor '\(name)' has shape \(got), expected \(expected); the file is not this architecture"
        case .unrecognized(let what):
            return what
        case .unknownArchitecture(let name):
            return "unknown backbone '\(name)' (known: \(Architecture.knownNames))"
        }
    }
}

/// Anything that hands out tensors by their state_dict name.
public protocol TensorSource {
    /// The tensor called `name`, or nil when there is none.
    func tensorIfPresent(_ name: String) throws -> Tensor?
    /// The tensor called `name` when a network asks for it with the shape it needs (nil: any
    /// shape). By default `tensorIfPresent(name)`; a source that makes tensors rather than reading
    /// them (`SeededWeights`) makes one of `shape`.
    func tensorIfPresent(_ name: String, shape: [Int]?) throws -> Tensor?
}

extension TensorSource {
    public func tensorIfPresent(_ name: String, shape: [Int]?) throws -> Tensor? { try tensorIfPresent(name) }
}

extension Dictionary: TensorSource where Key == String, Value == Tensor {
    public func tensorIfPresent(_ name: String) throws -> Tensor? { self[name] }
}

extension TensorSource {
    func require(_ name: String, _ shape: [Int]?, model: String) throws -> Tensor {
        guard let t = try tensorIfPresent(name, shape: shape) else { throw BackboneError.missingTensor(name, model: model) }
        if let shape, t.shape != shape { throw BackboneError.badShape(name, expected: shape, got: t.shape) }
        return t
    }
}

/// Tuning and threading of the forward pass.
public struct ForwardOptions: Sendable {
    /// Worker threads: they take whole images, or share one image's kernels when there are fewer
    /// images than workers (see `Driver`); the features do not depend on their number.
    public var workers: Int = defaultWorkerCount
    /// Scratch per worker, in floats (at least `Grain.chunkFloats`, which sets the column chunk of
    /// each convolution: chunks do not depend on the worker count).
    public var scratchPerWorker: Int = 1 << 20
    /// A convolution's column pieces are at least this wide (fewer than 4 pieces: the workers split
    /// fixed blocks of output channels instead). BLAS itself runs single-threaded.
    public var minColumnsPerWorker: Int = 256
    /// Output block (channels x columns, in floats) a convolution keeps cache-resident between
    /// its GEMM and its epilogue.
    public var outputChunkFloats: Int = 1 << 17
    /// Use Winograd for 3x3 / stride-1 convolutions (ResNet-18).
    public var winograd = true
    /// Build and use F(4x4, 3x3) on ResNet's layers 1-2 (read when the network is built); false:
    /// F(2x2, 3x3) everywhere.
    public var largeWinogradTiles = true
    /// Winograd chunks hold at least this many tiles (fewer than 4 chunks: the workers split fixed
    /// blocks of output channels instead).
    public var minTilesPerWorker: Int = 32

    public init(workers: Int = defaultWorkerCount) {
        self.workers = workers
    }
}

// MARK: - Layers with folded BatchNorm

/// Which Winograd algorithm a 3x3 / stride-1 convolution is prepared for.
enum WinogradVariant {
    case none
    /// F(2x2, 3x3).
    case f2
    /// F(4x4, 3x3).
    case f4
}

/// A convolution with its BatchNorm folded in, and its fused activation.
final class FoldedConv: @unchecked Sendable {
    let geometry: ConvGeometry
    let weight: UnsafeMutablePointer<Float>
    let bias: UnsafeMutablePointer<Float>
    /// Set when the builder fuses a following residual addition (see `FoldingBuilder.addResidual`).
    var activation: Activation
    /// Winograd F(2x2, 3x3) weights [16][OC][IC] of a 3x3 / stride 1 / pad 1 convolution prepared for it.
    let winograd: UnsafeMutablePointer<Float>?
    /// Winograd F(4x4, 3x3) weights [36][OC][IC] of one prepared for it.
    let winograd4: UnsafeMutablePointer<Float>?

    init(_ src: TensorSource, conv: String, bn: String, _ g: ConvGeometry, _ act: Activation, model: String,
         winograd variant: WinogradVariant = .none) throws {
        let w = try src.require(conv + ".weight", [g.outChannels, g.inChannels / g.groups, g.kernelH, g.kernelW], model: model)
        let c = [g.outChannels]
        let gamma = try src.require(bn + ".weight", c, model: model)
        let beta = try src.require(bn + ".bias", c, model: model)
        let mean = try src.require(bn + ".running_mean", c, model: model)
        let variance = try src.require(bn + ".running_var", c, model: model)
        let convBias = try src.tensorIfPresent(conv + ".bias")?.data
        let folded = foldBatchNorm(weight: w.data, bias: convBias, outChannels: g.outChannels,
                                   gamma: gamma.data, beta: beta.data, mean: mean.data, variance: variance.data)
        geometry = g
        activation = act
        weight = .allocate(capacity: folded.weight.count)
        weight.initialize(from: folded.weight, count: folded.weight.count)
        bias = .allocate(capacity: folded.bias.count)
        bias.initialize(from: folded.bias, count: folded.bias.count)
        func copy(_ u: [Float]) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: u.count)
            p.initialize(from: u, count: u.count)
            return p
        }
        let eligible = g.kernelH == 3 && g.kernelW == 3 && g.stride == 1 && g.padding == 1 && g.groups == 1
        winograd = eligible && variant == .f2 ? copy(winogradTransformWeights(weight, outChannels: g.outChannels, inChannels: g.inChannels)) : nil
        winograd4 = eligible && variant == .f4 ? copy(winograd4TransformWeights(weight, outChannels: g.outChannels, inChannels: g.inChannels)) : nil
    }

    deinit {
        weight.deallocate()
        bias.deallocate()
        winograd?.deallocate()
        winograd4?.deallocate()
    }

    var isDepthwise3x3: Bool {
        geometry.groups == geometry.inChannels && geometry.groups == geometry.outChannels
            && geometry.kernelH == 3 && geometry.kernelW == 3 && geometry.padding == 1
    }
}

/// What `Driver` needs of a network's per-image buffers.
protocol ImageWorkspace: AnyObject {
    var height: Int { get }
    var width: Int { get }
    /// Called before the driver runs images on it with one worker per image.
    func runSingleThreaded()
}

/// A set of activation buffers and scratch sized for one image of (height, width).
final class Workspace: ImageWorkspace {
    let height: Int, width: Int
    let buffers: [UnsafeMutablePointer<Float>]
    let scratch: UnsafeMutablePointer<Float>
    let scratchCount: Int
    var blasThreads = -1

    /// The spatial size of each of the network's tensors for this input size.
    let sizes: [(height: Int, width: Int)]

    /// One buffer of each size in `bufferFloats`.
    init(height: Int, width: Int, sizes: [(height: Int, width: Int)], bufferFloats: [Int], scratchFloats: Int) {
        self.height = height
        self.width = width
        self.sizes = sizes
        buffers = bufferFloats.map { n in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
            p.initialize(repeating: 0, count: max(1, n))
            return p
        }
        scratchCount = scratchFloats
        scratch = .allocate(capacity: max(1, scratchFloats))
        scratch.initialize(repeating: 0, count: max(1, scratchFloats))
    }

    deinit {
        for b in buffers { b.deallocate() }
        scratch.deallocate()
    }

    func runSingleThreaded() { blasThreads = 1 }

    func setThreads(_ n: Int) {
        if blasThreads != n {
            setBLASThreads(n)
            blasThreads = n
        }
    }

    /// Runs a folded conv (generic, pointwise or depthwise) on an activation of `batch` images;
    /// output is CNHW. Returns the output's spatial size.
    @discardableResult
    func run(_ conv: FoldedConv, input: UnsafePointer<Float>, layout: PlaneLayout? = nil, batch n: Int,
             height h: Int, width w: Int, output: UnsafeMutablePointer<Float>,
             residual: UnsafePointer<Float>? = nil, options: ForwardOptions) -> (Int, Int) {
        let g = conv.geometry
        let (oh, ow) = g.outputSize(height: h, width: w)
        if let u = conv.winograd4, layout == nil, options.winograd {
            setThreads(1)
            conv3x3Winograd4Forward(output: output, input: input, batch: n, inChannels: g.inChannels, outChannels: g.outChannels,
                                    height: h, width: w, u: u, bias: conv.bias, residual: residual, activation: conv.activation,
                                    scratch: scratch, scratchCount: scratchCount, workers: options.workers,
                                    minTilesPerWorker: options.minTilesPerWorker)
            return (oh, ow)
        }
        if let u = conv.winograd, layout == nil, options.winograd {
            setThreads(1)
            conv3x3WinogradForward(output: output, input: input, batch: n, inChannels: g.inChannels, outChannels: g.outChannels,
                                   height: h, width: w, u: u, bias: conv.bias, residual: residual, activation: conv.activation,
                                   scratch: scratch, scratchCount: scratchCount, workers: options.workers,
                                   minTilesPerWorker: options.minTilesPerWorker)
            return (oh, ow)
        }
        if conv.isDepthwise3x3 && residual == nil && (layout == nil) {
            depthwiseConv3x3Forward(output: output, input: input, channels: g.inChannels, batch: n,
                                    height: h, width: w, stride: g.stride, weight: conv.weight, bias: conv.bias,
                                    activation: conv.activation, scratch: scratch, workers: options.workers)
            return (oh, ow)
        }
        setThreads(1)
        conv2dForward(output: output, input: input, layout: layout ?? .cnhw(batch: n, height: h, width: w),
                      batch: n, height: h, width: w, geometry: g, weight: conv.weight, bias: conv.bias,
                      residual: residual, activation: conv.activation,
                      scratch: scratch, scratchCount: scratchCount, workers: options.workers,
                      minColumnsPerWorker: options.minColumnsPerWorker, outputChunkFloats: options.outputChunkFloats)
        return (oh, ow)
    }
}

/// Scratch floats needed by a model with largest im2col height `maxK`, largest depthwise plane and
/// largest Winograd tile row: one slot per worker, each holding a chunk of `Grain.chunkFloats`
/// (the kernels cut their work by shape, not by worker count; with fewer slots fewer workers run).
func scratchFloats(maxK: Int, maxPlane: (Int, Int), options: ForwardOptions, winogradRow: Int = 0) -> Int {
    let w = max(1, options.workers)
    let slot = max(options.scratchPerWorker, Grain.chunkFloats, maxK, winogradRow,
                   depthwiseScratchCount(height: maxPlane.0, width: maxPlane.1))
    return slot * w
}

/// Shared driver: runs every image of a batch alone, owns the workspaces, serializes callers.
///
/// Each image is computed by itself, never in a GEMM together with its neighbours: BLAS libraries
/// round an element's sum differently depending on the matrix shape and on where the element falls
/// in it (measured with OpenBLAS 0.3.21: HASWELL, ZEN and SKYLAKEX kernels give a column other bits
/// in a 64-column call than in a 3264-column one), so a batched GEMM would make an image's features
/// depend on the batch it came in. With as many images as workers, the workers take whole images
/// (single-threaded kernels, nothing to synchronize); with fewer, the workers share each image's
/// kernels, which cut their work by shape only. Either way an image's features are the same bits
/// for any batch size and any worker count.
final class Driver<W: ImageWorkspace>: @unchecked Sendable {
    private let lock = NSLock()
    /// [0]: the workspace of an image computed by all workers; [1...]: one per worker taking whole images.
    private var shared: W?
    private var perWorker: [W] = []
    let options: ForwardOptions

    init(options: ForwardOptions) { self.options = options }

    /// Runs `body(ws, options, image, out)` for each image of `batch` (count x 3 x height x width)
    /// and returns the `perImageOut` outputs of each, in order.
    func forEachImage(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int, perImageOut: Int,
                      makeWorkspace: (_ height: Int, _ width: Int, _ options: ForwardOptions) -> W,
                      body: (W, ForwardOptions, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        forEachGroup(batch: batch, count: count, height: height, width: width, perImageOut: perImageOut, group: 1,
                     makeWorkspace: makeWorkspace) { ws, o, x, _, out in body(ws, o, x, out) }
    }

    /// Runs `body(ws, options, images, n, out)` for consecutive groups of n <= `group` images of
    /// `batch` (count x 3 x height x width; a workspace holds a group) and returns the
    /// `perImageOut` outputs of each image, in order. Workers take whole groups (of
    /// min(group, count / workers) images, so that every worker has some), or share each group's
    /// kernels when there are fewer images than workers.
    func forEachGroup(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int, perImageOut: Int, group: Int,
                      makeWorkspace: (_ height: Int, _ width: Int, _ options: ForwardOptions) -> W,
                      body: (W, ForwardOptions, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        // images smaller than the network's total stride still produce 1x1 maps; empty ones produce nothing
        guard count > 0, height > 0, width > 0 else { return [] }
        var out = [Float](repeating: 0, count: count * perImageOut)
        // our kernels parallelize themselves and call BLAS single-threaded; restore the caller's setting
        let savedThreads = blasThreads()
        setBLASThreads(1)
        defer { setBLASThreads(savedThreads) }
        func fits(_ ws: W?) -> Bool { ws.map { $0.height == height && $0.width == width } ?? false }
        let perImageIn = 3 * height * width
        let workers = max(1, options.workers)
        out.withUnsafeMutableBufferPointer { o in
            let outBase = o.baseAddress!
            if workers == 1 || count < workers {
                if !fits(shared) { shared = nil; shared = makeWorkspace(height, width, options) }
                let ws = shared!
                ws.runSingleThreaded()
                for i in stride(from: 0, to: count, by: group) {
                    body(ws, options, batch + i * perImageIn, min(group, count - i), outBase + i * perImageOut)
                }
                return
            }
            var single = options
            single.workers = 1
            if perWorker.count < workers || !perWorker.allSatisfy(fits) {
                perWorker = []
                perWorker = (0..<workers).map { _ in makeWorkspace(height, width, single) }
            }
            let spaces = perWorker
            for ws in spaces { ws.runSingleThreaded() }
            let size = max(1, min(group, count / workers))
            let next = Atomic<Int>(0)
            let out = UncheckedSendable(outBase)
            parallelSlices(workers, workers: workers) { worker, _ in
                // groups go to whichever worker is free (a core taken by another process slows one worker only)
                while true {
                    let i = next.add(size, ordering: .relaxed).oldValue
                    if i >= count { break }
                    body(spaces[worker], single, batch + i * perImageIn, min(size, count - i), out.value + i * perImageOut)
                }
            }
        }
        return out
    }
}

// MARK: - Binding from weight files

extension StateDict: TensorSource {
    public func tensorIfPresent(_ name: String) throws -> Tensor? { self[name]?.tensor }
}
