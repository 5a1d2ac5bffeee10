import Foundation
import OutputFiles

/// A folder that a page of probe's (a report, an audit page) writes files into, which may also hold
/// other files. `DIR/MANIFEST` lists the files probe wrote there; a file that exists and is not
/// listed is never replaced, so a folder of someone else's files is safe. The list is written
/// (atomically) before the files it names, so a kill leaves no unlisted file of ours.
struct OwnedFolder {
    let directory: String
    let manifestPath: String
    private let header: String
    private(set) var owned: Set<String>

    /// Opens (creating it when missing) `directory`; refuses a path that is not a directory and a
    /// manifest that is not one of ours (`header` is its first line).
    init(_ directory: String, manifest: String, header: String) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw OwnedFolderError.notDirectory(path: directory) }
        } else {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        self.directory = directory
        self.manifestPath = directory + "/" + manifest
        self.header = header
        var owned = Set<String>()
        if fm.fileExists(atPath: manifestPath) {
            let text = (try? String(contentsOfFile: manifestPath, encoding: .utf8)) ?? ""
            guard text.hasPrefix(header) else { throw OwnedFolderError.notOurs(path: manifestPath) }
            owned = Set(text.split(separator: "\n").dropFirst().map(String.init))
        }
        self.owned = owned
    }

    /// Claims `names` (relative paths) before writing them: refuses, before anything is written,
    /// when one exists and is not ours; then lists them.
    mutating func claim(_ names: some Sequence<String>) throws {
        let names = Set(names)
        for name in names.sorted() {
            var st = stat()
            if lstat(directory + "/" + name, &st) == 0 && !owned.contains(name) {
                throw OwnedFolderError.notOurs(path: directory + "/" + name)
            }
        }
        guard !names.isSubset(of: owned) else { return }
        owned.formUnion(names)
        try writeManifest()
    }

    /// Removes the files of ours under `prefix` that are not in `keep`, and forgets them.
    mutating func removeUnused(under prefix: String, keep: Set<String>) throws {
        let unused = owned.filter { $0.hasPrefix(prefix) && !keep.contains($0) }
        guard !unused.isEmpty else { return }
        for name in unused { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
        owned.subtract(unused)
        try writeManifest()
    }

    private func writeManifest() throws {
        try writeFileAtomically(Array(([header] + owned.sorted()).joined(separator: "\n").utf8) + [10], to: manifestPath)
    }
}

/// Why a page was not written into a folder.
public enum OwnedFolderError: Error, CustomStringConvertible, Equatable {
    /// A file the page would write exists and was not written by probe.
    case notOurs(path: String)
    case notDirectory(path: String)

    public var description: String {
        switch self {
        case .notOurs(let p):
            return "\(p) exists and was not written by probe; it is not overwritten. "
                + "Choose another output folder (a new or empty one), or move that file away."
        case .notDirectory(let p):
            return "\(p) exists and is not a directory; give a folder (it is created when missing)."
        }
    }
}
