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
