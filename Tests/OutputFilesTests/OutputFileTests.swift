import Foundation
import Testing
@testable import OutputFiles

private func scratch() throws -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("probe-outputfile-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// A writer abandoned midway (an error in the producer) leaves the previous file whole and no
/// temporary file; a committed one replaces it.
@Test func atomicWriterAbandonedMidwayKeepsThePreviousFile() throws {
    let dir = try scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/out.bin"
    try Data("previous".utf8).write(to: URL(fileURLWithPath: path))
    struct Injected: Error {}
    #expect(throws: Injected.self) {
        let w = try AtomicFileWriter(path: path)
        try w.write([UInt8](repeating: 7, count: 3 << 20))   // past the 1 MB buffer: really written
        throw Injected()
    }
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "previous")
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.bin"])
    try writeFileAtomically([1, 2, 3], to: path)
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([1, 2, 3]))
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.bin"])
}

/// Names derived from user input (a head's name) stay in the current directory.
@Test func safeFileNameStaysInTheCurrentDirectory() {
    #expect(OutputFile.safeFileName("../../x") == "____x")
    #expect(OutputFile.safeFileName("/abs/x") == "_abs_x")
    #expect(OutputFile.safeFileName("..") == "_")
    #expect(OutputFile.safeFileName("...") == "_.")
    #expect(OutputFile.safeFileName(".hidden") == "_hidden")
    #expect(OutputFile.safeFileName("") == "out")
    #expect(OutputFile.safeFileName("tutorial-lr0.01_v2") == "tutorial-lr0.01_v2")
    #expect(OutputFile.safeFileName("têtes/a\\b c") == "t_tes_a_b_c")
    for name in ["../../x", "/abs/x", "a/../../b", "....//..", "x/..", "\u{0}..", "é/.."] {
        let s = OutputFile.safeFileName(name)
        #expect(!s.contains("/") && !s.contains("..") && !s.hasPrefix("."), "\(name) -> \(s)")
    }
}

/// The protected input (a store) is refused under every spelling, a hard link, and its companions.
@Test func protectedInputRefusedUnderAnySpelling() throws {
    let dir = try scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = dir + "/S.sqlite"
    try Data("store".utf8).write(to: URL(fileURLWithPath: store))
    #expect(link(store, dir + "/hard") == 0)
    try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: false)
    for p in [store, dir + "/sub/../S.sqlite", dir + "/./S.sqlite", dir + "/hard", store + "-wal", store + "-shm", dir + "/sub/../S.sqlite-journal"] {
        #expect(throws: OutputFileError.wouldOverwriteInput(path: p, input: store)) { try writeFileAtomically([0], to: p, protecting: [store]) }
    }
    #expect(try String(contentsOfFile: store, encoding: .utf8) == "store")
    try writeFileAtomically([0], to: dir + "/other.sqlite", protecting: [store])
}

/// A temporary file left by a killed writer (its process gone) is removed by the next write of
/// that name; one of a live process (this one) is left alone.
@Test func staleTemporariesOfKilledWritersAreRemoved() throws {
    let dir = try scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let stale = dir + "/.out.npy.tmp-999999999-abc", live = dir + "/.out.npy.tmp-\(getpid())-def"
    let other = dir + "/.other.npy.tmp-999999999-abc"
    for f in [stale, live, other] { try Data([1]).write(to: URL(fileURLWithPath: f)) }
    try writeFileAtomically([1, 2], to: dir + "/out.npy")
    let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
    #expect(left == [".out.npy.tmp-\(getpid())-def", ".other.npy.tmp-999999999-abc", "out.npy"])
}
