import Foundation
import Testing
@testable import Vision

@Suite("Symbolic links: reports and --follow-symlinks")
struct SymlinkOptionTests {
    /// Without the option, what was not followed is listed.
    @Test func skippedLinksAreReported() throws {
        let (base, root) = try symlinkTree()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/bees/b.png", toPath: base + "/outside/o.png")
        try link(root + "/ants/up", to: "..")
        try link(root + "/bees/ext", to: "../../outside")
        try link(root + "/ants/far.png", to: "../../outside/o.png")
        try link(root + "/cats", to: "../outside")   // a class folder that is a link
        let f = try #require(try boundedScan(root))
        #expect(f.classes == ["ants", "bees"])
        #expect(f.skippedLinks.map { String($0.dropFirst(root.count + 1)) } == ["ants/far.png", "ants/up", "bees/ext", "cats"])
        #expect(f.loops.isEmpty)
    }

    /// With the option, links out of the folder are followed (labels stay the class folder the
    /// link is in) and every cycle is detected by device and inode: to the root, to a class
    /// folder, to a folder above, and between two folders outside.
    @Test func followingLinksStillDetectsCycles() throws {
        let (base, root) = try symlinkTree("loop")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: base + "/outside/deep", withIntermediateDirectories: true)
        try fm.copyItem(atPath: root + "/bees/b.png", toPath: base + "/outside/o.png")
        try fm.copyItem(atPath: root + "/bees/b.png", toPath: base + "/outside/deep/o2.png")
        try link(root + "/ants/up", to: "..")
        try link(root + "/bees/self", to: "../../loop")
        try link(root + "/bees/toants", to: "../ants")
        try link(root + "/bees/ext", to: "../../outside")
        try link(base + "/outside/back", to: "..")
        try link(base + "/outside/deep/top", to: "../../outside")
        try link(base + "/outside/toroot", to: "../loop")
        guard let r = withinSeconds(10, { try ImageFolder.scan(root: root, followSymlinks: true) }) else {
            Issue.record("the walk did not end within 10 s"); return
        }
        let f = try r.get()
        #expect(relativeSamples(f, root) == ["ants/a.png:ants", "ants/a2.png:ants", "bees/b.png:bees",
                                             "bees/ext/o.png:bees", "bees/ext/deep/o2.png:bees"])
        #expect(f.loops.map { String($0.dropFirst(root.count + 1)) }
                == ["ants/up", "bees/ext/back/loop", "bees/ext/back/outside", "bees/ext/deep/top", "bees/ext/toroot",
                    "bees/self", "bees/toants"])
        #expect(f.skippedLinks.isEmpty)
        // `outside/back -> ..` leads to the folder holding the root and outside/: neither is
        // entered again.
        #expect(!f.samples.contains { $0.path.contains("/back/") })
    }

    /// A class folder that is a link is a class only with the option.
    @Test func linkedClassFolderWithTheOption() throws {
        let (base, root) = try symlinkTree()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/bees/b.png", toPath: base + "/outside/o.png")
        try link(root + "/cats", to: "../outside")
        try link(root + "/same", to: ".")
        #expect(try ImageFolder.scan(root: root).classes == ["ants", "bees"])
        let f = try ImageFolder.scan(root: root, followSymlinks: true)
        #expect(f.classes == ["ants", "bees", "cats"])
        #expect(f.loops.map { String($0.dropFirst(root.count + 1)) } == ["same"])
    }
}
