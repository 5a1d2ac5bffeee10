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

/// Decodes and transforms the tensors of `items` into freshly allocated memory, on the calling thread
/// (extraction runs several of these in decoding threads, one batch each):
/// view 0 through the validation transform of `preprocessing` (resize, center crop, normalize),
/// view v > 0 through RandomResizedCrop(crop) + flip drawn from AugmentRNG(seed, epoch: v, content key).
/// An item's bytes are decoded from `data` when it has them, else read from `path`.
func prepare(_ items: [WorkItem], seed: UInt64, preprocessing: Preprocessing) -> PreparedBatch {
    var slots: [Int?] = []
    var next = 0
    for it in items { slots.append(next); next += it.views.count }
    let resize = preprocessing.resize, crop = preprocessing.crop
    let per = 3 * crop * crop
    let tensors = UnsafeMutablePointer<Float>.allocate(capacity: max(1, next * per))
    var errors = [VisionError?](repeating: nil, count: items.count)
    var sizes = [(width: Int, height: Int)?](repeating: nil, count: items.count)
    for (i, item) in items.enumerated() {
        let image: RGBImage
        do throws(VisionError) {
            if let data = item.data {
                image = try ImageDecoder.decode(data: data, name: item.path)
            } else {
                image = try ImageDecoder.decode(path: item.path)
            }
        } catch {
            errors[i] = error
            slots[i] = nil
            continue
        }
        sizes[i] = (image.width, image.height)
        var slot = slots[i]!
        for v in item.views {
            let out = tensors + slot * per
            if v == 0 {
                Transforms.validation(image, into: out, resize: resize, crop: crop)
            } else {
                var rng = AugmentRNG(seed: seed, epoch: v, index: contentKey(item.sha256))
                Transforms.training(image, rng: &rng, into: out, crop: RandomResizedCrop(size: crop))
            }
            slot += 1
        }
    }
    return PreparedBatch(items: items, slots: slots, errors: errors, sizes: sizes, tensors: tensors,
                         count: next, crop: crop)
}

/// The backbone's vectors of a prepared batch, `count * featureDimension` floats in slot order.
func forward(_ b: PreparedBatch, model: any Backbones.Backbone) -> [Float] {
    b.count > 0 ? model.features(batch: b.tensors, count: b.count, height: b.crop, width: b.crop) : []
}

/// The store's records of a batch that went through the backbone (`vectors` from `forward`): for each
/// item that decoded, its image and one feature per view; for each that did not, a failure per
/// path that holds its bytes (each reported under its own path), and its samples left out.
func records(of b: PreparedBatch, vectors: [Float], dimension d: Int) -> Batch {
    var batch = Batch()
    for (i, item) in b.items.enumerated() {
        guard let slot = b.slots[i], let size = b.sizes[i] else {
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
            batch.features.append(FeatureRecord(sha256: item.sha256,
                                                transform: v == 0 ? validationTransform : augmentedTransform,
                                                view: v, vector: Array(vectors[(row * d)..<((row + 1) * d)])))
        }
    }
    return batch
}

/// An image given by its bytes (already read, e.g. to hash them).
public struct ImageBytes: Sendable {
    /// How errors name it (its path).
    public var name: String
    public var sha256: String
    public var data: Data
    public init(name: String, sha256: String, data: Data) { self.name = name; self.sha256 = sha256; self.data = data }
}

/// View 0 of images given by their bytes, computed by extraction's own code (`prepare`, `forward`,
/// `records`): decoded, resized and center-cropped as `preprocessing` says (the registry's
/// `Architecture.preprocessing(weightsSHA256:)`), normalized, through `model`. Returns one image
/// record and one feature record (transform `validationTransform`, view 0) per image, in the order
/// given, with no sample rows: ready for `FeatureStore.insertBatch`. Each image goes through the
/// backbone alone, so its vector is the one `extract` stores for the same bytes. Throws the
/// decoding error of the first image that cannot be decoded, under its name.
public func computeValidationFeatures(_ images: [ImageBytes], model: any Backbones.Backbone,
                                      preprocessing: Preprocessing) throws -> Batch {
    let items = images.map {
        WorkItem(sha256: $0.sha256, path: $0.name, byteSize: $0.data.count, views: [0], samples: [], data: $0.data)
    }
    let prepared = prepare(items, seed: 0, preprocessing: preprocessing)
    defer { prepared.tensors.deallocate() }
    if let i = items.indices.first(where: { prepared.errors[$0] != nil }), let error = prepared.errors[i] {
        throw error.at(path: items[i].path)
    }
    return records(of: prepared, vectors: forward(prepared, model: model), dimension: model.featureDimension)
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
    let allBatches = batches
    for d in 0..<decoders {
        let channel = channels[d]
        let producer = Thread {
            lowerThreadPriority()
            for b in stride(from: d, to: allBatches.count, by: decoders) {
                if channel.isCancelled { break }
                let prepared = prepare(allBatches[b], seed: seed, preprocessing: preprocessing)
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
        let batch = records(of: b, vectors: forward(b, model: model), dimension: model.featureDimension)
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
