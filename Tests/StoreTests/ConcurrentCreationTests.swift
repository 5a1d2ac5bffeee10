import Foundation
import Testing
@testable import Store
import TestSupport

private let createChildPath = ProcessInfo.processInfo.environment["PROBE_STORE_CREATE_CHILD"]

/// Not a test on its own: a child process of `concurrentCreationOfANewStoreSucceeds`, which opens
/// (creating) the store and writes one row.
@Test(.enabled(if: createChildPath != nil, "child process of concurrentCreationOfANewStoreSucceeds"))
func createStoreChild() throws {
    let store = try FeatureStore(path: createChildPath!)
    _ = try store.backbone(architecture: "m", weightsSHA256: String(repeating: "a", count: 64), dimension: 4)
}

/// Four processes creating the same new store at once all succeed, 25 times (100 openings): switching
/// a new file to WAL mode can report SQLITE_BUSY at once, without the busy timeout's wait, so opening
/// retries it within that timeout.
@Test(.enabled(if: createChildPath == nil && canSpawnTestChild, "needs to re-run the test executable as a child (Linux)"))
func concurrentCreationOfANewStoreSucceeds() throws {
    let dir = try TempDir()
    var failures: [String] = []
    for round in 0..<25 {
        let path = dir.file("new-\(round).sqlite")
        var children: [(Process, Pipe)] = []
        for _ in 0..<4 {
            let pipe = Pipe()
            let child = try spawnTestChild(filter: "createStoreChild", environment: ["PROBE_STORE_CREATE_CHILD": path], output: pipe)
            children.append((child, pipe))
        }
        for (child, pipe) in children {
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            if child.terminationStatus != 0 {
                let reason = out.split(separator: "\n").filter { $0.contains("rror") || $0.contains("✘") || $0.contains("atal") }.prefix(3).joined(separator: " | ")
                try? out.write(toFile: NSTemporaryDirectory() + "probe-concurrent-creation-failure.txt", atomically: true, encoding: .utf8)
                failures.append("round \(round): exit \(child.terminationStatus) \(reason)")
            }
        }
    }
    #expect(failures.isEmpty, "\(failures.count) of 100 openings failed; first: \(failures.first ?? "")")
    print("concurrent creation: \(100 - failures.count) of 100 openings succeeded")
}
