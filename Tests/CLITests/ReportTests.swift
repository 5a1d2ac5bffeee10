import Foundation
import Testing
import Store
import Digest
import Finetune
import TestSupport
@testable import CLI
import Vision

/// `probe report` end to end over a constructed store whose images exist: the validation images the
/// head must get wrong are known in advance, and every image the page shows must be a file.
@Suite struct ReportTests {
    /// Two well separated classes in 6 dimensions; 2 validation images sit inside the other class.
    func makeStore(_ dir: TempDir) throws -> (store: String, planted: Set<String>) {
        let path = dir.file("features.sqlite")
        let store = try FeatureStore(path: path)
        let b = try store.backbone(architecture: "resnet18", weightsSHA256: SHA256.hex(Array("w".utf8)), dimension: 6)
        var batch = Batch()
        var state: UInt64 = 7
        func noise() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(state >> 11) / Double(1 << 53) - 0.5) * 0.6
        }
        var planted = Set<String>()
        for split in ["train", "val"] {
            for (k, label) in ["ants", "bees"].enumerated() {
                for i in 0..<(split == "train" ? 20 : 8) {
                    // a small real image file per sample (its colour says nothing; the vector matters)
                    let file = dir.file("\(split)-\(label)-\(i).png")
                    let img = RGBImage(width: 40, height: 30, pixels: [UInt8](repeating: UInt8(40 * k + 3 * i), count: 40 * 30 * 3))
                    try PNGWriter.write(img, to: file)
                    let wrongSide = split == "val" && i < 1   // one planted error per class
                    if wrongSide { planted.insert(file) }
                    let side: Float = (k == 0) != wrongSide ? 2 : -2
                    let v = [side + noise(), -side + noise(), noise(), noise(), noise(), 1 + noise()]
                    let h = SHA256.hex(Array(file.utf8))
                    batch.images.append(ImageRecord(sha256: h, byteSize: 10))
                    batch.samples.append(SampleRecord(path: file, sha256: h, label: label, split: split))
                    batch.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: v))
                }
            }
        }
        try store.insertBatch(batch, backbone: b)
        return (path, planted)
    }

    /// The `src` of every <img> of a page.
    func imageSources(_ html: String) -> [String] {
        html.components(separatedBy: "<img src=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
    }

    @Test func reportShowsEveryErrorWithItsImageAndAMap() throws {
        let dir = try TempDir()
        let (store, planted) = try makeStore(dir)
        let out = dir.file("report")
        let r = probe("report", "--store", store, "--out", out)
        #expect(r.status == 0, "\(r.err)")
        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        #expect(html.contains("<meta name=\"generator\" content=\"probe\">"))
        #expect(html.contains("Validation errors: 2 of 16 images"))
        for p in planted { #expect(html.contains((p as NSString).lastPathComponent), "\(p) is not among the errors") }
        #expect(html.contains("true bees, predicted ants") && html.contains("true ants, predicted bees"))
        let sources = imageSources(html)
        #expect(sources.filter { $0.hasPrefix("errors/") }.count == 2 && sources.contains("map.png"), "\(sources)")
        for s in sources {   // every image shown is a file (audit thumbnails included)
            let img = try ImageDecoder.decode(path: out + "/" + s)
            if s.hasPrefix("errors/") { #expect(img.width == 160 && img.height == 160, "\(s)") }
            if s == "map.png" { #expect(img.width == 640) }
        }
        // The protocols: the linear probe errs on the same 2 planted images.
        #expect(html.contains("<h2>Evaluation protocols</h2>"))
        let linearRow = html.components(separatedBy: "<tr>").first { $0.contains("linear probe (L-BFGS") } ?? ""
        #expect(linearRow.contains("<td>87.50%</td>"), "\(linearRow)")
        // The audit: its own page beside, linked.
        #expect(html.contains("<h2>Data audit</h2>") && html.contains("<a href=\"audit/index.html\">"))
        #expect(FileManager.default.fileExists(atPath: out + "/audit/index.html"))
        // A second run replaces its own files.
        #expect(probe("report", "--store", store, "--out", out).status == 0)
        #expect(html.contains("trained for this report, not saved"))
        // Read-only: the store is unchanged (no head saved).
        #expect(try FeatureStore(path: store, readOnly: true).heads().isEmpty)
    }

    @Test func finetunedRunIsShownBesideTheHead() throws {
        let dir = try TempDir()
        let (store, _) = try makeStore(dir)
        let weights = dir.file("net.pth")
        try Data("weights".utf8).write(to: URL(fileURLWithPath: weights))
        var o = FinetuneOptions(outputPath: weights)
        o.epochs = 3
        let summary = FinetuneSummary(weights: weights, dataset: dir.path, architecture: "resnet18", initialWeights: nil,
                                      classes: ["ants", "bees"], options: o, epochs: [], bestValidationAccuracy: 0.9412,
                                      bestEpoch: 2, seconds: 123.4, skipped: [])
        let e = JSONEncoder()
        try e.encode(summary).write(to: URL(fileURLWithPath: FinetuneSummary.path(forWeights: weights)))
        let out = dir.file("report")
        #expect(probe("report", "--store", store, "--out", out, "--finetuned", weights).status == 0)
        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        #expect(html.contains("<td>94.12%</td><td>123.4 s</td>"))
        #expect(html.contains("<td>87.50%</td>"), "the head: 14 of 16")
        // A missing file is a usage error.
        #expect(probe("report", "--store", store, "--out", out, "--finetuned", dir.file("none.pth")).status == 64)
    }

    @Test func aPageProbeDidNotWriteIsNotReplaced() throws {
        let dir = try TempDir()
        let (store, _) = try makeStore(dir)
        let out = dir.file("site")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Data("<html>mine</html>".utf8).write(to: URL(fileURLWithPath: out + "/index.html"))
        let r = probe("report", "--store", store, "--out", out)
        #expect(r.status == 1 && r.err.contains("was not written by probe"))
        #expect(try String(contentsOfFile: out + "/index.html", encoding: .utf8) == "<html>mine</html>")
        #expect(!FileManager.default.fileExists(atPath: out + "/map.png"))
        // No index.html, but someone's map.png: refused, untouched.
        let other = dir.file("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: other + "/map.png"))
        let r2 = probe("report", "--store", store, "--out", other)
        #expect(r2.status == 1 && r2.err.contains("map.png exists and was not written by probe"))
        #expect(try String(contentsOfFile: other + "/map.png", encoding: .utf8) == "mine")
        // A file where the directory should be.
        let file = dir.file("file")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        #expect(probe("report", "--store", store, "--out", file).status == 1)
    }
}
