import Foundation
import Vision

/// One batch of images ready for the network: NCHW float32, labels, and the samples that failed
/// to decode (dropped from the batch).
public struct LoadedBatch: @unchecked Sendable {
    public var images: [Float]
    public var labels: [Int]
    public var indices: [Int]
    public var failures: [(path: String, reason: String)]
}

/// Streams batches from disk on a background thread, `depth` batches ahead of the consumer, so
/// decoding and augmentation overlap the network's compute. The batches' contents depend only on
/// (order, transform), never on timing.
public final class BatchLoader: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [Int: LoadedBatch] = [:]
    private var nextToProduce = 0
    private var nextToConsume = 0
    private var cancelled = false
    private var finishedThreads = 0
    let batchCount: Int
    private let depth: Int
    private let threads: Int

    /// `order`: sample indices in visiting order; `transform(sample, slot)` decodes and writes
    /// 3*H*W floats at `slot` (throws a description on failure).
    public init(order: [Int], samples: [ImageFolder.Sample], batchSize: Int, imageFloats: Int, depth: Int = 3, threads: Int = 1,
         transform: @escaping @Sendable (_ index: Int, _ image: RGBImage, _ into: UnsafeMutablePointer<Float>) -> Void) {
        let bs = max(1, batchSize)
        batchCount = (order.count + bs - 1) / bs
        self.depth = max(1, depth)
        self.threads = max(1, threads)
        for t in 0..<self.threads {
            let thread = Thread { [self] in
                self.produce(worker: t, order: order, samples: samples, batchSize: bs, imageFloats: imageFloats, transform: transform)
            }
            thread.name = "probe-finetune-loader-\(t)"
            thread.start()
        }
    }

    private func produce(worker: Int, order: [Int], samples: [ImageFolder.Sample], batchSize bs: Int, imageFloats: Int,
                         transform: (Int, RGBImage, UnsafeMutablePointer<Float>) -> Void) {
        while true {
            condition.lock()
            while !cancelled && nextToProduce < batchCount && nextToProduce - nextToConsume >= depth { condition.wait() }
            if cancelled || nextToProduce >= batchCount {
                finishedThreads += 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let b = nextToProduce
            nextToProduce += 1
            condition.unlock()

            let lo = b * bs, hi = min(order.count, lo + bs)
            var batch = LoadedBatch(images: [Float](repeating: 0, count: (hi - lo) * imageFloats), labels: [], indices: [], failures: [])
            var slot = 0
            for k in lo..<hi {
                let idx = order[k]
                let s = samples[idx]
                do {
                    let img = try ImageDecoder.decode(path: s.path)
                    batch.images.withUnsafeMutableBufferPointer { transform(idx, img, $0.baseAddress! + slot * imageFloats) }
                    batch.labels.append(s.label)
                    batch.indices.append(idx)
                    slot += 1
                } catch {
                    batch.failures.append((s.path, error.description))
                }
            }
            batch.images.removeLast((hi - lo - slot) * imageFloats)
            condition.lock()
            ready[b] = batch
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next batch in order, or nil after the last.
    public func next() -> LoadedBatch? {
        condition.lock()
        defer { condition.unlock() }
        guard nextToConsume < batchCount else { return nil }
        while ready[nextToConsume] == nil && !cancelled { condition.wait() }
        guard let b = ready.removeValue(forKey: nextToConsume) else { return nil }
        nextToConsume += 1
        condition.broadcast()
        return b
    }

    /// Stops the producers (after their current batch) and waits for them.
    public func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while finishedThreads < threads { condition.wait() }
        condition.unlock()
    }

    deinit {}
}
