import Foundation
import NN
#if canImport(Glibc)
import Glibc
#endif
import Vision
import Store
import Backbones
import Parallelism

/// A bounded hand-over of prepared batches from the decoding thread to the backbone's.
final class BatchChannel: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [PreparedBatch] = []
    private var finished = false
    private var cancelled = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Blocks while full; returns false when the consumer has cancelled.
    func put(_ b: PreparedBatch) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while queue.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(b)
        condition.broadcast()
        return true
    }

    func finish() {
        condition.lock(); finished = true; condition.broadcast(); condition.unlock()
    }

    func cancel() {
        condition.lock(); cancelled = true; condition.broadcast(); condition.unlock()
    }

    var isCancelled: Bool { condition.lock(); defer { condition.unlock() }; return cancelled }

    /// The next batch, or nil when the producer is done.
    func take() -> PreparedBatch? {
        condition.lock(); defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        if queue.isEmpty { return nil }
        let b = queue.removeFirst()
        condition.broadcast()
        return b
    }
}

/// The 64-bit content key of an image (the first 16 hex digits of its sha256): the augmentation
/// stream of view v is AugmentRNG(seed, epoch: v, index: key), independent of scan order.
func contentKey(_ sha256: String) -> Int {
    Int(bitPattern: UInt(UInt64(sha256.prefix(16), radix: 16) ?? 0))
}

/// Decodes and transforms the tensors of `items` into freshly allocated memory, on `threads` threads.
func prepare(_ items: [WorkItem], seed: UInt64, resize: Int, threads: Int) -> PreparedBatch {
    var slots: [Int?] = []
    var next = 0
    for it in items { slots.append(next); next += it.views.count }
    let per = 3 * 224 * 224
    let tensors = UnsafeMutablePointer<Float>.allocate(capacity: max(1, next * per))
    final class Results: @unchecked Sendable {
        var errors: [VisionError?]
        var sizes: [(width: Int, height: Int)?]
        init(_ n: Int) { errors = Array(repeating: nil, count: n); sizes = Array(repeating: nil, count: n) }
    }
    let results = Results(items.count)
    nonisolated(unsafe) let base = tensors
    let slotsCopy = slots
    let decodeOne: @Sendable (Int) -> Void = { i in
        let item = items[i]
        let image: RGBImage
        do throws(VisionError) { image = try ImageDecoder.decode(path: item.path) } catch {
            results.errors[i] = error
            return
        }
        results.sizes[i] = (image.width, image.height)
        var slot = slotsCopy[i]!
        for v in item.views {
            let out = base + slot * per
            if v == 0 {
                Transforms.validation(image, into: out, resize: resize)
            } else {
                var rng = AugmentRNG(seed: seed, epoch: v, index: contentKey(item.sha256))
                Transforms.training(image, rng: &rng, into: out)
            }
            slot += 1
        }
    }
    if threads > 1 {
        DispatchQueue.concurrentPerform(iterations: items.count) { decodeOne($0) }
    } else {
        for i in items.indices { decodeOne(i) }
    }
    for i in items.indices where results.errors[i] != nil { slots[i] = nil }
    return PreparedBatch(items: items, slots: slots, errors: results.errors, sizes: results.sizes, tensors: tensors, count: next)
}


/// Lowers the calling thread's scheduling priority (nice 10 on Linux; background QoS elsewhere).
func lowerThreadPriority() {
    #if os(Linux)
    // On Linux the nice value belongs to the thread: who = 0 is the calling thread.
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    #else
    Thread.current.qualityOfService = .utility
    #endif
}

struct ComputeResult {
    var computedFiles = 0
    var vectors = 0
    var savedBytes = 0
    var failures: [FailureRecord] = []
}

/// Runs the backbone over `work` in batches, a decoding thread one batch ahead, and commits each
/// batch (images, samples, features, failures) in one transaction.
func computeFeatures(_ work: [WorkItem], model: any Backbone, store: FeatureStore, backbone: StoredBackbone,
                     preprocessing: Preprocessing, options: ExtractOptions, progress: ExtractProgress?) throws -> ComputeResult {
    // Batches: consecutive items whose tensors fit in batchSize (an item with more views alone).
    var batches: [[WorkItem]] = []
    var current: [WorkItem] = []
    var tensors = 0
    for item in work {
        if !current.isEmpty && tensors + item.views.count > options.batchSize {
            batches.append(current); current = []; tensors = 0
        }
        current.append(item); tensors += item.views.count
    }
    if !current.isEmpty { batches.append(current) }

    // Decoding threads, each preparing every D-th batch into its own channel one batch ahead; the
    // backbone takes the batches in order from channel b % D. They run at a lower priority and yield
    // to the backbone's workers: they fill idle moments, and run at full speed when the backbone
    // waits for them.
    let decoders = min(max(1, batches.count), ThreadCount.decoders(workers: options.workers))
    let channels = (0..<decoders).map { _ in BatchChannel(capacity: 1) }
    let seed = options.seed
    let resize = preprocessing.resize
    let allBatches = batches
    for d in 0..<decoders {
        let channel = channels[d]
        let producer = Thread {
            lowerThreadPriority()
            for b in stride(from: d, to: allBatches.count, by: decoders) {
                if channel.isCancelled { break }
                let prepared = prepare(allBatches[b], seed: seed, resize: resize, threads: 1)
                if !channel.put(prepared) { prepared.tensors.deallocate(); break }
            }
            channel.finish()
        }
        producer.stackSize = 4 << 20
        producer.start()
    }
    defer {
        for channel in channels {
            channel.cancel()
            while let b = channel.take() { b.tensors.deallocate() }
        }
    }

    var result = ComputeResult()
    var done = 0
    let total = work.count
    progress?(0, total)
    var index = 0
    while let b = channels[index % decoders].take() {
        index += 1
        defer { b.tensors.deallocate() }
        let vectors = b.count > 0 ? model.features(batch: b.tensors, count: b.count) : []
        let d = model.featureDimension
        var batch = Batch()
        for (i, item) in b.items.enumerated() {
            guard let slot = b.slots[i], let size = b.sizes[i] else {
                // Every path with these bytes fails alike, each reported under its own path.
                for s in item.samples {
                    let reason = b.errors[i].map { $0.at(path: s.path).description } ?? "unknown decoding error"
                    batch.failures.append(FailureRecord(path: s.path, sha256: item.sha256, reason: reason))
                }
                continue
            }
            batch.images.append(ImageRecord(sha256: item.sha256, width: size.width, height: size.height, byteSize: item.byteSize))
            batch.samples += item.samples
            for (j, v) in item.views.enumerated() {
                let row = slot + j
                let vec = Array(vectors[(row * d)..<((row + 1) * d)])
                batch.features.append(FeatureRecord(sha256: item.sha256,
                                                    transform: v == 0 ? validationTransform : augmentedTransform,
                                                    view: v, vector: vec))
            }
        }
        let r = try store.insertBatch(batch, backbone: backbone, dtype: options.dtype)
        result.vectors += r.features
        result.savedBytes += r.bytesSavedByF16
        result.failures += batch.failures
        result.computedFiles += batch.samples.count
        done += b.items.count
        progress?(done, total)
    }
    return result
}
