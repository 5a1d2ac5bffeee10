import Foundation
import Testing
@testable import Vision
import TestSupport

@Suite("ImageFolder and preview")
struct FolderTests {
    @Test("hymenoptera_data: 244 train in 2 classes, 153 val", .enabled(if: sharedAvailable, "needs ../shared/data"))
    func hymenoptera() throws {
        let layout = try DatasetLayout.detect(root: datasetRoot)
        guard case .split(let train, let val) = layout else { Issue.record("expected train/val split"); return }
        #expect(train.classes == ["ants", "bees"])
        #expect(val.classes == ["ants", "bees"])
        #expect(train.samples.count == 244)
        #expect(val.samples.count == 153)
        #expect(train.skippedByExtension.map { ($0 as NSString).lastPathComponent } == ["imageNotFound.gif"])
        // Same order as torchvision's ImageFolder: first and last samples.
        #expect(train.samples.first?.path.hasSuffix("train/ants/0013035.jpg") == true)
        #expect(train.samples.first?.label == 0 && train.samples.last?.label == 1)
        #expect(train.classCounts == [123, 121])
        // A single tree is detected as such.
        let single = try DatasetLayout.detect(root: datasetRoot + "/val")
        guard case .single(let f) = single else { Issue.record("expected single tree"); return }
        #expect(f.samples.count == 153 && single.validation == nil)
    }

    @Test func sortingExtensionsAndFailures() throws {
        let root = temporaryDirectory("vision")
        let fm = FileManager.default
        for d in ["b_class", "A_class", "a_class/nested", "empty_is_not_a_class_file.txt"] where !d.hasSuffix(".txt") {
            try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
        }
        fm.createFile(atPath: root + "/stray.jpg", contents: Data([1]))
        let png = try PNGWriter.encode(RGBImage(width: 4, height: 3, pixels: pattern(4, 3, channels: 3)))
        for f in ["A_class/z.PNG", "A_class/b.Jpeg", "a_class/x.png", "a_class/nested/a.png", "b_class/1.webp", "b_class/0.png"] {
            fm.createFile(atPath: root + "/" + f, contents: png)
        }
        fm.createFile(atPath: root + "/b_class/notes.txt", contents: Data("hi".utf8))
        fm.createFile(atPath: root + "/b_class/broken.jpg", contents: Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16]))
        let folder = try ImageFolder.scan(root: root)
        #expect(folder.classes == ["A_class", "a_class", "b_class"])   // code-point order: upper case first
        let rel = folder.samples.map { String($0.path.dropFirst(root.count + 1)) }
        #expect(rel == ["A_class/b.Jpeg", "A_class/z.PNG", "a_class/x.png", "a_class/nested/a.png",
                        "b_class/0.png", "b_class/1.webp", "b_class/broken.jpg"])
        #expect(folder.samples.map(\.label) == [0, 0, 1, 1, 2, 2, 2])
        #expect(folder.skippedByExtension.count == 1)
        // WebP bytes are really PNG here (decodes); broken.jpg fails with a reason, not fatally.
        let failures = folder.undecodable()
        #expect(failures.count == 1)
        #expect(failures.first?.path.hasSuffix("broken.jpg") == true)
        if case .corrupt(_, "JPEG", _) = failures.first?.error {} else { Issue.record("broken.jpg: \(String(describing: failures.first))") }
    }

    @Test func badRoots() {
        expectError({ _ = try ImageFolder.scan(root: "/nonexistent/root") }, {
            if case .badDatasetRoot = $0 { return true }; return false
        }, "missing root")
        let root = temporaryDirectory("vision")
        expectError({ _ = try ImageFolder.scan(root: root) }, {
            if case .badDatasetRoot = $0 { return $0.description.contains("no class") }; return false
        }, "no class folders")
        try? FileManager.default.createDirectory(atPath: root + "/cls", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/cls/readme.md", contents: Data("x".utf8))
        expectError({ _ = try ImageFolder.scan(root: root) }, {
            if case .badDatasetRoot = $0 { return $0.description.contains("cls") }; return false
        }, "class without images")
    }

    @Test func fontTableIsComplete() {
        #expect(BitmapFont.columns.count == 95 * 5)
        var img = RGBImage(width: 60, height: 20)
        BitmapFont.draw("Ab1", into: &img, x: 0, y: 0, scale: 1, color: (255, 255, 255))
        // 'A' column 0 is 0x7C: rows 2...6 lit, rows 0-1 dark.
        func lit(_ x: Int, _ y: Int) -> Bool { img.pixels[(y * 60 + x) * 3] == 255 }
        #expect(!lit(0, 0) && !lit(0, 1) && lit(0, 2) && lit(0, 6) && !lit(0, 7))
        #expect(img.pixels.contains(255))
    }

    @Test func previewGridFromATempTree() throws {
        let root = temporaryDirectory("vision")
        let fm = FileManager.default
        for (cls, color) in [("ants", UInt8(200)), ("bees", UInt8(40))] {
            try fm.createDirectory(atPath: root + "/train/" + cls, withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/val/" + cls, withIntermediateDirectories: true)
            for i in 0..<3 {
                let png = try PNGWriter.encode(RGBImage(width: 80 + i * 10, height: 60, pixels: [UInt8](repeating: color, count: (80 + i * 10) * 60 * 3)))
                try png.write(to: URL(fileURLWithPath: "\(root)/train/\(cls)/\(i).png"))
                try png.write(to: URL(fileURLWithPath: "\(root)/val/\(cls)/\(i).png"))
            }
        }
        fm.createFile(atPath: root + "/val/bees/bad.png", contents: Data("not a png".utf8))
        let (grid, failures) = try renderPreviewGrid(root: root, options: PreviewOptions(count: 7, augment: false, seed: 3))
        #expect(failures.count == 1)
        // 7 requested, 6 decodable: 6 tiles -> 3 columns, 2 rows.
        #expect(grid.width == 3 * (224 + 6) + 6)
        #expect(grid.height == 2 * (224 + 16 + 8 + 6) + 6)
        let (aug1, _) = try renderPreviewGrid(root: root, options: PreviewOptions(count: 4, augment: true, seed: 3))
        let (aug2, _) = try renderPreviewGrid(root: root, options: PreviewOptions(count: 4, augment: true, seed: 3))
        #expect(aug1 == aug2, "same seed, same grid")
        let out = root + "/grid.png"
        let summary = try writePreviewGrid(root: root, to: out, options: PreviewOptions(count: 4))
        #expect(summary.contains("grid.png"))
        let back = try ImageDecoder.decode(path: out)
        #expect(back.width == 2 * 230 + 6)
    }
}
