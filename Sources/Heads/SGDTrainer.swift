import NN
import Reproducible

/// Options of `SGDTrainer`; the defaults are PyTorch's transfer-learning tutorial's.
public struct SGDOptions: Sendable, Equatable {
    /// Initial learning rate (torch.optim.SGD lr).
    public var learningRate: Double = 0.001
    /// Momentum (0 disables the buffer, like torch).
    public var momentum: Double = 0.9
    /// Dampening (torch's; 0 in the tutorial).
    public var dampening: Double = 0
    /// L2 weight decay added to the gradient of every parameter, bias included (torch's weight_decay).
    public var weightDecay: Double = 0
    /// Nesterov momentum (torch's nesterov=True).
    public var nesterov = false
    /// Mini-batch size (the last, partial batch of an epoch is kept, like DataLoader(drop_last=False)).
    public var batchSize = 4
    /// Epochs.
    public var epochs = 25
    /// StepLR step size in epochs (0 disables the schedule).
    public var stepSize = 7
    /// StepLR gamma.
    public var gamma: Double = 0.1
    /// Reshuffle the training set every epoch (DataLoader(shuffle=True)).
    public var shuffle = true
    /// Seed of initialisation, shuffling and view choice (see `SplitMix64`).
    public var seed: UInt64 = 0
    /// `.balanced`: PyTorch's `CrossEntropyLoss(weight=w)` with scikit-learn's balanced weights
    /// w_k = n_samples / (n_classes * count(k)) of the training split: a batch's loss is
    /// sum w_{y_i} CE_i / sum w_{y_i}. The logged training loss stays the unweighted mean.
    public var classWeight = ClassWeighting.none

    public init() {}

    /// The tutorial's settings with a given seed.
    public static func tutorial(seed: UInt64 = 0) -> SGDOptions {
        var o = SGDOptions()
        o.seed = seed
        return o
    }

    func validate() throws(HeadsError) {
        guard learningRate > 0, learningRate.isFinite else { throw .invalidOption("learning rate must be positive, got \(learningRate)") }
        guard momentum >= 0, momentum < 1 else { throw .invalidOption("momentum must be in [0, 1), got \(momentum)") }
        guard dampening >= 0, dampening <= 1 else { throw .invalidOption("dampening must be in [0, 1], got \(dampening)") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw .invalidOption("weight decay must be >= 0, got \(weightDecay)") }
        guard !nesterov || (momentum > 0 && dampening == 0) else {
            throw .invalidOption("Nesterov momentum requires a momentum > 0 and zero dampening")
        }
        guard batchSize >= 1 else { throw .invalidOption("batch size must be at least 1, got \(batchSize)") }
        guard epochs >= 1 else { throw .invalidOption("epochs must be at least 1, got \(epochs)") }
        guard stepSize >= 0 else { throw .invalidOption("StepLR step size must be >= 0, got \(stepSize)") }
        guard gamma > 0, gamma.isFinite else { throw .invalidOption("StepLR gamma must be positive, got \(gamma)") }
    }
}

/// Metrics of one epoch, as the tutorial's train_model computes them.
public struct SGDEpochMetrics: Sendable, Equatable {
    public var epoch: Int
    /// Learning rate used during this epoch.
    public var learningRate: Double
    /// Mean training loss over the epoch, each batch's loss taken before its update (running).
    public var trainLoss: Double
    /// Training accuracy over the epoch (running, predictions before each update).
    public var trainAccuracy: Double
    /// Validation loss and accuracy after the epoch (nil without a validation split).
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    /// Wall time of the epoch (training + validation), seconds.
    public var seconds: Double
}

/// What `SGDTrainer.train` returns.
public struct SGDResult: Sendable {
    /// The weights of the best validation accuracy (first best on ties; the initial weights if
    /// no epoch beats accuracy 0, as in the tutorial). Without validation: the final weights.
    public var bestHead: LinearHead
    /// The weights after the last epoch.
    public var finalHead: LinearHead
    /// The weights before training.
    public var initialHead: LinearHead
    /// Epoch of `bestHead` (nil without validation or when no epoch beat 0).
    public var bestEpoch: Int?
    /// Best validation accuracy (0 when no epoch beat 0; nil without validation).
    public var bestValidationAccuracy: Double?
    public var epochs: [SGDEpochMetrics]
    public var options: SGDOptions
    /// Wall time of the whole training, seconds.
    public var seconds: Double
}

/// Mini-batch SGD over cached features with PyTorch's exact semantics: nn.Linear + CrossEntropyLoss
/// (mean over the batch) + torch.optim.SGD (momentum, dampening, weight decay, Nesterov) + StepLR
/// stepped once per epoch + the tutorial's best-validation-accuracy bookkeeping.
///
/// Per step, for a batch of B rows: logits = W x + b; dL/dlogits = (softmax - onehot) / B;
/// g = dL/dθ (+ weight_decay * θ); buf = g on the first step, else momentum * buf + (1 - dampening) * g;
/// d = nesterov ? g + momentum * buf : buf; θ -= lr * d. lr is kept in double and multiplied by
/// gamma every `stepSize` epochs, like StepLR. No allocation happens per step.
public struct SGDTrainer: Sendable {
    public var options: SGDOptions

    public init(options: SGDOptions = SGDOptions()) {
        self.options = options
    }

    /// Trains a head. `validation` (optional) is evaluated after every epoch (its first view only).
    /// `initialHead` (optional) replaces PyTorch-style random initialisation.
    public func train(_ train: LabeledFeatures, validation: LabeledFeatures? = nil,
                      initialHead: LinearHead? = nil) throws(HeadsError) -> SGDResult {
        try run(train, validation: validation, initialHead: initialHead, order: nil)
    }

    /// `order`, for tests: fills the batch order of an epoch instead of the seeded shuffle.
    func run(_ train: LabeledFeatures, validation: LabeledFeatures?, initialHead: LinearHead?,
             order: ((Int, UnsafeMutableBufferPointer<Int>) -> Void)?) throws(HeadsError) -> SGDResult {
        try options.validate()
        let classes = initialHead?.classes ?? train.classes
        let d = train.dimension
        if let h = initialHead {
            guard h.dimension == d else { throw .dimensionMismatch(expected: h.dimension, got: d) }
            for (i, l) in train.labels.enumerated() where l >= classes {
                throw .labelOutOfRange(row: i, label: l, classes: classes)
            }
        }
        if let v = validation {
            guard v.dimension == d else { throw .dimensionMismatch(expected: d, got: v.dimension) }
            for (i, l) in v.labels.enumerated() where l >= classes {
                throw .labelOutOfRange(row: i, label: l, classes: classes)
            }
        }
        let initial = initialHead ?? LinearHead.pytorchDefault(classes: classes, dimension: d, seed: options.seed)
        let clock = ContinuousClock()
        let start = clock.now

        let ws = SGDWorkspace(head: initial, batchSize: options.batchSize, count: train.count)
        if options.classWeight == .balanced {
            ws.classWeights = balancedClassWeights(labels: train.labels, classes: classes).map(Float.init)
        }
        let valMatrix = validation?.firstViews
        var valLogits = [Float](repeating: 0, count: (validation?.count ?? 0) * classes)
        var best = initial
        var bestAcc: Double = 0
        var bestEpoch: Int?
        var metrics: [SGDEpochMetrics] = []
        metrics.reserveCapacity(min(options.epochs, 10_000))
        var shuffleRNG = SplitMix64(seed: options.seed, stream: RandomStream.shuffle)
        var viewRNG = SplitMix64(seed: options.seed, stream: RandomStream.views)
        var lr = options.learningRate
        let n = train.count, k = train.views, b = options.batchSize

        train.values.withUnsafeBufferPointer { xs in
            train.labels.withUnsafeBufferPointer { ys in
                for epoch in 0..<options.epochs {
                    let epochStart = clock.now
                    if let order {
                        order(epoch, ws.perm)
                    } else if options.shuffle {
                        shuffleRNG.permutation(into: ws.perm)
                    } else {
                        for i in 0..<n { ws.perm[i] = i }
                    }
                    if k > 1 {
                        for i in 0..<n { ws.view[i] = viewRNG.next(below: k) }
                    }
                    var lossSum: Double = 0
                    var correct = 0
                    var s = 0
                    while s < n {
                        let e = min(s + b, n)
                        let r = ws.step(xs.baseAddress!, ys.baseAddress!, dimension: d, views: k,
                                        from: s, to: e, lr: lr, options: options)
                        lossSum += r.lossSum
                        correct += r.correct
                        s = e
                    }
                    var m = SGDEpochMetrics(epoch: epoch, learningRate: lr, trainLoss: lossSum / Double(n),
                                         trainAccuracy: Double(correct) / Double(n),
                                         validationLoss: nil, validationAccuracy: nil, seconds: 0)
                    // StepLR.step() after the training phase, as in the tutorial.
                    if options.stepSize > 0 && (epoch + 1) % options.stepSize == 0 { lr *= options.gamma }
                    if let validation, let valMatrix {
                        let (vl, va) = ws.evaluate(valMatrix, validation.labels, rows: validation.count,
                                                   dimension: d, logits: &valLogits)
                        m.validationLoss = vl
                        m.validationAccuracy = va
                        if va > bestAcc {
                            bestAcc = va
                            bestEpoch = epoch
                            ws.copyHead(into: &best)
                        }
                    }
                    m.seconds = (clock.now - epochStart).seconds
                    metrics.append(m)
                }
            }
        }
        var final = initial
        ws.copyHead(into: &final)
        return SGDResult(bestHead: validation == nil ? final : best, finalHead: final, initialHead: initial,
                         bestEpoch: bestEpoch, bestValidationAccuracy: validation == nil ? nil : bestAcc,
                         epochs: metrics, options: options, seconds: (clock.now - start).seconds)
    }
}

extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}

/// Preallocated state of one SGD run: parameters, momentum buffers, gradients, batch scratch.
final class SGDWorkspace {
    let classes: Int
    let dimension: Int
    let w: UnsafeMutablePointer<Float>      // classes x dimension
    let bias: UnsafeMutablePointer<Float>   // classes
    let bufW: UnsafeMutablePointer<Float>
    let bufB: UnsafeMutablePointer<Float>
    let gradW: UnsafeMutablePointer<Float>
    let gradB: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float> // batch x classes
    let rows: UnsafeMutablePointer<UnsafePointer<Float>> // batch
    let batchLabels: UnsafeMutablePointer<Int>           // batch
    let perm: UnsafeMutableBufferPointer<Int>
    let view: UnsafeMutableBufferPointer<Int>
    var hasMomentum = false
    /// Per-class loss weights (nil: unweighted), PyTorch's CrossEntropyLoss(weight=).
    var classWeights: [Float]?

    init(head: LinearHead, batchSize: Int, count: Int) {
        classes = head.classes
        dimension = head.dimension
        let p = classes * dimension
        w = .allocate(capacity: p); bias = .allocate(capacity: classes)
        bufW = .allocate(capacity: p); bufB = .allocate(capacity: classes)
        gradW = .allocate(capacity: p); gradB = .allocate(capacity: classes)
        let batchSize = max(1, min(batchSize, count))  // a batch never exceeds the split
        logits = .allocate(capacity: batchSize * classes)
        rows = .allocate(capacity: batchSize)
        batchLabels = .allocate(capacity: batchSize)
        batchLabels.initialize(repeating: 0, count: batchSize)
        perm = .allocate(capacity: count)
        view = .allocate(capacity: count)
        head.weight.withUnsafeBufferPointer { w.initialize(from: $0.baseAddress!, count: p) }
        head.bias.withUnsafeBufferPointer { bias.initialize(from: $0.baseAddress!, count: classes) }
        bufW.initialize(repeating: 0, count: p); bufB.initialize(repeating: 0, count: classes)
        gradW.initialize(repeating: 0, count: p); gradB.initialize(repeating: 0, count: classes)
        logits.initialize(repeating: 0, count: batchSize * classes)
        _ = perm.initialize(from: 0..<count)
        view.initialize(repeating: 0)
    }

    deinit {
        w.deallocate(); bias.deallocate(); bufW.deallocate(); bufB.deallocate()
        gradW.deallocate(); gradB.deallocate(); logits.deallocate(); rows.deallocate(); batchLabels.deallocate()
        perm.deallocate(); view.deallocate()
    }

    func copyHead(into head: inout LinearHead) {
        let p = classes * dimension
        head.weight.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: w, count: p) }
        head.bias.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: bias, count: classes) }
    }

    /// Forward + backward of the mean cross-entropy over `count` rows: fills gradW/gradB and
    /// returns the summed (not averaged) per-row losses and the number of correct argmaxes.
    @inline(__always)
    func forwardBackward(labels: UnsafePointer<Int>, count bsz: Int) -> (lossSum: Double, correct: Int) {
        let c = classes, d = dimension
        var lossSum: Double = 0
        var correct = 0
        var invB = 1 / Float(bsz)
        if let cw = classWeights {
            var total: Float = 0
            for s in 0..<bsz { total += cw[labels[s]] }
            invB = total > 0 ? 1 / total : 0
        }
        for s in 0..<bsz {
            let x = rows[s]
            let z = logits + s * c
            for j in 0..<c { z[j] = dot(w + j * d, x, d) + bias[j] }
            let y = labels[s]
            let (loss, am) = softmaxCrossEntropyRow(z, c, label: y)
            lossSum += Double(loss)
            if am == y { correct += 1 }
            // z now holds probabilities: turn them into dL/dlogits of the batch mean.
            let f = classWeights.map { $0[y] * invB } ?? invB
            for j in 0..<c { z[j] *= f }
            z[y] -= f
        }
        for j in 0..<c {
            let g = gradW + j * d
            var gb: Float = 0
            let a0 = logits[j]
            let x0 = rows[0]
            for i in 0..<d { g[i] = a0 * x0[i] }
            gb = a0
            for s in 1..<max(bsz, 1) {
                let a = logits[s * c + j]
                axpy(a, rows[s], g, d)
                gb += a
            }
            gradB[j] = gb
        }
        return (lossSum, correct)
    }

    /// One SGD step over the batch perm[from..<to]; returns the batch's summed loss and correct count.
    @inline(__always)
    func step(_ xs: UnsafePointer<Float>, _ ys: UnsafePointer<Int>, dimension d: Int, views k: Int,
              from: Int, to: Int, lr: Double, options: SGDOptions) -> (lossSum: Double, correct: Int) {
        let bsz = to - from
        for s in 0..<bsz {
            let i = perm[from + s]
            rows[s] = xs + (i * k + view[i]) * d
            batchLabels[s] = ys[i]
        }
        let r = forwardBackward(labels: batchLabels, count: bsz)
        apply(lr: Float(lr), momentum: Float(options.momentum), dampening: Float(options.dampening),
              weightDecay: Float(options.weightDecay), nesterov: options.nesterov)
        return r
    }

    /// torch.optim.SGD's update (NN's `SGDOptimizer.update`) over (w, gradW, bufW) and (bias, gradB, bufB).
    @inline(__always)
    func apply(lr: Float, momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool) {
        let first = !hasMomentum
        SGDOptimizer.update(params: w, grads: gradW, momentumBuffer: bufW, count: classes * dimension, lr: lr, momentum: momentum,
                            dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, first: first)
        SGDOptimizer.update(params: bias, grads: gradB, momentumBuffer: bufB, count: classes, lr: lr, momentum: momentum,
                            dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, first: first)
        hasMomentum = true
    }

    /// Mean cross-entropy and accuracy of the current weights over a rows x dimension matrix.
    func evaluate(_ matrix: [Float], _ labels: [Int], rows n: Int, dimension d: Int,
                  logits out: inout [Float]) -> (loss: Double, accuracy: Double) {
        let c = classes
        var lossSum: Double = 0
        var correct = 0
        matrix.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                let op = o.baseAddress!
                if c <= 8 {
                    // Few classes: hand dot products beat sgemm, which packs the whole matrix each call.
                    for r in 0..<n {
                        let xr = x.baseAddress! + r * d
                        for j in 0..<c { op[r * c + j] = dot(w + j * d, xr, d) + bias[j] }
                    }
                } else {
                    for r in 0..<n { for j in 0..<c { op[r * c + j] = bias[j] } }
                    sgemm(transA: false, transB: true, m: n, n: c, k: d, a: x.baseAddress!, lda: d,
                          b: UnsafePointer(w), ldb: d, beta: 1, c: op, ldc: c)
                }
                for r in 0..<n {
                    let (loss, am) = softmaxCrossEntropyRow(op + r * c, c, label: labels[r])
                    lossSum += Double(loss)
                    if am == labels[r] { correct += 1 }
                }
            }
        }
        return (lossSum / Double(n), Double(correct) / Double(n))
    }
}
