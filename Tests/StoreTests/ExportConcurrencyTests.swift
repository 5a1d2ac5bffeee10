import Foundation
import Testing
import OutputFiles
@testable import Store
import TestSupport

@Test func exportNPYByteLayout() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let d = 3
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: d)
    var batch = sampleBatch(0..<8, d: d)
    batch.samples[2].path = "val/with, comma \"quoted\".jpg"
    try store.insertBatch(batch, backbone: b)

    let summary = try store.export(to: dir.file("out"), format: .npy, backbone: b, split: "train")
    #expect(summary.rows == 6 && summary.dimension == d)
    let npy = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.file("out.npy"))))
    // Magic, version 1.0, little-endian header length, header padded to 64 bytes with '\n' last.
    #expect(Array(npy[0..<8]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
    let headerLength = Int(npy[8]) | Int(npy[9]) << 8
    #expect((10 + headerLength) % 64 == 0)
    let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
    #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (6, 3), }"))
    #expect(header.hasSuffix(" \n"))
    #expect(npy.count == 10 + headerLength + 6 * d * 4)
    // Rows in path order, values as little-endian float32.
    let train = batch.samples.filter { $0.split == "train" }.sorted { $0.path < $1.path }
    for (r, s) in train.enumerated() {
        let v = batch.features.first { $0.key.sha256 == s.sha256 }!.vector
        for j in 0..<d {
            let o = 10 + headerLength + (r * d + j) * 4
            let bits = UInt32(npy[o]) | UInt32(npy[o + 1]) << 8 | UInt32(npy[o + 2]) << 16 | UInt32(npy[o + 3]) << 24
            #expect(Float(bitPattern: bits) == v[j])
        }
    }
    let labels = try String(contentsOfFile: dir.file("out.labels.csv"), encoding: .utf8).split(separator: "\n").map(String.init)
    #expect(labels.count == 7 && labels[0] == "row,path,label,split,sha256")
    #expect(labels[1] == "0,\(train[0].path),\(train[0].label),train,\(train[0].sha256)")

    // CSV: header and one row per sample; quoting of awkward paths.
    let csvSummary = try store.export(to: dir.file("all.csv"), format: .csv, backbone: b)
    #expect(csvSummary.rows == 8)
    let csv = try String(contentsOfFile: dir.file("all.csv"), encoding: .utf8).split(separator: "\n").map(String.init)
    #expect(csv[0] == "path,label,split,f0,f1,f2")
    #expect(csv.contains { $0.hasPrefix("\"val/with, comma \"\"quoted\"\".jpg\",ants,train,") })
    let row = try #require(csv.first { $0.hasPrefix("train/bees/1.jpg,") })
    let values = row.split(separator: ",").dropFirst(3).map { Float(String($0))! }
    #expect(values == batch.features[1].vector)
    // For checking with numpy by hand: PROBE_KEEP_EXPORT=/some/dir swift test --filter exportNPY
    if let keep = ProcessInfo.processInfo.environment["PROBE_KEEP_EXPORT"] {
        _ = try store.export(to: keep + "/train", format: .npy, backbone: b, split: "train")
        _ = try store.export(to: keep + "/all.csv", format: .csv, backbone: b)
    }
    // Export of a missing directory says so.
    let missing = #expect(throws: OutputFileError.self) { try store.export(to: dir.file("no/such/dir/x"), format: .npy, backbone: b) }
    #expect(missing?.description.contains("No such file or directory") == true)
}

/// A writer thread commits batches in a loop on its own connection while this thread reads
/// on another: the reads never fail and always see whole batches.
@Test func concurrentReadDuringWrite() throws {
    let dir = try TempDir()
    let path = dir.file("s.sqlite")
    let d = 64
    do {
        let s = try FeatureStore(path: path)
        _ = try s.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: d)
    }
    let batches = 40, perBatch = 25
    let done = Atomic(false)
    let writerError = Atomic<String?>(nil)
    let writer = Thread {
        do {
            let s = try FeatureStore(path: path)
            let b = try s.backbones()[0]
            for k in 0..<batches {
                try s.insertBatch(sampleBatch(k * perBatch..<(k + 1) * perBatch, d: d), backbone: b)
            }
        } catch { writerError.set("\(error)") }
        done.set(true)
    }
    writer.start()
    let reader = try FeatureStore(path: path)
    let b = try reader.backbones()[0]
    var reads = 0, lastCount = 0
    while !done.get() || reads < 3 {
        let index = try reader.loadVectors(backbone: b, filter: VectorFilter(), parallelThreshold: reads % 2 == 0 ? 1 : .max, workers: 2)
        #expect(index.count % perBatch == 0)  // only whole batches
        #expect(Set(index.imageIDs).count == index.count)
        #expect(index.count >= lastCount)
        lastCount = index.count
        let info = try reader.info()
        #expect(info.samples % perBatch == 0)
        reads += 1
    }
    #expect(writerError.get() == nil)
    #expect(try reader.loadVectors(backbone: b, workers: 2).count == batches * perBatch)
    #expect(reads >= 3)
    #expect(try reader.integrityProblems().isEmpty)
}

/// A tiny lock-protected box for test threads.
final class Atomic<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
}

/// `--format npy` renames the matrix first and the labels last: at the moment the new labels file
/// is about to replace the old one, the matrix on disk is already the new one (here: 6 rows where
/// the previous export had 2), so a reader that sees new labels never pairs them with an old matrix.
@Test(.serialized) func exportNPYRenamesTheLabelsLast() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 3)
    try store.insertBatch(sampleBatch(0..<8, d: 3), backbone: b)
    _ = try store.export(to: dir.file("out"), format: .npy, backbone: b, split: "val")   // the previous export
    func rows(_ path: String) -> Int? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return nil }
        return path.hasSuffix(".npy") ? (data.count - 10 - (Int(data[8]) | Int(data[9]) << 8)) / 12 : String(decoding: data, as: UTF8.self).split(separator: "\n").count - 1
    }
    #expect(rows(dir.file("out.npy")) == 2 && rows(dir.file("out.labels.csv")) == 2)

    var seen: [(file: String, npyRows: Int?, labelRows: Int?)] = []
    exportWillRename = { path in seen.append((URL(fileURLWithPath: path).lastPathComponent, rows(dir.file("out.npy")), rows(dir.file("out.labels.csv")))) }
    defer { exportWillRename = nil }
    _ = try store.export(to: dir.file("out"), format: .npy, backbone: b, split: "train")
    #expect(seen.map(\.file) == ["out.npy", "out.labels.csv"])
    // before the labels' rename: the new matrix (6 rows) is in place, the labels are still the old (2)
    #expect(seen.last?.npyRows == 6 && seen.last?.labelRows == 2)
    #expect(rows(dir.file("out.npy")) == 6 && rows(dir.file("out.labels.csv")) == 6)
}
