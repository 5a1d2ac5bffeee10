import Foundation
import Backbones
import NN
import Vision
import Weights
import Finetune
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Parallelism

/// Timing of training steps (one row of `probe bench finetune`).
public struct FinetuneBenchmarkRow: Sendable {
    public var architecture: Architecture
    public var batch: Int
    public var steps: Int
    /// Median / mean wall time of a whole step (waiting for the loader, forward, loss, backward, SGD).
    public var medianStepMs: Double
    public var meanStepMs: Double
    /// Medians of the parts of a step.
    public var medianForwardMs: Double
    public var medianBackwardMs: Double
    public var medianWaitMs: Double
    public var peakRSSBytes: Int
    /// Process CPU time (all threads, loader included) per timed step.
    public var cpuMsPerStep: Double = 0
    /// Seconds per layer kind over the timed steps (forward/backward), when profiled.
    public var profile: [String: Double] = [:]
    public var line: String {
        String(format: "%-13@ %5d %6d   %9.1f %9.1f   %8.1f %9.1f %7.1f   %8.0f   %7.1f", architecture.name as NSString, batch, steps,
               medianStepMs, meanStepMs, medianForwardMs, medianBackwardMs, medianWaitMs, Double(peakRSSBytes) / 1048576, cpuMsPerStep)
    }
    public static let header = "model         batch  steps   median ms   mean ms   fwd ms    bwd ms   wait ms   peak RSS MB   CPU ms"
}

/// Times `steps` training steps (after `warmup` untimed ones) of full finetuning at batch `batch`
/// over the training images of `root` (RandomResizedCrop + flip streamed from disk by the loader
/// thread, like `finetune`). Weights: `weightsPath` or a random initialisation (same cost).
public func runFinetuneBenchmark(architecture: Architecture, root: String, weightsPath: String?, batch: Int,
                                 steps: Int, warmup: Int = 3, workers: Int = defaultWorkerCount, profile: Bool = false,
                                 winograd: Bool = true) throws -> FinetuneBenchmarkRow {
    let layout: DatasetLayout
    do { layout = try DatasetLayout.detect(root: root) } catch { throw FinetuneError.dataset(error.description) }
    let train = layout.train
    let weights = try weightsPath.map { try loadStateDict(path: $0) }
    let net = try TrainableNetwork(architecture: architecture, classes: train.classes.count, weights: weights, maxBatch: batch)
    net.workers = workers
    net.winograd = winograd
    var sgd = SGDOptimizer(parameterCount: net.parameters.count, momentum: 0.9)
    let total = steps + warmup
    var order: [Int] = []
    var e = 0
    while order.count < total * batch { order += shuffledOrder(count: train.samples.count, seed: 0, epoch: e); e += 1 }
    order = Array(order.prefix(total * batch))
    let loader = BatchLoader(order: order, samples: train.samples, batchSize: batch, imageFloats: 3 * 224 * 224) { index, img, out in
        var rng = AugmentRNG(seed: 0, epoch: 0, index: index)
        Transforms.training(img, rng: &rng, into: out)
    }
    var cpuStart = 0.0
    var stepMs: [Double] = [], fwd: [Double] = [], bwd: [Double] = [], wait: [Double] = []
    for s in 0..<total {
        if s == warmup { cpuStart = processCPUSeconds() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        guard let b = loader.next() else { break }
        let t1 = DispatchTime.now().uptimeNanoseconds
        let n = b.labels.count
        if n == 0 { continue }
        net.profiling = profile && s >= warmup
        b.images.withUnsafeBufferPointer { _ = net.forward(input: $0.baseAddress!, count: n, training: true, dropoutRNG: AugmentRNG(seed: 1, epoch: 0, index: s)) }
        let t2 = DispatchTime.now().uptimeNanoseconds
        net.lossAndBackward(labels: b.labels)
        net.parameters.withUnsafeMutableBufferPointer { p in
            net.gradients.withUnsafeBufferPointer { g in sgd.step(params: p.baseAddress!, grads: g.baseAddress!, count: p.count, lr: 0.001) }
        }
        let t3 = DispatchTime.now().uptimeNanoseconds
        if s >= warmup {
            stepMs.append(Double(t3 - t0) / 1e6)
            wait.append(Double(t1 - t0) / 1e6)
            fwd.append(Double(t2 - t1) / 1e6)
            bwd.append(Double(t3 - t2) / 1e6)
        }
    }
    let cpu = processCPUSeconds() - cpuStart
    loader.cancel()
    func median(_ a: [Double]) -> Double { a.isEmpty ? 0 : a.sorted()[a.count / 2] }
    return FinetuneBenchmarkRow(architecture: architecture, batch: batch, steps: stepMs.count,
                                medianStepMs: median(stepMs), meanStepMs: stepMs.reduce(0, +) / Double(max(1, stepMs.count)),
                                medianForwardMs: median(fwd), medianBackwardMs: median(bwd), medianWaitMs: median(wait),
                                peakRSSBytes: peakResidentBytes(), cpuMsPerStep: cpu * 1000 / Double(max(1, stepMs.count)), profile: net.profile)
}

