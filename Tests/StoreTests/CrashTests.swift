import Foundation
import Testing
@testable import Store
import TestSupport

private let crashChildPath = ProcessInfo.processInfo.environment["PROBE_STORE_CRASH_CHILD"]
private let crashBatch = 50, crashDim = 256

private func crashBatchNumber(_ k: Int) -> Batch { sampleBatch(k * crashBatch..<(k + 1) * crashBatch, d: crashDim, views: 1) }

/// Not a test on its own: the child process of `killedWriterLeavesWholeBatches`, which writes
/// batches until it is killed.
@Test(.enabled(if: crashChildPath != nil, "child process of killedWriterLeavesWholeBatches"))
func crashWriterChild() throws {
    let store = try FeatureStore(path: crashChildPath!)
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: crashDim)
    for k in 0..<2000 { try store.insertBatch(crashBatchNumber(k), backbone: b) }
}

/// A writer process killed with SIGKILL at a random moment leaves a sound store holding whole
/// batches only; resuming gives the same content as an uninterrupted run.
@Test(.enabled(if: crashChildPath == nil && canSpawnTestChild, "needs to re-run the test executable as a child (Linux)"))
func killedWriterLeavesWholeBatches() throws {
    let dir = try TempDir()
    let path = dir.file("crash.sqlite")
    let child = try spawnTestChild(filter: "crashWriterChild", environment: ["PROBE_STORE_CRASH_CHILD": path])
    // Wait until a few batches are committed, then kill at a pseudo-random moment.
    let deadline = Date().addingTimeInterval(120)
    var committed = 0
    while Date() < deadline && child.isRunning {
        if FileManager.default.fileExists(atPath: path), let s = try? FeatureStore(path: path, readOnly: true) {
            committed = Int((try? s.database.scalarInt("SELECT count(*) FROM samples")) ?? 0)
            if committed >= 3 * crashBatch { break }
        }
        usleep(20_000)
    }
    usleep(UInt32.random(in: 0..<200_000))
    kill(child.processIdentifier, SIGKILL)
    child.waitUntilExit()
    #expect(committed >= 3 * crashBatch, "the child wrote \(committed) samples before the deadline")

    let store = try FeatureStore(path: path)
    #expect(try store.integrityProblems().isEmpty)
    let samples = try count(store, "samples"), features = try count(store, "features")
    #expect(samples % crashBatch == 0)
    #expect(features == 2 * samples)
    let done = samples / crashBatch
    print("killed writer: \(done) whole batches survived (child still running when killed: \(child.terminationReason == .uncaughtSignal))")
    #expect(child.terminationReason == .uncaughtSignal)
    // Identical to an uninterrupted run of the same batches...
    let reference = try FeatureStore(path: dir.file("reference.sqlite"))
    let rb = try reference.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: crashDim)
    for k in 0..<done { try reference.insertBatch(crashBatchNumber(k), backbone: rb) }
    #expect(try store.canonicalDigest() == reference.canonicalDigest())
    // ... and after resuming (missing features only), identical to an uninterrupted longer run.
    let b = try #require(try store.backbones().first)
    for k in done..<(done + 2) {
        var batch = crashBatchNumber(k)
        let missing = Set(try store.missingFeatures(backbone: b, keys: batch.features.map(\.key)))
        batch.features = batch.features.filter { missing.contains($0.key) }
        try store.insertBatch(batch, backbone: b)
        try reference.insertBatch(crashBatchNumber(k), backbone: rb)
    }
    #expect(try store.canonicalDigest() == reference.canonicalDigest())
    // Same insertion order, so even the ids agree.
    let ids = { (s: FeatureStore) in try s.database.query("SELECT id, sha256 FROM images ORDER BY id") { "\($0.int64(0)) \($0.string(1)!)" } }
    #expect(try ids(store) == ids(reference))
}
