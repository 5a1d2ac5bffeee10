import Foundation

/// torchvision `datasets.ImageFolder`: classes are the sorted sub-folder names of `root`, samples are
/// every file below a class folder (recursively, following symlinks) whose lower-cased name ends with
/// one of `imageExtensions`, sorted by (directory, file name) within each class, classes in order.
/// Sorting is by Unicode code points, as Python's `sorted`.
public struct ImageFolder: Sendable {
    /// torchvision's `IMG_EXTENSIONS`.
    public static let imageExtensions = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"]

    public struct Sample: Sendable, Equatable {
        public var path: String
        public var label: Int
    }

    /// A file that was accepted by extension but could not be decoded, with the reason.
    public struct Failure: Sendable, CustomStringConvertible {
        public var path: String
        public var error: VisionError
        public var description: String { error.description }
    }

    public let root: String
    public let classes: [String]
    public let samples: [Sample]
    /// Files under class folders skipped because of their extension (e.g. `imageNotFound.gif`).
    public let skippedByExtension: [String]

    static func codePointLess(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    public static func hasImageExtension(_ name: String) -> Bool {
        let lower = name.lowercased()
        return imageExtensions.contains { lower.hasSuffix($0) }
    }

    /// Scans one class-per-folder tree.
    public static func scan(root: String) throws(VisionError) -> ImageFolder {
        guard isDirectory(root) else { throw .badDatasetRoot(path: root, reason: "not a directory") }
        let fm = FileManager.default
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: root) } catch {
            throw .badDatasetRoot(path: root, reason: "cannot list: \((error as NSError).localizedDescription)")
        }
        let classes = entries.filter { isDirectory(root + "/" + $0) }.sorted(by: codePointLess)
        if classes.isEmpty { throw .badDatasetRoot(path: root, reason: "no class sub-folders") }
        var samples: [Sample] = []
        var skipped: [String] = []
        var empty: [String] = []
        for (label, cls) in classes.enumerated() {
            var files: [(dir: String, name: String)] = []
            walk(root + "/" + cls, into: &files, depth: 0)
            files.sort { $0.dir == $1.dir ? codePointLess($0.name, $1.name) : codePointLess($0.dir, $1.dir) }
            var n = 0
            for f in files {
                let path = f.dir + "/" + f.name
                if hasImageExtension(f.name) { samples.append(Sample(path: path, label: label)); n += 1 }
                else { skipped.append(path) }
            }
            if n == 0 { empty.append(cls) }
        }
        if !empty.isEmpty {
            throw .badDatasetRoot(path: root, reason: "no valid image file in class folder(s) \(empty.joined(separator: ", ")) (extensions: \(imageExtensions.joined(separator: " ")))")
        }
        return ImageFolder(root: root, classes: classes, samples: samples, skippedByExtension: skipped)
    }

    private static func walk(_ dir: String, into files: inout [(dir: String, name: String)], depth: Int) {
        guard depth < 64, let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for e in entries {
            let p = dir + "/" + e
            if isDirectory(p) { walk(p, into: &files, depth: depth + 1) } else { files.append((dir, e)) }
        }
    }

    /// Decodes sample `i`.
    public func decode(_ i: Int) throws(VisionError) -> RGBImage {
        try ImageDecoder.decode(path: samples[i].path)
    }

    /// Decodes every sample once and returns the ones that fail, with their reasons (callers skip them).
    public func undecodable() -> [Failure] {
        var out: [Failure] = []
        for s in samples {
            do { _ = try ImageDecoder.decode(path: s.path) } catch { out.append(Failure(path: s.path, error: error)) }
        }
        return out
    }

    /// Number of samples per class.
    public var classCounts: [Int] {
        var c = [Int](repeating: 0, count: classes.count)
        for s in samples { c[s.label] += 1 }
        return c
    }
}

/// A data set root: either `train/` and `val/` sub-trees (the tutorial's hymenoptera_data layout)
/// or a single class-per-folder tree.
public enum DatasetLayout: Sendable {
    case split(train: ImageFolder, val: ImageFolder)
    case single(ImageFolder)

    /// Detects the layout: a root holding both `train` and `val` directories is a split.
    public static func detect(root: String) throws(VisionError) -> DatasetLayout {
        let t = root + "/train", v = root + "/val"
        if ImageFolder.isDirectory(t) && ImageFolder.isDirectory(v) {
            let train = try ImageFolder.scan(root: t)
            let val = try ImageFolder.scan(root: v)
            if train.classes != val.classes {
                throw .badDatasetRoot(path: root, reason: "train classes \(train.classes) differ from val classes \(val.classes)")
            }
            return .split(train: train, val: val)
        }
        return .single(try ImageFolder.scan(root: root))
    }

    public var train: ImageFolder {
        switch self { case .split(let t, _): return t; case .single(let f): return f }
    }
    public var validation: ImageFolder? {
        switch self { case .split(_, let v): return v; case .single: return nil }
    }
}
