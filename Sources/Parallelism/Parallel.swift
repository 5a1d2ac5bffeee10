import Foundation
import Synchronization

/// Splits `0..<count` into `workers` contiguous slices and runs `body(workerIndex, slice)` on each, in parallel
/// when `workers > 1`. Slices are as even as possible; empty ones are skipped. Worker 0 is the calling thread.
///
/// The other workers are the threads of `SpinPool` (they wait for work spinning, then asleep), or GCD's
/// `concurrentPerform` when the pool is in use (a nested or concurrent call) or unavailable. GCD alone
/// wakes a sleeping thread for every call: for bodies of 10-100 µs, which most layers of a network at
/// batch 4 are, two workers took as long as one (measured here).
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
        let run: (Int) -> Void = { i in
            let lo = count * i / w, hi = count * (i + 1) / w
            if hi > lo { box.value(i, lo..<hi) }
        }
        if #available(macOS 15, *), let pool = SpinPool.shared, pool.run(workers: w, run) { return }
        let job = UncheckedSendable(run)
        DispatchQueue.concurrentPerform(iterations: w) { job.value($0) }
    }
}

/// The number of worker threads NN kernels, finetuning and extraction use by default:
/// `ThreadCount.workers` (the CPUs this process may use, `PROBE_THREADS`, or `--threads`).
public var defaultWorkerCount: Int { ThreadCount.workers }

/// Wraps a value the compiler cannot prove Sendable (raw pointers to disjoint slices, closures
/// used only within a blocking parallel call).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// Helper threads for `parallelSlices`: each waits for the next job by spinning on an atomic
/// generation counter for a short while (a network's layers follow each other within microseconds),
/// then sleeps on a semaphore until the next job wakes it. One caller at a time: `run` returns false
/// when the pool is busy, and the caller falls back to GCD.
@available(macOS 15, *)
final class SpinPool: @unchecked Sendable {
    /// Helpers for `defaultWorkerCount` workers as it is at the first parallel call (nil when that is 1),
    /// at most 63 (one bit each in `sleeping`). A call with more workers than that falls back to GCD.
    static let shared: SpinPool? = {
        let workers = min(defaultWorkerCount, Int.bitWidth)
        return workers > 1 ? SpinPool(helpers: workers - 1) : nil
    }()

    /// Spins before a helper goes to sleep (100,000 atomic loads: 0.1-0.2 ms here).
    private static let spinLimit = 100_000

    private let helpers: Int
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    /// Workers of the current job (written before `generation` is bumped).
    private let jobWorkers = Atomic<Int>(0)
    /// Bit h set: helper h is asleep (or about to be) on wake[h].
    private let sleeping = Atomic<Int>(0)
    private let wake: [DispatchSemaphore]
    /// The current job, written before `generation` is bumped and read after it is seen.
    private let job = UnsafeMutablePointer<((Int) -> Void)?>.allocate(capacity: 1)

    private init(helpers: Int) {
        precondition(helpers < Int.bitWidth)
        self.helpers = helpers
        wake = (0..<helpers).map { _ in DispatchSemaphore(value: 0) }
        job.initialize(to: nil)
        for h in 0..<helpers {
            let thread = Thread { [unowned self] in self.helperLoop(h) }
            thread.name = "probe-worker-\(h + 1)"
            thread.start()
        }
    }

    /// Runs `body(i)` for i in 0..<workers, 0 on the calling thread; false (nothing run) when the
    /// pool is busy or `workers` exceeds its helpers + 1. Every helper sees every job (so none can
    /// miss one); helpers beyond `workers - 1` only acknowledge it.
    func run(workers: Int, _ body: @escaping (Int) -> Void) -> Bool {
        guard workers <= helpers + 1,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        job.pointee = body
        jobWorkers.store(workers, ordering: .relaxed)
        pending.store(helpers, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        let asleep = sleeping.exchange(0, ordering: .sequentiallyConsistent)
        if asleep != 0 { for h in 0..<helpers where asleep & (1 << h) != 0 { wake[h].signal() } }
        body(0)
        var spins = 0
        while pending.load(ordering: .acquiring) != 0 {
            spins += 1
            if spins > SpinPool.spinLimit { sched_yield() }
        }
        job.pointee = nil
        busy.store(false, ordering: .releasing)
        return true
    }

    private func helperLoop(_ h: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins > SpinPool.spinLimit {
                    // announce, re-check, sleep (a job posted after the announcement signals us)
                    sleeping.bitwiseOr(1 << h, ordering: .sequentiallyConsistent)
                    if generation.load(ordering: .sequentiallyConsistent) == seen {
                        wake[h].wait()
                    }
                    sleeping.bitwiseAnd(~(1 << h), ordering: .sequentiallyConsistent)
                    spins = 0
                }
            }
            seen = generation.load(ordering: .acquiring)
            if h + 1 < jobWorkers.load(ordering: .relaxed) { job.pointee?(h + 1) }
            pending.subtract(1, ordering: .releasing)
        }
    }
}
