import Foundation
import Backbones
import Testing
import Store
import Digest
import TestSupport

// Issue 12, defects 7 and 11, through the `probe` executable (PROBE_EXECUTABLE overrides the one
// beside the tests, e.g. to run these tests against an older build).

let selectionProbe: String? = ProcessInfo.processInfo.environment["PROBE_EXECUTABLE"] ?? probeExecutable

/// Runs probe; returns its exit status, standard output and standard error.
func runProbeCLI(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: selectionProbe!)
    p.arguments = args
    let dir = temporaryDirectory("cli-out")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    FileManager.default.createFile(atPath: dir + "/out", contents: nil)
    FileManager.default.createFile(atPath: dir + "/err", contents: nil)
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/out"))
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/err"))
    try p.run()
    p.waitUntilExit()
    return (p.terminationStatus, (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? "")
}

/// A store with one image whose features exist for each of `backbones` (architecture, weights
/// sha256, value): the vector of 4 values `value`, so that an export shows which one was chosen.
func storeWithBackbones(_ path: String, _ backbones: [(String, String, Float)]) throws {
    let store = try FeatureStore(path: path)
    let image = String(repeating: "1", count: 64)
    for (arch, sha, value) in backbones {
        let b = try store.backbone(architecture: arch, weightsSHA256: sha, dimension: 4)
        _ = try store.insertBatch(Batch(images: [ImageRecord(sha256: image, width: 1, height: 1, byteSize: 1)],
                                        samples: [SampleRecord(path: "/data/ants/a.jpg", sha256: image, label: "ants", split: "train")],
                                        features: [FeatureRecord(sha256: image, transform: "val", view: 0, vector: [value, value, value, value])]),
                                  backbone: b)
    }
}

@Suite(.serialized, .enabled(if: selectionProbe != nil, "needs the built probe executable"))
struct BackboneSelectionTests {
    /// Two weight files of one architecture (the README's extract, finetune, extract sequence).
    func twoMobileNets() throws -> (dir: String, store: String, a: String, b: String, shaA: String, shaB: String) {
        let dir = temporaryDirectory("select")
        let a = dir + "/mobilenetv2.pt", b = dir + "/finetuned.pth"
        try Data("weights A".utf8).write(to: URL(fileURLWithPath: a))
        try Data("weights B, finetuned".utf8).write(to: URL(fileURLWithPath: b))
        let shaA = SHA256.hex(Array("weights A".utf8)), shaB = SHA256.hex(Array("weights B, finetuned".utf8))
        try storeWithBackbones(dir + "/s.sqlite", [("mobilenet_v2", shaA, 0.25), ("mobilenet_v2", shaB, 0.75)])
        return (dir, dir + "/s.sqlite", a, b, shaA, shaB)
    }

    /// Exports with `--backbone selector`; returns the value of the chosen backbone's vector.
    func exported(_ t: (dir: String, store: String, a: String, b: String, shaA: String, shaB: String), _ selector: String) throws -> String {
        let r = try runProbeCLI(["export", "--format", "csv", "--out", t.dir + "/o.csv", "--store", t.store, "--backbone", selector])
        #expect(r.status == 0, "\(selector): \(r.err)")
        let csv = (try? String(contentsOfFile: t.dir + "/o.csv", encoding: .utf8)) ?? ""
        return csv.contains("0.75") ? "B" : csv.contains("0.25") ? "A" : "none"
    }

    @Test func byHashPrefix() throws {
        let t = try twoMobileNets()
        defer { try? FileManager.default.removeItem(atPath: t.dir) }
        #expect(try exported(t, String(t.shaB.prefix(8))) == "B")
        #expect(try exported(t, String(t.shaA.prefix(6))) == "A")
    }

    @Test func byArchitectureAndPrefix() throws {
        let t = try twoMobileNets()
        defer { try? FileManager.default.removeItem(atPath: t.dir) }
        #expect(try exported(t, "mobilenet_v2:" + t.shaB.prefix(8)) == "B")
        #expect(try exported(t, "mobilenet_v2:" + t.shaA.prefix(8)) == "A")
    }

    @Test func byWeightsPath() throws {
        let t = try twoMobileNets()
        defer { try? FileManager.default.removeItem(atPath: t.dir) }
        #expect(try exported(t, t.b) == "B")
        #expect(try exported(t, t.a) == "A")
    }

    /// Nothing given, or a prefix shared by two: the error names the matching backbones with
    /// their short hashes and says how to pick one.
    @Test func ambiguityListsTheCandidates() throws {
        let dir = temporaryDirectory("select-ambiguous")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let x = "abcd1111" + String(repeating: "0", count: 56), y = "abcd2222" + String(repeating: "0", count: 56)
        let z = "ef001111" + String(repeating: "0", count: 56)
        try storeWithBackbones(dir + "/s.sqlite", [("resnet18", x, 0.25), ("resnet18", y, 0.75), ("mobilenet_v2", z, 0.5)])
        let r = try runProbeCLI(["export", "--format", "csv", "--out", dir + "/o.csv", "--store", dir + "/s.sqlite", "--backbone", "abcd"])
        #expect(r.status != 0)
        #expect(r.err.contains("ambiguous"), "\(r.err)")
        #expect(r.err.contains("resnet18:abcd1111") && r.err.contains("resnet18:abcd2222"), "\(r.err)")
        #expect(r.err.contains("--backbone ARCH:HASH"), "\(r.err)")
        let none = try runProbeCLI(["train", "--store", dir + "/s.sqlite"])
        #expect(none.status != 0)
        #expect(none.err.contains("mobilenet_v2:ef001111") && none.err.contains("--backbone HASH"), "\(none.err)")
    }
}

@Suite(.serialized, .enabled(if: selectionProbe != nil, "needs the built probe executable"))
struct FailureMessageTests {
    /// Two different empty files (same bytes) and two copies of one undecodable file: each failure
    /// is recorded and reported under its own path only.
    @Test(.enabled(if: sharedAvailable, "needs ../shared")) func eachFailureUnderItsOwnPath() throws {
        let dir = temporaryDirectory("failure-paths")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for cls in ["ants", "bees"] { try fm.createDirectory(atPath: "\(dir)/data/\(cls)", withIntermediateDirectories: true) }
        let files = ["ants/empty-one.jpg", "bees/empty-two.jpg", "ants/junk-one.jpg", "bees/junk-two.jpg"].map { "\(dir)/data/\($0)" }
        fm.createFile(atPath: files[0], contents: Data())
        fm.createFile(atPath: files[1], contents: Data())
        fm.createFile(atPath: files[2], contents: Data("not an image at all".utf8))
        fm.createFile(atPath: files[3], contents: Data("not an image at all".utf8))
        let r = try runProbeCLI(["extract", dir + "/data", "--backbone", "mobilenet_v2", "--weights", mobilenetWeights,
                                 "--store", dir + "/s.sqlite", "--quiet"])
        let store = try FeatureStore(path: dir + "/s.sqlite", readOnly: true)
        let failures = try store.failures()
        #expect(Set(failures.map(\.path)) == Set(files), "\(failures) \(r.err)")
        for f in failures {
            for other in files where other != f.path { #expect(!f.reason.contains(other), "\(f.path): \(f.reason)") }
            #expect(f.reason.contains(f.path), "\(f.path): \(f.reason)")
        }
        let info = try runProbeCLI(["store", "info", "--store", dir + "/s.sqlite"])
        for line in (info.out + r.out + r.err).split(separator: "\n") {
            let named = files.filter { line.contains($0) }
            #expect(named.count <= 1, "one line names two files: \(line)")
        }
    }

    /// A write-protected output file is refused as such; a missing directory is named as missing.
    @Test func readOnlyOutputVersusMissingDirectory() throws {
        let dir = temporaryDirectory("hints")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try storeWithBackbones(dir + "/s.sqlite", [("resnet18", String(repeating: "a", count: 64), 0.5)])
        let ro = dir + "/old.csv"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: ro))
        chmod(ro, 0o444)
        let r = try runProbeCLI(["export", "--format", "csv", "--out", ro, "--store", dir + "/s.sqlite"])
        #expect(r.status != 0)
        #expect(r.err.contains("read-only") && !r.err.contains("directory"), "\(r.err)")
        #expect(try String(contentsOfFile: ro, encoding: .utf8) == "keep me")
        let missing = dir + "/no/such/dir/x.csv"
        let m = try runProbeCLI(["export", "--format", "csv", "--out", missing, "--store", dir + "/s.sqlite"])
        #expect(m.status != 0)
        #expect(m.err.contains("does not exist") && m.err.contains("mkdir") && !m.err.contains("writable"), "\(m.err)")
    }

    /// A file that is not a database, and a store whose pages after its header are garbage: the
    /// hint does not send the user to `probe store info` (which fails the same way), and says
    /// what to do instead.
    @Test func malformedStoreHintIsNotACommandThatFailsAlike() throws {
        let dir = temporaryDirectory("malformed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes = [UInt8](repeating: 0, count: 65536)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/bad.sqlite"))
        try storeWithBackbones(dir + "/damaged.sqlite", [("resnet18", String(repeating: "a", count: 64), 0.5)])
        for companion in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dir + "/damaged.sqlite" + companion) }
        let size = try #require(FileManager.default.attributesOfItem(atPath: dir + "/damaged.sqlite")[.size] as? Int)
        let h = try #require(FileHandle(forWritingAtPath: dir + "/damaged.sqlite"))
        try h.seek(toOffset: 100)   // the header stays: SQLite opens it, then finds its pages damaged
        try h.write(contentsOf: Data(Array(repeating: bytes, count: size / bytes.count + 1).joined().prefix(size - 100)))
        try h.close()
        for store in ["bad.sqlite", "damaged.sqlite"] {
            for args in [["store", "info"], ["export", "--out", dir + "/o.csv", "--format", "csv"], ["train"]] {
                let r = try runProbeCLI(args + ["--store", dir + "/" + store])
                #expect(r.status != 0)
                #expect(!r.err.contains("`probe store info`"), "\(store) \(args): \(r.err)")
                #expect(r.err.contains("--store"), "\(store) \(args): \(r.err)")
            }
        }
    }
}
