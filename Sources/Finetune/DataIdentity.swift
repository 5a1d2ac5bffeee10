import Foundation
import Digest
import Vision
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a checkpoint records of the data it was trained on, so that `resume` continues on the same
/// images. The digest is the SHA-256 of the sorted lines "split, path relative to DIR, byte size"
/// of every sample file (the files the loader visits, in its order, with their labels implied by
/// the class folder in the path). It is cheap, one stat(2) per file and no reading, and robust for
/// what it guards: adding, removing, renaming or relabelling a file, or changing its size, changes
/// it; moving or copying the whole folder does not (relative paths), so a moved data set resumes.
/// A same-size edit is not seen (hashing every image at every start would cost a full read of the
/// data set); the classes are checked separately.
public struct DataIdentity: Codable, Equatable, Sendable {
    /// DIR as an absolute path, for messages.
    public private(set) var root: String
    public private(set) var trainImages: Int
    public private(set) var validationImages: Int
    public private(set) var digest: String

    init(root: String, train: ImageFolder, validation: ImageFolder?) {
        let abs = URL(fileURLWithPath: root).standardizedFileURL.path
        self.root = abs
        trainImages = train.samples.count
        validationImages = validation?.samples.count ?? 0
        var lines: [String] = []
        for (split, folder) in [("train", Optional(train)), ("val", validation)] {
            guard let folder else { continue }
            for s in folder.samples {
                lines.append("\(split)\t\(Self.relative(s.path, to: root))\t\(Self.byteSize(s.path))")
            }
        }
        digest = SHA256.hex(Array(lines.sorted().joined(separator: "\n").utf8))
    }

    /// "13 training and 6 validation images in /data".
    public var summary: String {
        "\(trainImages) training and \(validationImages) validation images in \(root)"
    }

    /// `path` below `root` (paths from the scan start with `root` as given).
    static func relative(_ path: String, to root: String) -> String {
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    /// The file's size, -1 when it cannot be read (a vanished file still changes the digest).
    static func byteSize(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : -1
    }
}
