import Foundation

/// Splits `0..<count` into `workers` contiguous slices and runs `body(workerIndex, slice)` on each, in parallel
/// when `workers > 1` (GCD `concurrentPerform`). Slices are as even as possible; empty ones are skipped.
@inline(__always)
public func parallelSlices(_ count: Int, workers: Int, _ body: (_ worker: Int, _ slice: Range<Int>) -> Void) {
    let w = max(1, min(workers, count))
    if w <= 1 {
        if count > 0 { body(0, 0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The kernels hand disjoint slices of raw buffers to the workers; the box tells the
        // compiler what it cannot see: the closure is only used during this call.
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: w) { i in
            let lo = count * i / w, hi = count * (i + 1) / w
            if hi > lo { box.value(i, lo..<hi) }
        }
    }
}

/// The number of worker threads NN kernels use by default (both cores of the target machine).
public let defaultWorkerCount = 2

/// Wraps a value the compiler cannot prove Sendable (raw pointers to disjoint slices, closures
/// used only within a blocking parallel call).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
