import Foundation
import Testing
import Audit
import Digest
import Store
import Vision
import Workflows
import TestSupport

/// A store with four samples over three images (one image under two paths, in two splits, with two
/// labels) and two near-identical images; the images are real PNG files in `dir`.
func makeAuditStore(_ dir: TempDir) throws -> (FeatureStore, StoredBackbone, [String]) {
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let d = 6
    let backbone = try store.backbone(architecture: "test", weightsSHA256: SHA256.hex(Array("w".utf8)), dimension: d)
    var paths: [String] = []
    var batch = Batch()
    let vectors: [[Float]] = [[1, 0, 0, 0, 0, 0], [0.99, 0.05, 0, 0, 0, 0], [0, 0, 1, 0, 0.2, 0]]
    for (i, v) in vectors.enumerated() {
        var img = RGBImage(width: 40 + 10 * i, height: 30)
        img.fill(x: 0, y: 0, width: img.width, height: 30, color: (UInt8(60 * i), 120, 200))
        let data = try PNGWriter.encode(img)
        let path = dir.file("img\(i).png")
        try data.write(to: URL(fileURLWithPath: path))
        let sha = SHA256.hex([UInt8](data))
        batch.images.append(ImageRecord(sha256: sha, width: img.width, height: 30, byteSize: data.count))
        batch.samples.append(SampleRecord(path: path, sha256: sha, label: i == 2 ? "bees" : "ants", split: i == 1 ? "val" : "train"))
        batch.features.append(FeatureRecord(sha256: sha, transform: "val", view: 0, vector: v))
        paths.append(path)
    }
    // img0's bytes again under another path, in val with another label.
    let copy = dir.file("copy-of-img0.png")
    try FileManager.default.copyItem(atPath: paths[0], toPath: copy)
    batch.samples.append(SampleRecord(path: copy, sha256: batch.images[0].sha256, label: "bees", split: "val"))
    _ = try store.insertBatch(batch, backbone: backbone)
    return (store, backbone, paths)
}

@Test func auditOfAStoreFindsItsDuplicatesAndLeak() throws {
    let dir = try TempDir("audit")
    let (store, backbone, paths) = try makeAuditStore(dir)
    var o = AuditOptions()
    o.labelErrors = false
    let r = try auditStore(store, backbone: backbone, options: o, workers: 2)
    #expect(r.counts.samples == 4 && r.counts.images == 3 && r.counts.imagesWithFeatures == 3)
    #expect(r.exactDuplicates.count == 1 && r.exactDuplicates[0].conflictingLabels && r.exactDuplicates[0].conflictingSplits)
    // img0 (train) and img1 (val): cosine 0.99 / sqrt(0.99^2 + 0.05^2) = 0.99873.
    #expect(r.nearDuplicates.count == 1 && r.leaks == 1)
    #expect(abs(r.nearDuplicates[0].similarity - 0.99 / (0.99 * 0.99 + 0.0025).squareRoot()) < 1e-6)
    #expect(Set([r.nearDuplicates[0].first.path, r.nearDuplicates[0].second.path]) == Set([paths[0], paths[1]]))
    // The JSON round-trips.
    let json = try JSONEncoder().encode(r)
    let back = try JSONDecoder().decode(AuditResult.self, from: json)
    #expect(back.nearDuplicates == r.nearDuplicates && back.exactDuplicates == r.exactDuplicates && back.source["backbone"] == "test")
}

@Test func auditPageWritesThumbnailsAndNeverOverwritesForeignFiles() throws {
    let dir = try TempDir("audit-page")
    let (store, backbone, _) = try makeAuditStore(dir)
    var o = AuditOptions()
    o.labelErrors = false
    let r = try auditStore(store, backbone: backbone, options: o, workers: 1)

    // A new folder: page, thumbnails and the list of what was written.
    let out = dir.file("page")
    let index = try writeAuditPage(r, to: out)
    let html = try String(contentsOfFile: index, encoding: .utf8)
    let thumbs = try FileManager.default.contentsOfDirectory(atPath: out + "/audit-thumbnails")
    #expect(thumbs.count == 3)   // three distinct images shown (leak pair, duplicate, outliers)
    for t in thumbs {
        #expect(html.contains("audit-thumbnails/\(t)"))
        let img = try ImageDecoder.decode(path: out + "/audit-thumbnails/" + t)
        #expect(img.width > 0 && img.width <= 160)
    }
    #expect(html.contains("across train/val"))
    // Again into the same folder: allowed (its own files), and an unrelated file there is left alone.
    try "keep me".write(toFile: out + "/notes.txt", atomically: true, encoding: .utf8)
    try writeAuditPage(r, to: out)
    #expect(try String(contentsOfFile: out + "/notes.txt", encoding: .utf8) == "keep me")

    // A later page that shows fewer images removes the thumbnails it no longer uses (only its own).
    var fewer = r
    fewer.outliers = []; fewer.exactDuplicates = []
    try writeAuditPage(fewer, to: out)
    #expect(try FileManager.default.contentsOfDirectory(atPath: out + "/audit-thumbnails").count == 2)   // the leak pair
    #expect(try String(contentsOfFile: out + "/notes.txt", encoding: .utf8) == "keep me")
    try writeAuditPage(r, to: out)
    #expect(try FileManager.default.contentsOfDirectory(atPath: out + "/audit-thumbnails").count == 3)

    // A folder whose index.html someone else wrote: refused, and nothing in it changes.
    let foreign = dir.file("foreign")
    try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
    try "<p>mine</p>".write(toFile: foreign + "/index.html", atomically: true, encoding: .utf8)
    #expect(throws: OwnedFolderError.notOurs(path: foreign + "/index.html")) { try writeAuditPage(r, to: foreign) }
    #expect(try String(contentsOfFile: foreign + "/index.html", encoding: .utf8) == "<p>mine</p>")
    #expect(try FileManager.default.contentsOfDirectory(atPath: foreign) == ["index.html"])

    // A foreign thumbnail where ours would go: refused too, before the page is replaced.
    let name = thumbs.sorted()[0]
    try FileManager.default.removeItem(atPath: out + "/audit-thumbnails/" + name)
    try "not a png".write(toFile: out + "/audit-thumbnails/" + name, atomically: true, encoding: .utf8)
    // Its name is still listed as ours, so it is ours to replace; a file we never listed is not:
    let manifest = try String(contentsOfFile: out + "/.probe-audit", encoding: .utf8)
    try manifest.replacingOccurrences(of: "audit-thumbnails/\(name)\n", with: "")
        .write(toFile: out + "/.probe-audit", atomically: true, encoding: .utf8)
    let before = try Data(contentsOf: URL(fileURLWithPath: out + "/index.html"))
    #expect(throws: OwnedFolderError.notOurs(path: out + "/audit-thumbnails/" + name)) { try writeAuditPage(r, to: out) }
    #expect(try String(contentsOfFile: out + "/audit-thumbnails/" + name, encoding: .utf8) == "not a png")
    #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/index.html")) == before)

    // A file where the folder should be.
    let file = dir.file("a-file")
    try "x".write(toFile: file, atomically: true, encoding: .utf8)
    #expect(throws: OwnedFolderError.notDirectory(path: file)) { try writeAuditPage(r, to: file) }
}
