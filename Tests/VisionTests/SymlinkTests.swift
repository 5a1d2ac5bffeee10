import Foundation
import Testing
@testable import Vision
import TestSupport

final class WalkResultBox<T>: @unchecked Sendable { var value: Result<T, any Error>? }

/// Runs `body` on its own thread and gives up after `seconds` (a walk that loops must fail the
/// test, not hang the suite; the runaway thread is left behind).
func withinSeconds<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () throws -> T) -> Result<T, any Error>? {
    let box = WalkResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread { box.value = Result { try body() }; done.signal() }
    thread.stackSize = 64 << 20
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return box.value
}

/// `base/<name>/{ants/a.png, ants/a2.png, bees/b.png}`: returns (base, root).
func symlinkTree(_ name: String = "data") throws -> (base: String, root: String) {
    let base = temporaryDirectory("vision")
    let root = base + "/" + name
    let fm = FileManager.default
    for d in ["ants", "bees"] { try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true) }
    let png = try PNGWriter.encode(RGBImage(width: 4, height: 3, pixels: pattern(4, 3, channels: 3)))
    for f in ["ants/a.png", "ants/a2.png", "bees/b.png"] { _ = fm.createFile(atPath: root + "/" + f, contents: png) }
    return (base, root)
}

/// The path with every link resolved.
func canonicalPath(_ path: String) -> String? {
    URL(fileURLWithPath: path).resolvingSymlinksInPath().path
}

func link(_ path: String, to target: String) throws {
    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
}

/// Sample paths relative to `root`, with labels.
func relativeSamples(_ f: ImageFolder, _ root: String) -> [String] {
    f.samples.map { String($0.path.dropFirst(root.count + 1)) + ":\(f.classes[$0.label])" }
}

/// Scans within 10 s, or records a failure.
func boundedScan(_ root: String) throws -> ImageFolder? {
    guard let r = withinSeconds(10, { try ImageFolder.scan(root: root) }) else {
        Issue.record("the walk of \(root) did not end within 10 s (symbolic link loop)")
        return nil
    }
    return try r.get()
}

@Suite("Symbolic links in ImageFolder trees")
struct SymlinkTests {
    /// `ants/up -> ..` used to descend 64 levels and label the bee pictures "ants".
    @Test func loopToTheRootIsNotWalked() throws {
        let (base, root) = try symlinkTree()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try link(root + "/ants/up", to: "..")
        let f = try #require(try boundedScan(root))
        #expect(relativeSamples(f, root) == ["ants/a.png:ants", "ants/a2.png:ants", "bees/b.png:bees"])
    }

    /// `ants/up -> ..` with `bees/self -> ../../loop` (the root), and two folders linking to each
    /// other: the old walk branched at every level and never ended.
    @Test func mutualLoopsEnd() throws {
        let (base, root) = try symlinkTree("loop")
        defer { try? FileManager.default.removeItem(atPath: base) }
        try link(root + "/ants/up", to: "..")
        try link(root + "/bees/self", to: "../../loop")
        try FileManager.default.createDirectory(atPath: root + "/ants/x", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/ants/y", withIntermediateDirectories: true)
        try link(root + "/ants/x/toy", to: "../y")
        try link(root + "/ants/y/tox", to: "../x")
        let f = try #require(try boundedScan(root))
        #expect(relativeSamples(f, root) == ["ants/a.png:ants", "ants/a2.png:ants", "bees/b.png:bees"])
    }

    /// Links leading out of the folder are not followed (a folder or a file); a link to a file
    /// inside the folder is (its label is the class folder of the link).
    @Test func linksOutOfTheRootAreNotFollowed() throws {
        let (base, root) = try symlinkTree()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: base + "/outside/deep", withIntermediateDirectories: true)
        let png = try Data(contentsOf: URL(fileURLWithPath: root + "/bees/b.png"))
        _ = fm.createFile(atPath: base + "/outside/o.png", contents: png)
        _ = fm.createFile(atPath: base + "/outside/deep/o2.png", contents: png)
        try link(root + "/bees/ext", to: "../../outside")
        try link(root + "/ants/far.png", to: "../../outside/o.png")
        try link(root + "/ants/near.png", to: "../bees/b.png")
        let f = try #require(try boundedScan(root))
        #expect(relativeSamples(f, root) == ["ants/a.png:ants", "ants/a2.png:ants", "ants/near.png:ants", "bees/b.png:bees"])
    }

    /// A sample's label is its class folder: the first level below the root where the file really
    /// is, never a class reached through a link (`bees/toants -> ../ants`), whatever the folder
    /// names deeper down (`ants/nested/bees/`).
    @Test func labelsComeFromTheClassFolderBelowTheRoot() throws {
        let (base, root) = try symlinkTree()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/ants/nested/bees", withIntermediateDirectories: true)
        try fm.copyItem(atPath: root + "/bees/b.png", toPath: root + "/ants/nested/bees/n.png")
        try link(root + "/bees/toants", to: "../ants")
        let f = try #require(try boundedScan(root))
        #expect(relativeSamples(f, root) == ["ants/a.png:ants", "ants/a2.png:ants", "ants/nested/bees/n.png:ants", "bees/b.png:bees"])
        let realRoot = try #require(canonicalPath(root))
        for s in f.samples {
            let real = try #require(canonicalPath(s.path))
            #expect(real.dropFirst(realRoot.count + 1).split(separator: "/").first.map(String.init) == f.classes[s.label], "\(s.path)")
        }
    }

    /// In a train/val tree, `train/ants/up -> ../..` (the data set root) used to pull the val
    /// pictures into train.
    @Test func loopInASplitTreeKeepsValOutOfTrain() throws {
        let base = temporaryDirectory("vision")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        let png = try PNGWriter.encode(RGBImage(width: 4, height: 3, pixels: pattern(4, 3, channels: 3)))
        for d in ["train/ants", "train/bees", "val/ants", "val/bees"] {
            try fm.createDirectory(atPath: base + "/D/" + d, withIntermediateDirectories: true)
            _ = fm.createFile(atPath: base + "/D/" + d + "/x.png", contents: png)
        }
        try link(base + "/D/train/ants/up", to: "../..")
        guard let r = withinSeconds(10, { try DatasetLayout.detect(root: base + "/D") }) else {
            Issue.record("the walk did not end within 10 s"); return
        }
        guard case .split(let train, let val) = try r.get() else { Issue.record("expected a split"); return }
        #expect(relativeSamples(train, base + "/D/train") == ["ants/x.png:ants", "bees/x.png:bees"])
        #expect(val.samples.count == 2)
    }
}
