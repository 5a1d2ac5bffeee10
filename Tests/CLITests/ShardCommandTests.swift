import Foundation
import Testing
import Digest
import Store
@testable import CLI
import TestSupport

/// `extract --shard/--shards`, `store merge` and `store compare` at the front end.
@Suite("CLI shards and merge", .serialized)
struct ShardCommandTests {
    @Test func shardUsageErrors() {
        var r = probe("extract", "DIR", "--shards", "3")
        #expect(r.status == 64 && r.err.contains("--shards 3 without a shard index"), "\(r.err)")
        r = probe("extract", "DIR", "--shard", "4/4")
        #expect(r.status == 64 && r.err.contains("not in 0..<4"), "\(r.err)")
        r = probe("extract", "DIR", "--shard", "1-4")
        #expect(r.status == 64 && r.err.contains("expected i/n"), "\(r.err)")
        r = probe("store", "merge", "out.sqlite")
        #expect(r.status == 64 && r.err.contains("missing OUT and one or more SHARD stores"), "\(r.err)")
        #expect(probe("extract", "--help").out.contains("WAL mode"))
        #expect(probe("store", "merge", "--help").out.contains("network file systems"))
    }

    @Test func mergeAndCompareThroughTheFrontEnd() throws {
        let dir = try TempDir()
        func store(_ name: String, _ range: Range<Int>, mark: String?) throws -> String {
            let s = try FeatureStore(path: dir.file(name))
            let b = try s.backbone(architecture: "resnet18", weightsSHA256: SHA256.hex(Array("w".utf8)), dimension: 4)
            var batch = Batch()
            for i in range {
                let h = SHA256.hex(Array("image \(i)".utf8))
                batch.images.append(ImageRecord(sha256: h, byteSize: i))
                batch.samples.append(SampleRecord(path: "/d/c/\(i).jpg", sha256: h, label: "c", split: nil))
                batch.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: [Float(i), 1, 2, 3]))
            }
            try s.insertBatch(batch, backbone: b)
            if let mark { try s.setMetaValue(FeatureStore.shardMetaKey, mark) }
            return s.path
        }
        let whole = try store("whole.sqlite", 0..<10, mark: nil)
        let a = try store("a.sqlite", 0..<4, mark: "0/2"), b = try store("b.sqlite", 4..<10, mark: "1/2")
        let out = dir.file("out.sqlite")
        // (Results go to standard output, not through the console: check the files and statuses.)
        var r = probe("store", "merge", out, a, b, "--quiet")
        #expect(r.status == 0, "\(r.err)")
        #expect(try FeatureStore(path: out, readOnly: true).canonicalDigest() == FeatureStore(path: whole, readOnly: true).canonicalDigest())
        #expect(try FeatureStore(path: out, readOnly: true).metaValue(FeatureStore.shardMetaKey) == nil)
        #expect(probe("store", "compare", out, whole).status == 0)
        #expect(probe("store", "compare", a, whole).status == 1)
        // A text file as OUT: refused (status 1), untouched.
        let text = dir.file("notes.txt")
        try Data("mine\n".utf8).write(to: URL(fileURLWithPath: text))
        r = probe("store", "merge", text, a)
        #expect(r.status == 1 && r.err.contains("not a probe store"), "\(r.err)")
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "mine\n")
    }
}
