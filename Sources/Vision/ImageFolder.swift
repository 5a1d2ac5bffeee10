import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A directory's identity: device and inode (what `find -L` and `du` use to detect cycles).
public struct FileID: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    /// The identity of what `path` names; `followLink` stats the link's target instead of the link.
    public init?(path: String, followLink: Bool = true) {
        var st = stat()
        guard (followLink ? stat(path, &st) : lstat(path, &st)) == 0 else { return nil }
        device = UInt64(st.st_dev); inode = UInt64(st.st_ino)
    }
}

/// torchvision `datasets.ImageFolder`: classes are the sorted sub-folder names of `root`, samples are
/// every file below a class folder (recursively) whose lower-cased name ends with one of
/// `imageExtensions`, sorted by (directory, file name) within each class, classes in order.
/// Sorting is by Unicode code points, as Python's `sorted`.
///
/// Symbolic links (the walker never loops and, by default, stays inside the folder):
/// - without `followSymlinks`, a link to a directory is never followed (the class folders too),
///   and a link to a file is followed only when its target lies inside `within` (default: the
///   root); links not followed are listed in `skippedLinks`.
/// - with `followSymlinks`, every link is followed, and a directory whose device and inode is the
///   root, a class folder, an `exclude`d folder or a folder above it on the walk is not entered
///   again: it is listed in `loops`.
/// A sample's label is always the class folder it was found under: the first directory level below
/// the root.
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
    /// Symbolic links not followed (to a directory, or out of the folder) because `followSymlinks` was off.
    public var skippedLinks: [String] = []
    /// Directories reached again through a link (a cycle), not entered.
    public var loops: [String] = []

    init(root: String, classes: [String], samples: [Sample], skippedByExtension: [String]) {
        self.root = root; self.classes = classes; self.samples = samples; self.skippedByExtension = skippedByExtension
    }

    static func codePointLess(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    /// Whether `path` is a directory (following a link only when `followLink`).
    public static func isDirectory(_ path: String, followLink: Bool = true) -> Bool {
        var st = stat()
        guard (followLink ? stat(path, &st) : lstat(path, &st)) == 0 else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isLink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    /// The canonical path (links resolved), or nil.
    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    public static func hasImageExtension(_ name: String) -> Bool {
        let lower = name.lowercased()
        return imageExtensions.contains { lower.hasSuffix($0) }
    }

    /// Scans one class-per-folder tree (see the type's notes on symbolic links).
    public static func scan(root: String, followSymlinks: Bool = false, within: String? = nil,
                            exclude: Set<FileID> = []) throws(VisionError) -> ImageFolder {
        guard isDirectory(root) else { throw .badDatasetRoot(path: root, reason: "not a directory") }
        let fm = FileManager.default
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: root) } catch {
            throw .badDatasetRoot(path: root, reason: "cannot list: \((error as NSError).localizedDescription)")
        }
        var walker = Walker(followSymlinks: followSymlinks, boundary: realPath(within ?? root) ?? root)
        var blocked = exclude
        if let id = FileID(path: root) { blocked.insert(id) }
        var classes: [String] = []
        for e in entries.sorted(by: codePointLess) {
            let p = root + "/" + e
            guard isDirectory(p) else { continue }
            if isLink(p) {
                if !followSymlinks { walker.skippedLinks.append(p); continue }
                if let id = FileID(path: p), blocked.contains(id) { walker.loops.append(p); continue }
            }
            classes.append(e)
        }
        if classes.isEmpty {
            var reason = "no class sub-folders"
            if !walker.skippedLinks.isEmpty {
                reason += " (\(walker.skippedLinks.count) symbolic link(s) to folders not followed: pass --follow-symlinks to follow them)"
            }
            throw .badDatasetRoot(path: root, reason: reason)
        }
        for c in classes { if let id = FileID(path: root + "/" + c) { blocked.insert(id) } }
        var samples: [Sample] = []
        var skipped: [String] = []
        var empty: [String] = []
        for (label, cls) in classes.enumerated() {
            var files: [(dir: String, name: String)] = []
            walker.walk(root + "/" + cls, into: &files, blocked: blocked, depth: 0)
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
        var folder = ImageFolder(root: root, classes: classes, samples: samples, skippedByExtension: skipped)
        folder.skippedLinks = walker.skippedLinks.sorted(by: codePointLess)
        folder.loops = walker.loops.sorted(by: codePointLess)
        return folder
    }

    /// The recursive listing below one class folder.
    struct Walker {
        let followSymlinks: Bool
        /// Canonical path a file link must stay inside when links are not followed.
        let boundary: String
        var skippedLinks: [String] = []
        var loops: [String] = []

        /// Lists `dir` recursively; `blocked` holds the identities of the root, the class folders
        /// and every directory above on this walk: reaching one again is a cycle.
        mutating func walk(_ dir: String, into files: inout [(dir: String, name: String)], blocked: Set<FileID>, depth: Int) {
            guard depth < 256, let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
            var blocked = blocked
            if let id = FileID(path: dir) { blocked.insert(id) }
            for e in entries {
                let p = dir + "/" + e
                if ImageFolder.isLink(p) {
                    let isDir = ImageFolder.isDirectory(p)
                    if !followSymlinks {
                        if isDir { skippedLinks.append(p); continue }
                        // A file link is followed only when it stays inside the folder (dangling
                        // links are listed as files: extraction reports them as unreadable).
                        if let target = ImageFolder.realPath(p), !(target.hasPrefix(boundary + "/")) {
                            skippedLinks.append(p); continue
                        }
                        files.append((dir, e)); continue
                    }
                    if isDir {
                        if let id = FileID(path: p), blocked.contains(id) { loops.append(p); continue }
                        walk(p, into: &files, blocked: blocked, depth: depth + 1)
                    } else {
                        files.append((dir, e))
                    }
                } else if ImageFolder.isDirectory(p, followLink: false) {
                    if let id = FileID(path: p), blocked.contains(id) { loops.append(p); continue }  // bind mounts
                    walk(p, into: &files, blocked: blocked, depth: depth + 1)
                } else {
                    files.append((dir, e))
                }
            }
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

    /// Detects the layout: a root holding both `train` and `val` directories is a split. Symbolic
    /// links are treated as `ImageFolder.scan` does (train/ and val/ as links only with
    /// `followSymlinks`); the whole root bounds where file links may lead.
    public static func detect(root: String, followSymlinks: Bool = false) throws(VisionError) -> DatasetLayout {
        let t = root + "/train", v = root + "/val"
        if ImageFolder.isDirectory(t, followLink: followSymlinks) && ImageFolder.isDirectory(v, followLink: followSymlinks) {
            let exclude = Set([root, t, v].compactMap { FileID(path: $0) })
            let train = try ImageFolder.scan(root: t, followSymlinks: followSymlinks, within: root, exclude: exclude)
            let val = try ImageFolder.scan(root: v, followSymlinks: followSymlinks, within: root, exclude: exclude)
            if train.classes != val.classes {
                throw .badDatasetRoot(path: root, reason: "train classes \(train.classes) differ from val classes \(val.classes)")
            }
            return .split(train: train, val: val)
        }
        return .single(try ImageFolder.scan(root: root, followSymlinks: followSymlinks))
    }

    /// Directories beside train/ and val/ in a split root (e.g. `test`), which a split layout does
    /// not read; hidden ones (`.git`) are left out. Empty for a root without train/ and val/.
    public static func foldersBesideSplits(root: String) -> [String] {
        guard ImageFolder.isDirectory(root + "/train") && ImageFolder.isDirectory(root + "/val"),
              let entries = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return entries.filter { $0 != "train" && $0 != "val" && !$0.hasPrefix(".") && ImageFolder.isDirectory(root + "/" + $0) }
            .sorted(by: ImageFolder.codePointLess)
    }

    public var train: ImageFolder {
        switch self { case .split(let t, _): return t; case .single(let f): return f }
    }
    public var validation: ImageFolder? {
        switch self { case .split(_, let v): return v; case .single: return nil }
    }
}
