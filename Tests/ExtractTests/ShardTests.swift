import Foundation
import Backbones
#if canImport(Glibc)
import Glibc
#endif
import Testing
import Digest
import Store
@testable import Extract
import TestSupport

/// Which shard an image belongs to, and where i and n come from.
@Suite struct ShardSpecTests {
    @Test func shardIsTheLeading64BitsOfTheDigestModN() throws {
        var counts = [Int](repeating: 0, count: 4)
        for k in 0..<4000 {
            let hex = SHA256.hex(Array("image \(k)".utf8))
            let expected = Int(UInt64(hex.prefix(16), radix: 16)! % 4)
            #expect(ShardSpec.shard(ofSHA256Hex: hex, count: 4) == expected)
            counts[expected] += 1
        }
        // Uniform enough: every shard within 10% of 1000.
        #expect(counts.allSatisfy { abs($0 - 1000) < 100 }, "\(counts)")
        #expect(ShardSpec.shard(ofSHA256Hex: String(repeating: "f", count: 64), count: 7) == Int(UInt64.max % 7))
    }

    @Test func fromOptionsAndEnvironment() throws {
        #expect(try ShardSpec.resolve(explicit: "2/4", shards: nil, environment: [:]) == ShardSpec(index: 2, count: 4))
        #expect(try ShardSpec.resolve(explicit: nil, shards: nil, environment: [:]) == nil)
        let slurm = try #require(try ShardSpec.resolve(explicit: nil, shards: nil,
                                                       environment: ["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"]))
        #expect(slurm.index == 3 && slurm.count == 4 && slurm.source.contains("SLURM_ARRAY_TASK_ID"))
        // An array 1-4: the index counts from SLURM_ARRAY_TASK_MIN.
        let fromOne = try #require(try ShardSpec.resolve(explicit: nil, shards: nil, environment: [
            "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"]))
        #expect(fromOne.index == 0 && fromOne.count == 4)
        let k8s = try #require(try ShardSpec.resolve(explicit: nil, shards: 5, environment: ["JOB_COMPLETION_INDEX": "4"]))
        #expect(k8s.index == 4 && k8s.count == 5 && k8s.source.contains("JOB_COMPLETION_INDEX"))
        // --shard wins over the environment.
        #expect(try ShardSpec.resolve(explicit: "0/2", shards: nil, environment: ["JOB_COMPLETION_INDEX": "1"])?.index == 0)
        #expect(throws: ShardError.missingShards(index: 1)) { try ShardSpec.resolve(explicit: nil, shards: nil, environment: ["JOB_COMPLETION_INDEX": "1"]) }
        #expect(throws: ShardError.self) { try ShardSpec.resolve(explicit: nil, shards: 3, environment: ["JOB_COMPLETION_INDEX": "3"]) }
        #expect(throws: ShardError.self) { try ShardSpec.resolve(explicit: "4/4", shards: nil, environment: [:]) }
        #expect(throws: ShardError.self) { try ShardSpec.resolve(explicit: "1-4", shards: nil, environment: [:]) }
        #expect(throws: ShardError.self) { try ShardSpec.resolve(explicit: nil, shards: 4, environment: [:]) }
        #expect(throws: ShardError.self) {
            try ShardSpec.resolve(explicit: nil, shards: 3, environment: ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"])
        }
    }
}

/// A folder of 48 images (train/val, ants/bees), a duplicate file and one that cannot be decoded.
private func makeShardFolder(_ dir: String, perClass: Int = 12) throws -> Int {
    let fm = FileManager.default
    var n = 0
    for split in ["train", "val"] {
        for cls in ["ants", "bees"] {
            let files = try fm.contentsOfDirectory(atPath: "\(dataRoot)/\(split)/\(cls)").filter { $0.hasSuffix(".jpg") }.sorted().prefix(perClass)
            try fm.createDirectory(atPath: "\(dir)/\(split)/\(cls)", withIntermediateDirectories: true)
            for f in files { try fm.copyItem(atPath: "\(dataRoot)/\(split)/\(cls)/\(f)", toPath: "\(dir)/\(split)/\(cls)/\(f)"); n += 1 }
        }
    }
    let first = try fm.contentsOfDirectory(atPath: "\(dir)/train/ants").sorted()[0]
    try fm.copyItem(atPath: "\(dir)/train/ants/\(first)", toPath: "\(dir)/train/bees/copy-of-\(first)")
    try Data("not an image".utf8).write(to: URL(fileURLWithPath: "\(dir)/val/bees/broken.jpg"))
    return n + 2
}

private func tableCount(_ s: FeatureStore, _ table: String) throws -> Int {
    Int(try s.database.scalarInt("SELECT count(*) FROM \(table)") ?? -1)
}

/// Every vector's bytes by (image sha256, transform, view).
private func vectorBytes(_ s: FeatureStore) throws -> [String: [UInt8]] {
    Dictionary(uniqueKeysWithValues: try s.database.query(
        "SELECT i.sha256 || ' ' || f.transform || ' ' || f.view, f.vector FROM features f JOIN images i ON i.id = f.image_id") { ($0.string(0)!, $0.blob(1)) })
}

/// Four shards of a folder, extracted apart and merged, equal one extraction of the folder.
@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights)"))
struct ShardedExtractionTests {
    @Test func fourShardsMergedEqualOneRun() throws {
        let dir = temporaryDirectory("shards")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try makeShardFolder(dir + "/data")
        var options = ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, views: 1, batchSize: 5)
        let single = try FeatureStore(path: dir + "/single.sqlite")
        let whole = try extract(root: dir + "/data", into: single, options: options)
        #expect(whole.files == files && whole.failed == 1 && whole.computed == files - 1)  // (the duplicate counts as computed)

        var shardPaths: [String] = []
        var computed = 0, failed = 0, other = 0
        for i in 0..<4 {
            options.shard = try ShardSpec(index: i, count: 4)
            options.batchSize = 3 + i  // batching does not change the vectors
            let path = dir + "/shard-\(i).sqlite"
            let s = try extract(root: dir + "/data", into: FeatureStore(path: path), options: options)
            print(s.render())
            #expect(s.files == files && s.otherShardFiles + s.computed + s.cached + s.failed == files)
            computed += s.computed; failed += s.failed; other += s.otherShardFiles
            shardPaths.append(path)
            // A second run of a shard computes nothing.
            let again = try extract(root: dir + "/data", into: FeatureStore(path: path), options: options)
            #expect(again.computed == 0 && again.otherShardFiles == s.otherShardFiles)
        }
        // Each image was computed by exactly one shard; the broken file was decoded (and failed) in one only.
        #expect(computed == whole.computed && failed == 1 && other == 3 * files)

        let out = dir + "/merged.sqlite"
        let merged = try FeatureStore.merge(into: out, shards: shardPaths)
        print(merged.render())
        #expect(merged.warnings.isEmpty)
        let m = try FeatureStore(path: out, readOnly: true)
        let reference = try FeatureStore(path: dir + "/single.sqlite", readOnly: true)
        for table in ["images", "samples", "features", "failures", "backbones", "meta"] {
            #expect(try tableCount(m, table) == tableCount(reference, table), "\(table)")
        }
        let vm = try vectorBytes(m), vr = try vectorBytes(reference)
        #expect(vm.count == whole.vectorsWritten && vm == vr)
        let digest = try reference.canonicalDigest()
        #expect(try m.canonicalDigest() == digest)
        // Idempotent.
        _ = try FeatureStore.merge(into: out, shards: shardPaths)
        #expect(try FeatureStore(path: out, readOnly: true).canonicalDigest() == digest)

        // A shard store is refused for another shard and for a whole run; a whole store for a shard.
        options.shard = try ShardSpec(index: 2, count: 4)
        #expect(throws: ShardError.self) { try extract(root: dir + "/data", into: FeatureStore(path: shardPaths[1]), options: options) }
        #expect(throws: ShardError.self) { try extract(root: dir + "/data", into: FeatureStore(path: dir + "/single.sqlite"), options: options) }
        options.shard = nil
        #expect(throws: ShardError.self) { try extract(root: dir + "/data", into: FeatureStore(path: shardPaths[1]), options: options) }
        #expect(try FeatureStore(path: dir + "/single.sqlite", readOnly: true).canonicalDigest() == digest)
    }
}

/// kill -9 of one shard's `probe extract` mid-run, then running that index again, resumes it: the
/// merge equals one extraction of the folder.
@Suite(.serialized, .enabled(if: sharedAvailable && probeExecutable != nil, "needs ../shared and the built probe executable"))
struct ShardKillTests {
    func features(_ path: String) -> Int {
        guard FileManager.default.fileExists(atPath: path), let s = try? FeatureStore(path: path, readOnly: true) else { return 0 }
        return Int((try? s.database.scalarInt("SELECT count(*) FROM features")) ?? 0)
    }

    func run(_ args: [String], environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: probeExecutable!)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test func killedShardResumesAndTheMergeIsUnchanged() throws {
        let dir = temporaryDirectory("shard-kill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try makeShardFolder(dir + "/data")
        let common = ["extract", dir + "/data", "--backbone", "mobilenet_v2", "--weights", mobilenetWeights, "--views", "1", "--quiet"]
        let single = try run(common + ["--store", dir + "/single.sqlite"])
        single.waitUntilExit()
        #expect(single.terminationStatus == 2)  // (one file cannot be decoded)
        // Shards 0, 2, 3 whole; shard 1 from Slurm's variables, killed after a few commits of one image each.
        var shards: [String] = []
        for i in [0, 2, 3] {
            let p = try run(common + ["--shard", "\(i)/4", "--store", dir + "/shard-\(i).sqlite"])
            p.waitUntilExit()
            shards.append(dir + "/shard-\(i).sqlite")
        }
        let killed = dir + "/shard-1.sqlite"
        let slurm = ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4"]
        let p = try run(common + ["--batch", "1", "--store", killed], environment: slurm)
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && features(killed) < 4 && Date() < deadline { usleep(2_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let atKill = features(killed)
        #expect(p.terminationReason == .uncaughtSignal && atKill >= 4, "killed at \(atKill) vectors")
        let resumed = try run(common + ["--batch", "1", "--store", killed], environment: slurm)
        resumed.waitUntilExit()
        #expect(resumed.terminationStatus <= 2)
        #expect(features(killed) > atKill)
        shards.append(killed)
        print("shard 1/4 killed at \(atKill) vectors, resumed to \(features(killed))")

        let out = dir + "/merged.sqlite"
        _ = try FeatureStore.merge(into: out, shards: shards)
        let reference = try FeatureStore(path: dir + "/single.sqlite", readOnly: true)
        let m = try FeatureStore(path: out, readOnly: true)
        #expect(try m.integrityProblems().isEmpty)
        #expect(try vectorBytes(m) == vectorBytes(reference))
        #expect(try m.canonicalDigest() == reference.canonicalDigest())
    }
}
