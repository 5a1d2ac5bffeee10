// What the test targets share: where ../shared is (data, weights, PyTorch's reference outputs) and
// temporary directories. A regular target that only test targets depend on (not in ProbeKit).

import Foundation

/// ../shared next to the package root (this file is <root>/Tests/TestSupport/TestSupport.swift), or
/// $PROBE_SHARED when it is set and not empty. Each test target checks for the files it needs
/// and skips with a message when they are absent.
public let sharedDirectory: String = {
    if let env = ProcessInfo.processInfo.environment["PROBE_SHARED"], !env.isEmpty { return env }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.deletingLastPathComponent().appendingPathComponent("shared").path
}()

/// The reference images of ../shared/reference/manifest.json (manifest order), as paths relative
/// to the data root.
public func manifestImages() throws -> [String] {
    let data = try Data(contentsOf: URL(fileURLWithPath: sharedDirectory + "/reference/manifest.json"))
    let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    return json?["images"] as? [String] ?? []
}

/// A fresh temporary directory `probe-<tag>-<UUID>`, kept (the test removes it, or leaves it to look at).
public func temporaryDirectory(_ tag: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(tag)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// A temporary directory removed when released.
public final class TempDir {
    public let url: URL
    public init(_ tag: String = "tests") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public var path: String { url.path }
    public func file(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Sets or clears the immutable attribute (`chattr +i`): tests run as root, which ignores
/// permission bits but not this flag, so it makes a file or directory truly unwritable.
@discardableResult
public func chattrImmutable(_ path: String, _ on: Bool) -> Bool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
    p.arguments = [on ? "+i" : "-i", path]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

/// Whether `chattr +i` works here (the tool exists and the temporary directory's file system supports it).
public let chattrWorks: Bool = {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chattr"),
          let dir = try? TempDir() else { return false }
    let probe = dir.file("probe")
    FileManager.default.createFile(atPath: probe, contents: Data())
    guard chattrImmutable(probe, true) else { return false }
    defer { chattrImmutable(probe, false) }
    return !FileManager.default.isWritableFile(atPath: probe)
}()
