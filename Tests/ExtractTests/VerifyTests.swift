import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import Digest
import Store
@testable import Extract
import TestSupport

/// `bytes` followed by zeros up to `size` (JPEG decoders stop at the EOI marker, so the padding is
/// never read; it only makes two different images the same size).
private func padded(_ bytes: Data, to size: Int) -> Data {
    var d = bytes
    d.append(Data(count: size - bytes.count))
    return d
}

/// Sets the modification (and access) time of `path` to the nanosecond timestamp `ns`.
private func setMtime(_ path: String, ns: Int64) {
    var times = [timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000)),
                 timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))]
    #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
}

@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights)"))
struct VerifyTests {
    /// A file swapped for another image of the same size, its modification time put back, looks
    /// unchanged to a plain extract (path, size and mtime match the record). `verify` hashes every
    /// file: it finds the one changed file, computes the new content's features and records the
    /// path under the new content; the vector stored for the path is then the new image's own.
    @Test func verifyFindsASwappedFileWithTheSameSizeAndMtime() throws {
        let dir = temporaryDirectory("verify")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        let ants = try fm.contentsOfDirectory(atPath: dataRoot + "/train/ants").filter { $0.hasSuffix(".jpg") }.sorted()
        let bees = try fm.contentsOfDirectory(atPath: dataRoot + "/train/bees").filter { $0.hasSuffix(".jpg") }.sorted()
        let original = try Data(contentsOf: URL(fileURLWithPath: dataRoot + "/train/ants/" + ants[0]))
        let other = try Data(contentsOf: URL(fileURLWithPath: dataRoot + "/train/ants/" + ants[1]))
        let size = max(original.count, other.count) + 16
        let before = padded(original, to: size), after = padded(other, to: size)
        #expect(before.count == after.count && before != after)

        for d in ["data/ants", "data/bees", "fresh/ants", "fresh/bees"] {
            try fm.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true)
        }
        let swapped = dir + "/data/ants/swapped.jpg"
        try before.write(to: URL(fileURLWithPath: swapped))
        try fm.copyItem(atPath: dataRoot + "/train/ants/" + ants[2], toPath: dir + "/data/ants/kept.jpg")
        try fm.copyItem(atPath: dataRoot + "/train/bees/" + bees[0], toPath: dir + "/data/bees/bee.jpg")
        let options = ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, batchSize: 4)
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let first = try extract(root: dir + "/data", into: store, options: options)
        #expect(first.files == 3 && first.computed == 3 && first.failed == 0)
        let path = absolutePath(swapped)
        #expect(try store.sample(path: path)?.sha256 == SHA256.hex(before))

        // Swap the bytes, keep the size and the modification time to the nanosecond.
        let stamp = try #require(FileStatus(path: swapped))
        try after.write(to: URL(fileURLWithPath: swapped))
        setMtime(swapped, ns: stamp.mtimeNS)
        #expect(FileStatus(path: swapped) == stamp)

        // A plain run trusts path, size and mtime: nothing changed as far as it can tell.
        let plain = try extract(root: dir + "/data", into: store, options: options)
        #expect(plain.computed == 0 && plain.cached == 3 && plain.changedContent == 0)
        #expect(try store.sample(path: path)?.sha256 == SHA256.hex(before))

        // --verify hashes every file: one changed, its new content computed, the path re-keyed.
        var verifying = options
        verifying.verify = true
        let verified = try extract(root: dir + "/data", into: store, options: verifying)
        #expect(verified.changedContent == 1 && verified.computed == 1 && verified.cached == 2 && verified.failed == 0)
        #expect(verified.render().contains("1 file changed"), "\(verified.render())")
        let sample = try #require(try store.sample(path: path))
        #expect(sample.sha256 == SHA256.hex(after) && sample.label == "ants" && sample.byteSize == size)
        #expect(try store.samples().count == 3)
        #expect(try store.integrityProblems().isEmpty)

        // The vector now found for the path is the new image's: the same bits as a fresh store's.
        try after.write(to: URL(fileURLWithPath: dir + "/fresh/ants/a.jpg"))
        try fm.copyItem(atPath: dataRoot + "/train/bees/" + bees[0], toPath: dir + "/fresh/bees/bee.jpg")
        let fresh = try FeatureStore(path: dir + "/fresh.sqlite")
        _ = try extract(root: dir + "/fresh", into: fresh, options: options)
        let b1 = try #require(try store.backbones().first), b2 = try #require(try fresh.backbones().first)
        let v = try #require(try store.vector(sha256: sample.sha256, backbone: b1))
        let w = try #require(try fresh.vector(sha256: SHA256.hex(after), backbone: b2))
        let old = try #require(try store.vector(sha256: SHA256.hex(before), backbone: b1))
        #expect(v.count == 1280 && v == w)
        #expect(cosine(v, old) < 0.99, "the two images' features should differ (cosine \(cosine(v, old)))")

        // A second verifying run finds nothing changed and computes nothing.
        let again = try extract(root: dir + "/data", into: store, options: verifying)
        #expect(again.changedContent == 0 && again.computed == 0 && again.cached == 3)
    }
}
