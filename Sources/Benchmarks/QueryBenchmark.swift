import Digest
import Foundation
import NN
import Store
import Neighbors
import Reproducible
import Parallelism

/// Fills a store with `count` synthetic images of `dimension`-d float32 features (one backbone
/// "synthetic", view 0), in batches of `batchSize` through `insertBatch`. Returns the backbone.
@discardableResult
public func buildSyntheticStore(path: String, count: Int, dimension: Int, batchSize: Int = 10_000,
                                progress: ((Int) -> Void)? = nil) throws -> StoredBackbone {
    var tGen = 0.0, tInsert = 0.0
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    defer { if ProcessInfo.processInfo.environment["PROBE_BENCH_VERBOSE"] != nil { print("generate \(tGen) s, insertBatch \(tInsert) s") } }
    // A fixture, not a store that must survive a crash: a rollback journal writes appended pages
    // once (WAL writes them twice: log, then checkpoint) and no fsync. WAL is switched on at the end.
    var options = Database.Options()
    options.wal = false
    let store = try FeatureStore(path: path, options: options)
    try store.database.execute("PRAGMA synchronous = OFF")
    let weights = SHA256.hex(Array("synthetic-\(dimension)".utf8))
    let backbone = try store.backbone(architecture: "synthetic", weightsSHA256: weights, dimension: dimension)
    var rng = SplitMix64(seed: 42)
    var done = 0
    while done < count {
        let n = min(batchSize, count - done)
        var t0 = now()
        var batch = Batch()
        batch.images.reserveCapacity(n); batch.samples.reserveCapacity(n); batch.features.reserveCapacity(n)
        for i in done..<(done + n) {
            let sha = SHA256.hex(Array("synthetic image \(i)".utf8))
            let label = "class\(i % 10)"
            let split = i % 5 == 0 ? "val" : "train"
            var v = [Float](repeating: 0, count: dimension)
            for j in 0..<dimension { v[j] = rng.nextFloat() - 0.25 }
            batch.images.append(ImageRecord(sha256: sha, width: 224, height: 224, byteSize: 1000 + i % 1000))
            batch.samples.append(SampleRecord(path: "\(split)/\(label)/\(i).jpg", sha256: sha, label: label, split: split))
            batch.features.append(FeatureRecord(sha256: sha, transform: "val", view: 0, vector: v))
        }
        tGen += now() - t0
        t0 = now()
        try store.insertBatch(batch, backbone: backbone)
        tInsert += now() - t0
        done += n
        progress?(done)
    }
    _ = try store.database.scalarText("PRAGMA journal_mode = WAL")
    return backbone
}

/// The nearest-neighbour benchmark of issue 5: over `count` synthetic `dimension`-d vectors in a
/// store, the time to load them into an index, one top-`k` query, and `queries` queries at once.
/// The store is built first when `path` is nil (in a temporary directory, removed afterwards) or
/// when the file at `path` does not exist (kept). Returns a printable report; asserts nothing.
public func runQueryBenchmark(count: Int = 1_000_000, dimension: Int = 512, queries: Int = 1000, k: Int = 10,
                              path: String? = nil, log: ((String) -> Void)? = nil) throws -> String {
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    var lines: [String] = []
    func say(_ s: String) { lines.append(s); log?(s) }
    var tempDir: URL?
    let storePath: String
    if let path { storePath = path } else {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("probe-query-bench-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        tempDir = dir
        storePath = dir.appendingPathComponent("synthetic.sqlite").path
    }
    defer { if let tempDir { try? FileManager.default.removeItem(at: tempDir) } }

    say("query benchmark: \(count) synthetic \(dimension)-d float32 vectors, top-\(k), \(ThreadCount.workersDescription)")
    if !FileManager.default.fileExists(atPath: storePath) {
        let t0 = now(), c0 = processCPUSeconds()
        try buildSyntheticStore(path: storePath, count: count, dimension: dimension)
        let t = now() - t0
        say(String(format: "  build store      %8.2f s   (cpu %.2f s; %.0f rows/s; insertBatch of 10000 rows per transaction)", t, processCPUSeconds() - c0, Double(count) / t))
    }
    let store = try FeatureStore(path: storePath)
    let weights = SHA256.hex(Array("synthetic-\(dimension)".utf8))
    guard let backbone = try store.findBackbone(architecture: "synthetic", weightsSHA256: weights) else {
        throw StoreError.notFound("the synthetic backbone in \(storePath); delete the file to rebuild it")
    }
    let size = FeatureStore.bytesOnDisk(path: storePath)
    say(String(format: "  store size       %8.2f GB  (%@)", Double(size) / 1e9, storePath))

    var t0 = now()
    var c0 = processCPUSeconds()
    let index = try store.loadIndex(backbone: backbone)
    let tLoad = now() - t0
    say(String(format: "  load index       %8.2f s   (cpu %.2f s; %d rows; goal <= 5 s)", tLoad, processCPUSeconds() - c0, index.count))
    guard index.count > 0 else { return lines.joined(separator: "\n") }
    // Diagnostic: the cost of fresh memory for a matrix of this size (first touch; in a VM this
    // can dominate loading): measured after loading, on a second matrix of the same size.
    let bytes = index.count * dimension * 4
    if let probe = malloc(bytes)?.assumingMemoryBound(to: Float.self) {
        t0 = now()
        memset(probe, 0, bytes)
        let tFirst = now() - t0
        t0 = now()
        memset(probe, 0x3F, bytes)
        let tSecond = now() - t0
        if opaqueRead(probe, index.count * dimension) == 12345 { say("") }
        free(probe)
        say(String(format: "  (memory: writing %@ of fresh (malloc) memory takes %.2f s, rewriting it %.2f s: %.1f GB/s)",
                   String(format: "%.2f GB", Double(bytes) / 1e9), tFirst, tSecond, Double(bytes) / tSecond / 1e9))
    }

    // One query: a stored vector plus noise; report the median of 5 and the first.
    var rng = SplitMix64(seed: 7)
    var single: [Double] = [], singleCPU: [Double] = []
    var selfHits = 0
    for trial in 0..<5 {
        let r = Int(rng.next() % UInt64(index.count))
        var q = index.row(r)
        for j in 0..<q.count { q[j] += 0.001 * (rng.nextFloat() - 0.5) }
        t0 = now()
        c0 = processCPUSeconds()
        let res = try index.search(q, k: k)
        single.append(now() - t0)
        singleCPU.append(processCPUSeconds() - c0)
        if res.first?.row == r { selfHits += 1 }
        _ = trial
    }
    let sortedSingle = single.sorted()
    say(String(format: "  1 query top-%d   %8.3f s   (median of 5; min %.3f, max %.3f; cpu median %.3f s; goal <= 0.25 s; %d/5 found themselves)",
               k, sortedSingle[2], sortedSingle[0], sortedSingle[4], singleCPU.sorted()[2], selfHits))

    let m = min(queries, index.count)
    var batch = [Float]()
    batch.reserveCapacity(m * dimension)
    var picks: [Int] = []
    for _ in 0..<m {
        let r = Int(rng.next() % UInt64(index.count))
        picks.append(r)
        batch.append(contentsOf: index.row(r))
    }
    t0 = now()
    c0 = processCPUSeconds()
    let res = try index.search(queries: batch, k: k)
    let tMany = now() - t0
    let cMany = processCPUSeconds() - c0
    let found = zip(res, picks).filter { $0.0.first?.row == $0.1 || $0.0.first?.score == 1 }.count
    say(String(format: "  %d queries top-%d %7.2f s   (cpu %.2f s; %.1f ms/query; goal <= 10 s; %d/%d found themselves)",
               m, k, tMany, cMany, tMany * 1000 / Double(m), found, m))
    // Diagnostic: the matrix products alone (same blocks, no selection).
    t0 = now()
    c0 = processCPUSeconds()
    index.scoreOnly(queries: batch)
    let tGemm = now() - t0
    say(String(format: "    of which sgemm ~%6.2f s   (cpu %.2f s; %.0f GFLOP/s)", tGemm, processCPUSeconds() - c0,
               2.0 * Double(m) * Double(index.count) * Double(dimension) / tGemm / 1e9))
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "?"
    say("  (wall times depend on other processes: load average \(load), \(ProcessInfo.processInfo.activeProcessorCount) cores)")
    return lines.joined(separator: "\n")
}

/// Reads memory in a way the optimiser cannot see through (keeps benchmark stores alive).
@_optimize(none)
func opaqueRead(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float { n > 0 ? p[n / 2] : 0 }
