import Foundation
import NN
import Backbones
import Vision
import Weights
import Parallelism

/// Errors building or training a network.
public enum FinetuneError: Error, CustomStringConvertible {
    case missingTensor(String, architecture: String)
    case badShape(String, expected: [Int], got: [Int])
    case badOption(String)
    case dataset(String)
    case checkpoint(path: String, reason: String)
    case io(path: String, reason: String)
    /// `resume` on data other than the checkpoint's.
    case otherData(checkpoint: String, recorded: DataIdentity, given: DataIdentity)
    /// A finetuning summary (`OUT.json`) that cannot be read.
    case invalidSummary(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingTensor(let n, let a):
            return "the weights have no tensor '\(n)' needed by \(a); check that the file is a \(a) state_dict (probe weights inspect FILE lists its tensors)"
        case .badShape(let n, let e, let g):
            return "tensor '\(n)' has shape \(g), expected \(e); the file is not this architecture"
        case .badOption(let s): return s
        case .dataset(let s): return s
        case .checkpoint(let p, let r): return "checkpoint \(p): \(r)"
        case .io(let p, let r): return "cannot write \(p): \(r); check the directory exists and is writable"
        case .invalidSummary(let p, let r):
            return "cannot read the finetuning summary \(p) (\(r)); it is written by `probe finetune` beside its weights: run it again or remove the file"
        case .otherData(let p, let was, let now) where was.root == now.root:
            return """
                checkpoint \(p) was made on the data in \(was.root) as it was then (\(was.summary)); files were \
                added, removed, renamed or changed in size since (now \(now.summary)). Resuming would continue \
                that run on other images: run without --resume to start a new run on the data as it is now \
                (the checkpoint is replaced), or restore the folder and resume.
                """
        case .otherData(let p, let was, let now):
            return """
                checkpoint \(p) was made on other data: \(was.summary); the folder given holds \(now.summary). \
                Resuming would continue that run on other images: run without --resume to start a new run on \
                \(now.root) (the checkpoint is replaced, or pick another --out), or resume with \(was.root) to \
                finish the first run.
                """
        }
    }
}

/// A named slice of a flat buffer (a parameter or a BatchNorm running statistic).
public struct FlatEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A trainable network of any registered architecture (built from its description in Backbones:
/// torchvision's layers and names, BatchNorm unfolded, training-mode statistics) with a new last
/// layer of `classes` outputs.
///
/// Memory: parameters, their gradients and the BatchNorm running statistics are three flat float
/// buffers (`parameters`, `gradients`, `buffers`; `parameterEntries`/`bufferEntries` name their
/// slices in torchvision's state_dict order). Activations of one batch of up to `maxBatch` images
/// live in one arena (every layer output is kept for the backward pass); gradients of activations
/// share slots assigned statically by lifetime (a slot is reused once the layer that produced the
/// tensor has been back-propagated).
///
/// The classifier is torchvision's: `fc` for ResNets, `Sequential(Dropout(0.2), Linear(1280, classes))`
/// for MobileNetV2 (the registry's `defaultDropout`): in training mode dropout zeroes each pooled
/// feature with probability `dropout` (0 turns it off) and scales the others by 1/(1-p); the mask is drawn from
/// `AugmentRNG(seed: dropoutSeed, epoch:, index: step)` so runs are reproducible and resumable.
public final class TrainableNetwork: @unchecked Sendable {
    public let architecture: Architecture
    public let classes: Int
    public let maxBatch: Int
    public let height: Int
    public let width: Int
    public var parameters: [Float]
    public var gradients: [Float]
    public var buffers: [Float]
    /// `num_batches_tracked` of every BatchNorm (they all see every training batch).
    public var batchesTracked: Int64 = 0
    public let parameterEntries: [FlatEntry]
    public let bufferEntries: [FlatEntry]
    /// BatchNorm module names (for `<name>.num_batches_tracked`).
    public let batchNormNames: [String]
    /// Dropout probability before the last layer in training mode.
    public var dropout: Float
    /// Worker threads of the kernels (results do not depend on it). Setting it resizes the scratch.
    public var workers: Int = defaultWorkerCount {
        didSet { if workers != oldValue { allocateScratch() } }
    }
    public var momentum: Float = 0.1
    /// When true, `forward`/`backward` accumulate seconds per layer kind in `profile`.
    public var profiling = false
    /// 3x3 / stride-1 convolutions (ResNet-18's) by Winograd F(2x2, 3x3) where it pays
    /// (`winogradPays`): forward, input gradient and weight gradient; false: im2col + GEMM for
    /// everything (for comparisons).
    public var winograd = true
    /// Seconds per "forward conv 3x3", "backward bn", ... (when `profiling`).
    public var profile: [String: Double] = [:]

    @inline(__always) private func tick() -> UInt64 { profiling ? DispatchTime.now().uptimeNanoseconds : 0 }
    private func tock(_ t0: UInt64, _ pass: String, _ op: Op) {
        guard profiling else { return }
        let kind: String
        switch op {
        case .conv(_, _, let g, _): kind = g.groups > 1 ? "depthwise" : "conv \(g.kernelH)x\(g.kernelW)/\(g.stride)"
        case .bn: kind = "bn"
        case .maxpool: kind = "maxpool"
        case .gap: kind = "gap"
        case .dropout: kind = "dropout"
        case .linear: kind = "linear"
        }
        profile[pass + " " + kind, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    enum Op {
        case conv(x: Int, y: Int, g: ConvGeometry, w: Int)
        case bn(x: Int, y: Int, res: Int?, act: Activation, p: Int, b: Int, c: Int, save: Int)
        case maxpool(x: Int, y: Int, argmax: Int)
        case gap(x: Int, y: Int)
        case dropout(x: Int, y: Int)
        case linear(x: Int, y: Int, w: Int, b: Int, i: Int, o: Int)

        var inputs: [Int] {
            switch self {
            case .conv(let x, _, _, _), .maxpool(let x, _, _), .gap(let x, _), .dropout(let x, _), .linear(let x, _, _, _, _, _): return [x]
            case .bn(let x, _, let r, _, _, _, _, _): return r.map { [x, $0] } ?? [x]
            }
        }
        var output: Int {
            switch self {
            case .conv(_, let y, _, _), .bn(_, let y, _, _, _, _, _, _), .maxpool(_, let y, _), .gap(_, let y),
                 .dropout(_, let y), .linear(_, let y, _, _, _, _): return y
            }
        }
    }

    struct TensorSpec { var c: Int; var h: Int; var w: Int; var per: Int { c * h * w } }

    let ops: [Op]
    let tensors: [TensorSpec]
    /// Export order: (state_dict name, what).
    enum ExportItem { case parameter(Int), buffer(Int), tracked }
    let exportOrder: [(String, ExportItem)]

    // arenas
    private let act: UnsafeMutablePointer<Float>
    private let actOffsets: [Int]
    private let grad: UnsafeMutablePointer<Float>
    private let gradOffsets: [Int?]
    private let gradBorn: [[Int]]   // per op index: tensors whose gradient is zeroed before its backward
    private let save: UnsafeMutablePointer<Float>
    private let argmax: UnsafeMutablePointer<Int32>
    private let mask: UnsafeMutablePointer<Float>
    private var scratch: UnsafeMutablePointer<Float>
    private var scratchCount: Int
    /// Scratch of one worker's slot (im2col or Winograd chunk, depthwise planes) and the scratch
    /// shared by all workers (whole-batch im2col of late layers' weight gradients).
    private let scratchSlot: Int, scratchShared: Int
    private let temp: UnsafeMutablePointer<Float>
    private let weightT: UnsafeMutablePointer<Float>
    /// Per op: where its Winograd weights live in `winogradWeights` (3x3 / stride-1 convolutions of
    /// CNHW activations), made by every forward pass from the current weights and reused by backward.
    private let winogradOffsets: [Int?]
    private let winogradWeights: UnsafeMutablePointer<Float>
    /// The weight gradient in the Winograd domain, for the largest such convolution.
    private let winogradGradient: UnsafeMutablePointer<Float>
    /// Per op: true when the last forward pass made its Winograd weights (backward then uses them).
    private var winogradMade: [Bool]
    private var arenaFloats: Int
    /// Floats held by activations, their gradients and scratch (for memory reports).
    public var workingSetBytes: Int { arenaFloats * 4 + parameters.count * 12 + buffers.count * 4 }

    // MARK: building

    struct Builder: NetworkBuilder {
        var tensors: [TensorSpec] = []
        var ops: [Op] = []
        var params: [FlatEntry] = []
        var paramCount = 0
        var bufs: [FlatEntry] = []
        var bufCount = 0
        var saveCount = 0
        var argmaxCount = 0
        var bnNames: [String] = []
        var export: [(String, ExportItem)] = []

        var input: Int { 0 }
        func channels(_ x: Int) -> Int { tensors[x].c }

        mutating func convBN(_ conv: String, _ bn: String, _ x: Int, _ g: ConvGeometry, _ activation: Activation) throws -> Int {
            guard g.inChannels == tensors[x].c else {
                throw FinetuneError.badOption("\(conv) takes \(g.inChannels) channels, its input has \(tensors[x].c)")
            }
            return self.bn(bn, self.conv(conv, x, g), activation)
        }

        mutating func addResidual(_ y: Int, _ residual: Int, _ activation: Activation) throws -> Int {
            // fused into the BatchNorm that made y, which then runs after the residual's producer;
            // the state_dict order (`export`) stays the order of the description
            guard let i = ops.lastIndex(where: { $0.output == y }),
                  case .bn(let x, _, nil, .none, let p, let b, let c, let save) = ops[i], tensors[residual].c == c else {
                throw FinetuneError.badOption("a residual must follow a convolution and BatchNorm without activation of the same shape")
            }
            ops.remove(at: i)
            ops.append(.bn(x: x, y: y, res: residual, act: activation, p: p, b: b, c: c, save: save))
            return y
        }

        mutating func maxPool3x3s2(_ x: Int) throws -> Int {
            let t = tensors[x]
            let y = tensor(t.c, (t.h + 2 - 3) / 2 + 1, (t.w + 2 - 3) / 2 + 1)
            ops.append(.maxpool(x: x, y: y, argmax: argmaxCount))
            argmaxCount += tensors[y].per
            return y
        }

        mutating func tensor(_ c: Int, _ h: Int, _ w: Int) -> Int { tensors.append(TensorSpec(c: c, h: h, w: w)); return tensors.count - 1 }
        mutating func param(_ name: String, _ shape: [Int]) -> Int {
            let e = FlatEntry(name: name, shape: shape, offset: paramCount)
            params.append(e); paramCount += e.count
            export.append((name, .parameter(params.count - 1)))
            return e.offset
        }
        mutating func buffer(_ name: String, _ shape: [Int]) -> Int {
            let e = FlatEntry(name: name, shape: shape, offset: bufCount)
            bufs.append(e); bufCount += e.count
            export.append((name, .buffer(bufs.count - 1)))
            return e.offset
        }
        mutating func conv(_ name: String, _ x: Int, _ g: ConvGeometry) -> Int {
            let t = tensors[x]
            let (oh, ow) = g.outputSize(height: t.h, width: t.w)
            let y = tensor(g.outChannels, oh, ow)
            let w = param(name + ".weight", [g.outChannels, g.inChannels / g.groups, g.kernelH, g.kernelW])
            ops.append(.conv(x: x, y: y, g: g, w: w))
            return y
        }
        mutating func bn(_ name: String, _ x: Int, _ act: Activation, residual: Int? = nil) -> Int {
            let t = tensors[x]
            let y = tensor(t.c, t.h, t.w)
            let p = param(name + ".weight", [t.c]); _ = param(name + ".bias", [t.c])
            let b = buffer(name + ".running_mean", [t.c]); _ = buffer(name + ".running_var", [t.c])
            export.append((name + ".num_batches_tracked", .tracked))
            bnNames.append(name)
            ops.append(.bn(x: x, y: y, res: residual, act: act, p: p, b: b, c: t.c, save: saveCount))
            saveCount += 2 * t.c
            return y
        }
    }

    /// Builds the network. `weights`: a state_dict (torchvision names; MobileNetV2 also deep-sort-
    /// realtime names) or nil for a fresh random initialisation (tests, benchmarks). The last layer
    /// (`fc` / `classifier.1`) is always new: PyTorch's Linear initialisation U(-1/sqrt(in), 1/sqrt(in))
    /// drawn from `seed`, unless `keepLastLayer` and the weights have one with `classes` outputs.
    public init(architecture: Architecture, classes: Int, weights: StateDict?, maxBatch: Int,
                height: Int = 224, width: Int = 224, seed: UInt64 = 0, keepLastLayer: Bool = false,
                dropout: Float? = nil) throws {
        guard classes >= 1 else { throw FinetuneError.badOption("need at least one class") }
        guard maxBatch >= 1 else { throw FinetuneError.badOption("batch size must be at least 1") }
        guard height >= 32, width >= 32 else { throw FinetuneError.badOption("images must be at least 32x32") }
        self.architecture = architecture
        self.classes = classes
        self.maxBatch = maxBatch
        self.height = height
        self.width = width
        self.dropout = dropout ?? architecture.defaultDropout
        var b = Builder()
        _ = b.tensor(3, height, width)  // the input, tensor 0
        let body = try architecture.body.build(&b)
        let pooled = b.tensor(b.tensors[body].c, 1, 1)
        b.ops.append(.gap(x: body, y: pooled))
        var features = pooled
        if self.dropout > 0 {
            let d = b.tensor(b.tensors[pooled].c, 1, 1)
            b.ops.append(.dropout(x: pooled, y: d))
            features = d
        }
        let last = architecture.classifier
        let inF = b.tensors[features].c
        let logits = b.tensor(classes, 1, 1)
        let fw = b.param(last + ".weight", [classes, inF])
        let fb = b.param(last + ".bias", [classes])
        b.ops.append(.linear(x: features, y: logits, w: fw, b: fb, i: inF, o: classes))

        ops = b.ops
        tensors = b.tensors
        parameterEntries = b.params
        bufferEntries = b.bufs
        batchNormNames = b.bnNames
        exportOrder = b.export
        parameters = [Float](repeating: 0, count: b.paramCount)
        gradients = [Float](repeating: 0, count: b.paramCount)
        buffers = [Float](repeating: 0, count: b.bufCount)

        // activation arena: every tensor but the input keeps its own region
        var offsets: [Int] = []
        var total = 0
        for t in tensors { offsets.append(total); total += (t.per * maxBatch + 15) / 16 * 16 }
        actOffsets = offsets
        // gradient slots by lifetime (backward order)
        let (gOff, gTotal, born) = TrainableNetwork.assignGradientSlots(ops: b.ops, tensors: b.tensors, batch: maxBatch)
        gradOffsets = gOff
        gradBorn = born
        // scratch: per worker slot an im2col or Winograd chunk (`Grain.chunkFloats`, or one tile row
        // when that is larger) or depthwise planes; shared: the whole-batch im2col that
        // conv2dBackwardWeight uses for late layers (few columns for many weights)
        var slot = Grain.chunkFloats
        var shared = 1
        var wt = 1
        var wino: [Int?] = []
        var winoTotal = 0, winoLargest = 1
        for op in b.ops {
            wino.append(nil)
            if case .conv(let x, _, let g, _) = op {
                let t = b.tensors[x]
                if g.groups > 1 {
                    slot = max(slot, depthwiseBackwardScratchCount(height: t.h, width: t.w), depthwiseScratchCount(height: t.h, width: t.w))
                } else {
                    slot = max(slot, g.groupK)
                    let (oh, ow) = g.outputSize(height: t.h, width: t.w)
                    let cols = min(maxBatch * oh * ow, 4 * g.outChannels, (1 << 23) / g.groupK)
                    shared = max(shared, g.groupK * cols)
                    // conv2dBackwardWeight of a pointwise convolution: up to 8 partial OC x IC sums
                    if g.isPointwise { shared = max(shared, 8 * g.outChannels * g.inChannels) }
                    if canBackpropInputByForward(g) { wt = max(wt, g.weightCount) }
                    if x != 0 && TrainableNetwork.isWinogradEligible(g) {
                        wino[wino.count - 1] = winoTotal
                        winoTotal += 16 * g.inChannels * g.outChannels
                        winoLargest = max(winoLargest, 16 * g.inChannels * g.outChannels)
                        let tw = (t.w + 1) / 2
                        slot = max(slot, 16 * (g.inChannels + g.outChannels) * tw + 8 * (tw + 16))
                    }
                }
            }
        }
        scratchSlot = slot
        scratchShared = shared
        scratchCount = TrainableNetwork.scratchFloats(slot: slot, shared: shared, workers: defaultWorkerCount)
        let largest = b.tensors.dropFirst().map { $0.per }.max() ?? 1
        act = .allocate(capacity: total)
        act.initialize(repeating: 0, count: total)
        grad = .allocate(capacity: max(1, gTotal))
        grad.initialize(repeating: 0, count: max(1, gTotal))
        save = .allocate(capacity: max(1, b.saveCount))
        save.initialize(repeating: 0, count: max(1, b.saveCount))
        argmax = .allocate(capacity: max(1, b.argmaxCount * maxBatch))
        argmax.initialize(repeating: 0, count: max(1, b.argmaxCount * maxBatch))
        let featureCount = architecture.featureDimension
        mask = .allocate(capacity: featureCount * maxBatch)
        mask.initialize(repeating: 1, count: featureCount * maxBatch)
        scratch = .allocate(capacity: scratchCount)
        scratch.initialize(repeating: 0, count: scratchCount)
        temp = .allocate(capacity: largest * maxBatch)
        temp.initialize(repeating: 0, count: largest * maxBatch)
        weightT = .allocate(capacity: wt)
        weightT.initialize(repeating: 0, count: wt)
        winogradOffsets = wino
        winogradMade = [Bool](repeating: false, count: wino.count)
        winogradWeights = .allocate(capacity: max(1, winoTotal))
        winogradWeights.initialize(repeating: 0, count: max(1, winoTotal))
        winogradGradient = .allocate(capacity: winoLargest)
        winogradGradient.initialize(repeating: 0, count: winoLargest)
        arenaFloats = total + gTotal + scratchCount + b.saveCount + featureCount * maxBatch + b.argmaxCount * maxBatch + largest * maxBatch + wt + winoTotal + winoLargest

        try initialise(weights: weights, seed: seed, keepLastLayer: keepLastLayer)
    }

    static func scratchFloats(slot: Int, shared: Int, workers: Int) -> Int {
        max(shared, max(1, workers) * slot)
    }

    /// Sizes the scratch for `workers` (the kernels use fewer workers when it holds fewer slots).
    private func allocateScratch() {
        let count = TrainableNetwork.scratchFloats(slot: scratchSlot, shared: scratchShared, workers: workers)
        guard count != scratchCount else { return }
        scratch.deallocate()
        arenaFloats += count - scratchCount
        scratchCount = count
        scratch = .allocate(capacity: count)
        scratch.initialize(repeating: 0, count: count)
    }

    deinit {
        act.deallocate(); grad.deallocate(); save.deallocate(); argmax.deallocate(); mask.deallocate(); scratch.deallocate()
        temp.deallocate(); weightT.deallocate(); winogradWeights.deallocate(); winogradGradient.deallocate()
    }

    static func isWinogradEligible(_ g: ConvGeometry) -> Bool {
        g.kernelH == 3 && g.kernelW == 3 && g.stride == 1 && g.padding == 1 && g.groups == 1
    }

    /// Winograd pays when the multiplies it saves, OC*IC*(9*N*H*W - 16*tiles), outweigh making U
    /// (16*OC*IC values, memory-bound): not for 7x7 maps at batch 4 (measured: the forward pass's 3x3
    /// convolutions took 90 ms with, 70 ms without them in a ResNet-18 step at batch 4).
    static func winogradPays(batch n: Int, height h: Int, width w: Int) -> Bool {
        n * h * w >= 512
    }

    static func assignGradientSlots(ops: [Op], tensors: [TensorSpec], batch: Int) -> ([Int?], Int, [[Int]]) {
        let nt = tensors.count
        var producer = [Int](repeating: -1, count: nt)
        var lastUse = [Int](repeating: -1, count: nt)
        for (i, op) in ops.enumerated() {
            producer[op.output] = i
            for x in op.inputs { lastUse[x] = max(lastUse[x], i) }
        }
        var born = [[Int]](repeating: [], count: ops.count)
        var slotOf = [Int?](repeating: nil, count: nt)
        var slotSize: [Int] = []
        var free: [Int] = []
        func allocate(_ t: Int) {
            let need = tensors[t].per * batch
            // best fit among free slots, else grow the largest free one, else a new slot
            var pick: Int? = nil
            for (k, s) in free.enumerated() where slotSize[s] >= need {
                if pick == nil || slotSize[s] < slotSize[free[pick!]] { pick = k }
            }
            if pick == nil, !free.isEmpty {
                pick = free.indices.max { slotSize[free[$0]] < slotSize[free[$1]] }
            }
            if let k = pick {
                let s = free.remove(at: k)
                slotSize[s] = max(slotSize[s], need)
                slotOf[t] = s
            } else {
                slotSize.append(need)
                slotOf[t] = slotSize.count - 1
            }
        }
        // the logits' gradient exists from the start (the loss writes it)
        let logits = ops.last!.output
        allocate(logits)
        for i in stride(from: ops.count - 1, through: 0, by: -1) {
            for x in ops[i].inputs where x != 0 && lastUse[x] == i && slotOf[x] == nil {
                allocate(x)
                born[i].append(x)
            }
            let y = ops[i].output
            if producer[y] == i, let s = slotOf[y] { free.append(s) }
        }
        var slotOffset: [Int] = []
        var total = 0
        for s in slotSize { slotOffset.append(total); total += (s + 15) / 16 * 16 }
        return (slotOf.map { $0.map { slotOffset[$0] } }, total, born)
    }

    // MARK: weights

    private func initialise(weights: StateDict?, seed: UInt64, keepLastLayer: Bool) throws {
        let last = architecture.classifier
        // the weights' key scheme (torchvision's, or one the registry lists, recognised by its marker)
        let scheme = weights.flatMap { sd in architecture.keySchemes.first { sd[$0.marker] != nil } }
        func keyOf(_ name: String) -> String { scheme?.rename(name) ?? name }
        var rng = AugmentRNG(seed: seed ^ 0x6C61_7374_6C61_7972, epoch: -1, index: 0)  // "lastlayr"
        for e in parameterEntries {
            let isLast = e.name.hasPrefix(last + ".")
            if let sd = weights, !isLast || keepLastLayer {
                let key = keyOf(e.name)
                if let t = sd[key] {
                    guard t.shape == e.shape else {
                        if isLast { try initLast(e, &rng); continue }
                        throw FinetuneError.badShape(key, expected: e.shape, got: t.shape)
                    }
                    parameters.replaceSubrange(e.offset..<(e.offset + e.count), with: t.values)
                    continue
                } else if !isLast {
                    throw FinetuneError.missingTensor(key, architecture: architecture.name)
                }
            }
            if isLast { try initLast(e, &rng); continue }
            // fresh init (no weights): convolutions uniform with variance 2/fan_in, BN gamma 1 / beta 0
            if e.shape.count == 4 {
                let fanIn = e.shape.dropFirst().reduce(1, *)
                let bound = (6 / Float(fanIn)).squareRoot()
                for i in 0..<e.count { parameters[e.offset + i] = rng.uniform(-bound, bound) }
            } else {
                let v: Float = e.name.hasSuffix(".weight") ? 1 : 0
                for i in 0..<e.count { parameters[e.offset + i] = v }
            }
        }
        for e in bufferEntries {
            let key = keyOf(e.name)
            if let sd = weights {
                guard let t = sd[key] else { throw FinetuneError.missingTensor(key, architecture: architecture.name) }
                guard t.shape == e.shape else { throw FinetuneError.badShape(key, expected: e.shape, got: t.shape) }
                buffers.replaceSubrange(e.offset..<(e.offset + e.count), with: t.values)
            } else {
                let v: Float = e.name.hasSuffix("running_var") ? 1 : 0
                for i in 0..<e.count { buffers[e.offset + i] = v }
            }
        }
        if let sd = weights, let name = batchNormNames.first {
            let key = keyOf(name)
            if let t = sd[key + ".num_batches_tracked"], let v = t.int64Values?.first { batchesTracked = v }
        }
    }

    private func initLast(_ e: FlatEntry, _ rng: inout AugmentRNG) throws {
        let fanIn = parameterEntries.first { $0.name == architecture.classifier + ".weight" }!.shape[1]
        let bound = 1 / Float(fanIn).squareRoot()
        for i in 0..<e.count { parameters[e.offset + i] = rng.uniform(-bound, bound) }
    }

    /// Replaces the last layer's weight and bias (e.g. the reference's `fc_init_*`).
    public func setParameter(_ name: String, _ values: [Float]) throws {
        guard let e = parameterEntries.first(where: { $0.name == name }) else { throw FinetuneError.missingTensor(name, architecture: architecture.name) }
        guard values.count == e.count else { throw FinetuneError.badShape(name, expected: e.shape, got: [values.count]) }
        parameters.replaceSubrange(e.offset..<(e.offset + e.count), with: values)
    }

    /// A parameter's (or running statistic's) current values by state_dict name.
    public func values(_ name: String) -> [Float]? {
        if let e = parameterEntries.first(where: { $0.name == name }) { return Array(parameters[e.offset..<(e.offset + e.count)]) }
        if let e = bufferEntries.first(where: { $0.name == name }) { return Array(buffers[e.offset..<(e.offset + e.count)]) }
        return nil
    }

    /// A parameter's gradient (after `backward`) by name.
    public func gradient(_ name: String) -> [Float]? {
        guard let e = parameterEntries.first(where: { $0.name == name }) else { return nil }
        return Array(gradients[e.offset..<(e.offset + e.count)])
    }

    /// The full state_dict in torchvision's order (running statistics and int64 num_batches_tracked included).
    public func stateDictTensors(parameters p: [Float]? = nil, buffers bf: [Float]? = nil, tracked: Int64? = nil) -> [WeightTensor] {
        let pv = p ?? parameters, bv = bf ?? buffers
        var out: [WeightTensor] = []
        for (name, item) in exportOrder {
            switch item {
            case .parameter(let i):
                let e = parameterEntries[i]
                out.append(WeightTensor(name: name, dtype: .float32, shape: e.shape, values: Array(pv[e.offset..<(e.offset + e.count)])))
            case .buffer(let i):
                let e = bufferEntries[i]
                out.append(WeightTensor(name: name, dtype: .float32, shape: e.shape, values: Array(bv[e.offset..<(e.offset + e.count)])))
            case .tracked:
                let v = tracked ?? batchesTracked
                out.append(WeightTensor(name: name, dtype: .int64, shape: [], values: [Float(v)], int64Values: [v]))
            }
        }
        return out
    }

    // MARK: forward / backward

    @inline(__always) private func A(_ t: Int) -> UnsafeMutablePointer<Float> { act + actOffsets[t] }
    @inline(__always) private func G(_ t: Int) -> UnsafeMutablePointer<Float>? { gradOffsets[t].map { grad + $0 } }

    /// Logits of the last forward pass, (n x classes) row-major.
    public func logits(count n: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: A(ops.last!.output), count: n * classes))
    }

    /// The pooled features (n x featureDimension, before dropout) of the last forward pass.
    public func pooledFeatures(count n: Int) -> [Float] {
        for op in ops { if case .gap(_, let y) = op { return Array(UnsafeBufferPointer(start: A(y), count: n * tensors[y].c)) } }
        return []
    }

    /// Forward pass over `n` NCHW images (3 x height x width each). `training`: BatchNorm uses batch
    /// statistics and updates its running statistics, dropout is active (mask from `dropoutRNG`).
    /// Returns the logits (n x classes).
    @discardableResult
    public func forward(input: UnsafePointer<Float>, count n: Int, training: Bool, dropoutRNG: AugmentRNG? = nil) -> [Float] {
        precondition(n >= 1 && n <= maxBatch, "batch \(n) outside 1...\(maxBatch)")
        setBLASThreads(1)
        A(0).update(from: input, count: n * tensors[0].per)
        let wk = workers
        if training { batchesTracked += 1 }
        parameters.withUnsafeMutableBufferPointer { pp in
            buffers.withUnsafeMutableBufferPointer { bp in
                let P = pp.baseAddress!, B = bp.baseAddress!
                for (oi, op) in ops.enumerated() {
                    winogradMade[oi] = false
                    let t0 = tick()
                    defer { tock(t0, "forward", op) }
                    switch op {
                    case .conv(let x, let y, let g, let w):
                        let t = tensors[x]
                        if g.groups > 1 {
                            depthwiseConv3x3Forward(output: A(y), input: A(x), channels: g.inChannels, batch: n, height: t.h, width: t.w,
                                                    stride: g.stride, weight: P + w, bias: nil, activation: .none,
                                                    scratch: scratch, workers: wk)
                        } else if winograd, let off = winogradOffsets[oi], TrainableNetwork.winogradPays(batch: n, height: t.h, width: t.w) {
                            winogradMade[oi] = true
                            let u = winogradWeights + off
                            winogradTransformWeights(into: u, P + w, outChannels: g.outChannels, inChannels: g.inChannels, workers: wk)
                            conv3x3WinogradForward(output: A(y), input: A(x), batch: n, inChannels: g.inChannels, outChannels: g.outChannels,
                                                   height: t.h, width: t.w, u: u, bias: nil, residual: nil, activation: .none,
                                                   scratch: scratch, scratchCount: scratchCount, workers: wk)
                        } else {
                            let layout: PlaneLayout = x == 0 ? .nchw(channels: t.c, height: t.h, width: t.w) : .cnhw(batch: n, height: t.h, width: t.w)
                            conv2dForward(output: A(y), input: A(x), layout: layout, batch: n, height: t.h, width: t.w, geometry: g,
                                          weight: P + w, bias: nil, scratch: scratch, scratchCount: scratchCount, workers: wk)
                        }
                    case .bn(let x, let y, let res, let a, let p, let b, let c, let s):
                        let m = n * tensors[x].h * tensors[x].w
                        if training {
                            batchNormTrainForward(output: A(y), input: A(x), channels: c, count: m, gamma: P + p, beta: P + p + c,
                                                  residual: res.map { UnsafePointer(A($0)) }, activation: a,
                                                  saveMean: save + s, saveInvStd: save + s + c,
                                                  runningMean: B + b, runningVar: B + b + c, momentum: momentum, workers: wk)
                        } else {
                            batchNormEvalForwardFused(output: A(y), input: A(x), channels: c, count: m, gamma: P + p, beta: P + p + c,
                                                      runningMean: B + b, runningVar: B + b + c,
                                                      residual: res.map { UnsafePointer(A($0)) }, activation: a, workers: wk)
                        }
                    case .maxpool(let x, let y, let am):
                        let t = tensors[x]
                        maxPool2dTrainForward(output: A(y), argmax: argmax + am * maxBatch, input: A(x), planes: t.c * n,
                                              height: t.h, width: t.w, workers: wk)
                    case .gap(let x, let y):
                        let t = tensors[x]
                        globalAvgPoolForward(output: A(y), input: A(x), channels: t.c, batch: n, hw: t.h * t.w)
                    case .dropout(let x, let y):
                        let cnt = n * tensors[x].c
                        if training && dropout > 0 {
                            var rng = dropoutRNG ?? AugmentRNG(seed: 0)
                            dropoutForward(output: A(y), mask: mask, input: A(x), count: cnt, p: dropout) { rng.uniform(0, 1) }
                        } else {
                            A(y).update(from: A(x), count: cnt)
                        }
                    case .linear(let x, let y, let w, let b, let i, let o):
                        linearForward(output: A(y), input: A(x), batch: n, inFeatures: i, outFeatures: o, weight: P + w, bias: P + b)
                    }
                }
            }
        }
        return logits(count: n)
    }

    /// Loss of the last forward pass against `labels`, and (when `backward`) the gradients of
    /// every parameter into `gradients` (overwritten). Returns (mean cross-entropy, predictions).
    @discardableResult
    public func lossAndBackward(labels: [Int], backward: Bool = true) -> (loss: Double, predictions: [Int]) {
        let n = labels.count
        let logitsT = ops.last!.output
        var preds = [Int](repeating: 0, count: n)
        let loss = labels.withUnsafeBufferPointer { lb in
            preds.withUnsafeMutableBufferPointer { pr in
                softmaxCrossEntropy(logits: A(logitsT), labels: lb.baseAddress!, batch: n, classes: classes,
                                    gradLogits: backward ? G(logitsT) : nil, predictions: pr.baseAddress!)
            }
        }
        if backward { self.backward(count: n) }
        return (loss, preds)
    }

    /// Back-propagates the gradient the loss left at the logits through every layer.
    func backward(count n: Int) {
        setBLASThreads(1)
        let wk = workers
        gradients.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        parameters.withUnsafeMutableBufferPointer { pp in
            gradients.withUnsafeMutableBufferPointer { gp in
                let P = pp.baseAddress!, GP = gp.baseAddress!
                for i in stride(from: ops.count - 1, through: 0, by: -1) {
                    let t0 = tick()
                    defer { tock(t0, "backward", ops[i]) }
                    // A gradient born here (its first writer in backward order) is either overwritten by a
                    // kernel told so (`fresh`) or zeroed first for the kernels that only accumulate.
                    func fresh(_ t: Int) -> Bool { gradBorn[i].contains(t) }
                    func zeroIfFresh(_ t: Int) { if fresh(t) { G(t)!.update(repeating: 0, count: n * tensors[t].per) } }
                    switch ops[i] {
                    case .conv(let x, let y, let g, let w):
                        let t = tensors[x]
                        if g.groups > 1 {
                            depthwiseConv3x3Backward(gradOutput: G(y)!, input: A(x), channels: g.inChannels, batch: n, height: t.h, width: t.w,
                                                     stride: g.stride, weight: P + w, gradWeight: GP + w, gradInput: G(x),
                                                     accumulateInput: !fresh(x), scratch: scratch, workers: wk)
                        } else {
                            let layout: PlaneLayout = x == 0 ? .nchw(channels: t.c, height: t.h, width: t.w) : .cnhw(batch: n, height: t.h, width: t.w)
                            if winogradMade[i] {
                                conv3x3WinogradBackwardWeight(gradWeight: GP + w, gradOutput: G(y)!, input: A(x), batch: n,
                                                              inChannels: g.inChannels, outChannels: g.outChannels, height: t.h, width: t.w,
                                                              gradU: winogradGradient, scratch: scratch, scratchCount: scratchCount, workers: wk)
                            } else {
                                conv2dBackwardWeight(gradOutput: G(y)!, input: A(x), layout: layout, batch: n, height: t.h, width: t.w, geometry: g,
                                                     gradWeight: GP + w, scratch: scratch, scratchCount: scratchCount, workers: wk)
                            }
                            if profiling { tock(t0, "backward dW of", ops[i]) }
                            let t1 = tick()
                            defer { if profiling { tock(t1, "backward dX of", ops[i]) } }
                            if x != 0, let gx = G(x) {
                                if winogradMade[i], let off = winogradOffsets[i] {
                                    // dX = conv(dY) with the flipped, transposed kernel, from the forward pass's U;
                                    // accumulating reads gX as the residual of its own output
                                    conv3x3WinogradForward(output: gx, input: G(y)!, batch: n, inChannels: g.outChannels, outChannels: g.inChannels,
                                                           height: t.h, width: t.w, u: winogradWeights + off, flippedTransposed: true,
                                                           bias: nil, residual: fresh(x) ? nil : UnsafePointer(gx), activation: .none,
                                                           scratch: scratch, scratchCount: scratchCount, workers: wk)
                                } else if canBackpropInputByForward(g) {
                                    conv2dBackwardInputByForward(gradOutput: G(y)!, batch: n, height: t.h, width: t.w, geometry: g,
                                                                 weight: P + w, weightT: weightT, gradInput: gx, accumulate: !fresh(x),
                                                                 temp: temp, scratch: scratch, scratchCount: scratchCount, workers: wk)
                                } else {
                                    conv2dBackwardInput(gradOutput: G(y)!, layout: layout, batch: n, height: t.h, width: t.w, geometry: g,
                                                        weight: P + w, gradInput: gx, accumulate: !fresh(x),
                                                        scratch: scratch, scratchCount: scratchCount, workers: wk)
                                }
                            }
                        }
                    case .bn(let x, let y, let res, let a, let p, _, let c, let s):
                        let m = n * tensors[x].h * tensors[x].w
                        batchNormTrainBackward(gradOutput: G(y)!, output: A(y), input: A(x), channels: c, count: m, gamma: P + p,
                                               beta: res == nil ? UnsafePointer(P + p + c) : nil,
                                               saveMean: save + s, saveInvStd: save + s + c, activation: a,
                                               gradInput: G(x), gradResidual: res.flatMap { G($0) },
                                               gradGamma: GP + p, gradBeta: GP + p + c,
                                               accumulateInput: !fresh(x), accumulateResidual: res.map { !fresh($0) } ?? true, workers: wk)
                    case .maxpool(let x, let y, let am):
                        let tx = tensors[x], ty = tensors[y]
                        zeroIfFresh(x)
                        maxPool2dBackward(gradInput: G(x)!, gradOutput: G(y)!, argmax: argmax + am * maxBatch, planes: tx.c * n,
                                          inputHW: tx.h * tx.w, outputHW: ty.h * ty.w, workers: wk)
                    case .gap(let x, let y):
                        let t = tensors[x]
                        zeroIfFresh(x)
                        globalAvgPoolBackward(gradInput: G(x)!, gradOutput: G(y)!, channels: t.c, batch: n, hw: t.h * t.w)
                    case .dropout(let x, let y):
                        zeroIfFresh(x)
                        dropoutBackward(gradInput: G(x)!, gradOutput: G(y)!, mask: mask, count: n * tensors[x].c)
                    case .linear(let x, let y, let w, let b, let inF, let o):
                        zeroIfFresh(x)
                        linearBackward(gradOutput: G(y)!, input: A(x), weight: P + w, batch: n, inFeatures: inF, outFeatures: o,
                                       gradWeight: GP + w, gradBias: GP + b, gradInput: G(x))
                    }
                }
            }
        }
    }
}
