import Foundation
import Testing
import OutputFiles
@testable import Store
import TestSupport

// Issue 12, defects 1, 2 and 8: export never replaces a non-regular file, never writes into the
// store it reads, and replaces a regular file atomically.

/// A store of `n` samples of dimension `d` in `dir`, and its backbone.
private func exportStore(_ dir: TempDir, n: Int = 40, d: Int = 8) throws -> (FeatureStore, StoredBackbone) {
    let store = try FeatureStore(path: dir.file("S.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: d)
    var k = 0
    while k < n { try store.insertBatch(sampleBatch(k..<min(n, k + 500), d: d), backbone: b); k += 500 }
    return (store, b)
}

/// lstat's file type of `path` (S_IFCHR, S_IFLNK, ...), or nil when nothing is there.
private func fileType(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

private func hiddenTemporaries(_ dir: TempDir) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir.url.path)) ?? []).filter { $0.contains(".tmp-") }
}

/// Whether this process may create device nodes (root, outside a restricted container).
private let canMakeDevices: Bool = {
    let p = FileManager.default.temporaryDirectory.appendingPathComponent("probe-mknod-\(UUID().uuidString)").path
    defer { unlink(p) }
    return mknod(p, S_IFCHR | 0o666, 0x107) == 0   // major 1, minor 7: /dev/full
}()

@Test(.enabled(if: canMakeDevices, "mknod is not permitted here (needs root): the character-device case is skipped"))
func exportRefusesCharacterDevice() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir)
    let out = dir.file("fakefull")
    #expect(mknod(out, S_IFCHR | 0o666, 0x107) == 0)
    for format in [ExportFormat.csv, .npy] {
        let target = format == .csv ? out : dir.file("fakefull.npy")
        if format == .npy { #expect(mknod(target, S_IFCHR | 0o666, 0x107) == 0) }
        #expect(throws: OutputFileError.notRegularFile(path: target, kind: "a character device")) {
            try store.export(to: out, format: format, backbone: b)
        }
        #expect(fileType(target) == S_IFCHR, "the device at \(target) was replaced")
    }
    #expect(hiddenTemporaries(dir).isEmpty)
}

@Test func exportRefusesFIFOAndDirectory() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir)
    let fifo = dir.file("fifo.csv")
    #expect(mkfifo(fifo, 0o644) == 0)
    #expect(throws: OutputFileError.notRegularFile(path: fifo, kind: "a FIFO")) {
        try store.export(to: fifo, format: .csv, backbone: b)
    }
    #expect(fileType(fifo) == S_IFIFO)
    let folder = dir.file("folder.csv")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
    #expect(throws: OutputFileError.notRegularFile(path: folder, kind: "a directory")) {
        try store.export(to: folder, format: .csv, backbone: b)
    }
    #expect(fileType(folder) == S_IFDIR)
}

@Test func exportRefusesSymlink() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir)
    let real = dir.file("real.csv"), link = dir.file("link.csv")
    try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: real))
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
    let error = #expect(throws: OutputFileError.self) { try store.export(to: link, format: .csv, backbone: b) }
    #expect(error == .notRegularFile(path: link, kind: "a symbolic link"))
    #expect(error?.description.contains("give the link's target path") == true)
    #expect(fileType(link) == S_IFLNK, "the symlink was replaced")
    #expect(try String(contentsOfFile: real, encoding: .utf8) == "keep me\n")
    // A dangling symlink is refused too (it would otherwise create a file wherever it points).
    let dangling = dir.file("dangling.csv")
    try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: dir.file("nowhere/x.csv"))
    #expect(throws: OutputFileError.notRegularFile(path: dangling, kind: "a symbolic link")) {
        try store.export(to: dangling, format: .csv, backbone: b)
    }
    #expect(fileType(dangling) == S_IFLNK)
}

@Test func exportNeverWritesIntoItsStore() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir)
    let before = try store.canonicalDigest()
    let hard = dir.file("hardlink.sqlite")
    #expect(link(dir.file("S.sqlite"), hard) == 0)
    try FileManager.default.createDirectory(atPath: dir.file("sub"), withIntermediateDirectories: false)
    let spellings = [
        store.path,                                  // the same path
        dir.file("sub/../S.sqlite"),                 // another spelling
        dir.file("sub/../S.sqlite").replacingOccurrences(of: "/sub/..", with: "/./sub/../."),
        hard,                                        // a hard link
        store.path + "-wal", store.path + "-shm",    // SQLite's companions (present or not)
        store.path + "-journal",
    ]
    for out in spellings {
        for format in [ExportFormat.csv] {
            let error = #expect(throws: OutputFileError.self, "export to \(out)") { try store.export(to: out, format: format, backbone: b) }
            #expect(error == .wouldOverwriteInput(path: out, input: store.path))
        }
    }
    // npy: OUT.npy is checked as well as OUT.labels.csv (a store called X.npy).
    let npyStore = try FeatureStore(path: dir.file("T.npy"))
    let nb = try npyStore.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 8)
    try npyStore.insertBatch(sampleBatch(0..<4, d: 8), backbone: nb)
    #expect(throws: OutputFileError.wouldOverwriteInput(path: dir.file("T.npy"), input: npyStore.path)) {
        try npyStore.export(to: dir.file("T"), format: .npy, backbone: nb)
    }
    // The store is intact and still a probe store; nothing was left behind.
    #expect(try store.canonicalDigest() == before)
    #expect(try store.integrityProblems().isEmpty)
    #expect(try FeatureStore(path: store.path, readOnly: true).canonicalDigest() == before)
    #expect(hiddenTemporaries(dir).isEmpty)
}

@Test func exportFailingMidwayLeavesThePreviousFileWhole() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir, n: 3000, d: 128)   // > 1 MB: the failure comes after flushed writes
    let csv = dir.file("out.csv"), npy = dir.file("out.npy"), labels = dir.file("out.labels.csv")
    let previous = Data("previous export\n".utf8)
    for f in [csv, npy, labels] { try previous.write(to: URL(fileURLWithPath: f)) }
    // Inject a failure at the last row: a vector of the wrong length (the schema's trigger, which
    // normally prevents that, is dropped for the test).
    try store.database.execute("""
        DROP TRIGGER features_length_update;
        UPDATE features SET vector = x'00' WHERE image_id = (SELECT image_id FROM samples ORDER BY path DESC LIMIT 1)
        """)
    #expect(throws: StoreError.self) { try store.export(to: csv, format: .csv, backbone: b) }
    #expect(throws: StoreError.self) { try store.export(to: dir.file("out"), format: .npy, backbone: b) }
    for f in [csv, npy, labels] {
        #expect(try Data(contentsOf: URL(fileURLWithPath: f)) == previous, "\(f) was damaged by a failed export")
    }
    #expect(hiddenTemporaries(dir).isEmpty, "temporary files left: \(hiddenTemporaries(dir))")
}

@Test func exportReplacesARegularFileAndKeepsItsMode() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir)
    let csv = dir.file("out.csv")
    try Data("old\n".utf8).write(to: URL(fileURLWithPath: csv))
    #expect(chmod(csv, 0o600) == 0)
    let summary = try store.export(to: csv, format: .csv, backbone: b)
    #expect(summary.rows == 40)
    let text = try String(contentsOfFile: csv, encoding: .utf8)
    #expect(text.hasPrefix("path,label,split,f0,") && text.split(separator: "\n").count == 41)
    var st = stat()
    #expect(stat(csv, &st) == 0 && st.st_mode & 0o777 == 0o600)
    #expect(hiddenTemporaries(dir).isEmpty)
    #expect(throws: StoreError.self) { try store.export(to: "-", format: .npy, backbone: b) }
}

// MARK: kill -9 during export

private let exportChild = ProcessInfo.processInfo.environment["PROBE_EXPORT_KILL_CHILD"]

/// Not a test on its own: the child process of `killedExportLeavesOldOrNewFileWhole`, which
/// exports the store (path before '|') to the output (after '|') until it is killed.
@Test(.enabled(if: exportChild != nil, "child process of killedExportLeavesOldOrNewFileWhole"))
func exportKillChild() throws {
    let parts = exportChild!.split(separator: "|").map(String.init)
    let store = try FeatureStore(path: parts[0], readOnly: true)
    let b = try #require(try store.backbones().first)
    for _ in 0..<100_000 { _ = try store.export(to: parts[1], format: .npy, backbone: b) }
}

private func inode(_ path: String) -> UInt64 {
    var st = stat()
    return stat(path, &st) == 0 ? UInt64(st.st_ino) : 0
}

/// kill -9 at 20 random moments of an export over a previous export: the .npy and the labels CSV
/// are each the previous file or the new one, whole (here both are the same bytes).
@Test(.enabled(if: exportChild == nil && canSpawnTestChild, "needs to re-run the test executable as a child (Linux)"))
func killedExportLeavesOldOrNewFileWhole() throws {
    let dir = try TempDir()
    let (store, b) = try exportStore(dir, n: 4000, d: 512)   // an 8 MB matrix
    let base = dir.file("out")
    _ = try store.export(to: base, format: .npy, backbone: b)
    let npy = try Data(contentsOf: URL(fileURLWithPath: base + ".npy"))
    let labels = try Data(contentsOf: URL(fileURLWithPath: base + ".labels.csv"))
    var midWrite = 0
    for round in 0..<20 {
        let child = try spawnTestChild(filter: "exportKillChild", environment: ["PROBE_EXPORT_KILL_CHILD": store.path + "|" + base])
        // Wait until the child writes (a temporary file, or a new file at the path), then kill at
        // a random moment.
        let deadline = Date().addingTimeInterval(20)
        let inode0 = inode(base + ".npy")
        while hiddenTemporaries(dir).isEmpty && inode(base + ".npy") == inode0 && child.isRunning && Date() < deadline { usleep(1000) }
        usleep(UInt32.random(in: 0..<300_000))
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal, "round \(round): the child exited on its own")
        let leftovers = hiddenTemporaries(dir)
        if !leftovers.isEmpty { midWrite += 1 }
        #expect(try Data(contentsOf: URL(fileURLWithPath: base + ".npy")) == npy, "round \(round): the .npy is not whole")
        #expect(try Data(contentsOf: URL(fileURLWithPath: base + ".labels.csv")) == labels, "round \(round): the labels CSV is not whole")
    }
    // The next export removes what the killed writers left.
    _ = try store.export(to: base, format: .npy, backbone: b)
    #expect(hiddenTemporaries(dir).isEmpty, "left: \(hiddenTemporaries(dir))")
    print("killed export: 20 kills, \(midWrite) while a temporary file was being written")
}
