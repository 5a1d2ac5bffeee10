import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one way probe writes an output file (export, heads export, weight files, checkpoints).
// Its own module, with no dependencies, so that every writer (Store, Weights, Finetune, Workflows)
// can use it without depending on the kernels (NN): the store stores, and computes nothing.
//
// Rules:
// - Only a regular file is ever replaced. A device, FIFO, socket, directory or symbolic link at the
//   path is refused (a symlink is refused rather than followed: give its target's path instead).
// - The files in `protecting` (a feature store being read) are never written: the target is
//   compared by device and inode (catching hard links and other spellings of the path) and by
//   canonical name, including SQLite's `-wal`, `-shm` and `-journal` companions.
// - A regular file is written atomically: a temporary file in the target's directory, fsync,
//   rename over the target, fsync of the directory. Until the rename, the previous file is whole;
//   a failure or kill leaves it untouched. A kill -9 leaves a hidden `.NAME.tmp-PID-...` file; the
//   next write of NAME removes those whose process no longer exists.
// - An existing regular file is replaced (like `cp`, `numpy.save`, `torch.save`), unless it is
//   write-protected (no write bit, or not writable by this user: refused as read-only); callers say so
//   in their --help.
// - The path "-" is standard output, written as a stream (no temporary file, no rename).

/// Why an output file was not written.
public enum OutputFileError: Error, CustomStringConvertible, Equatable {
    /// Something other than a regular file is at the path (`kind`: "a character device", ...).
    case notRegularFile(path: String, kind: String)
    /// The path names a file the command reads (the feature store or its WAL/SHM/journal).
    case wouldOverwriteInput(path: String, input: String)
    /// A system call failed.
    case io(path: String, operation: String, reason: String)
    /// A read-only regular file (no write permission) is at the path: it is not replaced.
    case readOnly(path: String)

    public var description: String {
        switch self {
        case let .notRegularFile(path, kind):
            return "\(path) is \(kind), not a regular file; probe only replaces regular files. Choose another output path"
                + (kind == "a symbolic link" ? " (or give the link's target path)" : "") + "."
        case let .wouldOverwriteInput(path, input):
            return "\(path) is \(input == path ? "" : "the same file as ")the feature store \(input)\(input == path ? "" : " (or its -wal/-shm/-journal file)") being read; "
                + "writing there would destroy it. Choose another output path."
        case let .io(path, operation, reason):
            return "cannot write \(path): \(operation) failed: \(reason). " + OutputFileError.hint(path: path, reason: reason)
        case let .readOnly(path):
            return "\(path) is read-only; probe does not replace a write-protected file. "
                + "Make it writable (chmod u+w \(path)) if it may be replaced, or choose another output path."
        }
    }
}

extension OutputFileError {
    /// What to do about a failed system call, from its cause (strerror text of the errno).
    static func hint(path: String, reason: String) -> String {
        let dir = split(path).dir
        func text(_ e: Int32) -> String { String(cString: strerror(e)) }
        switch reason {
        case text(ENOENT), text(ENOTDIR):
            return "The directory \(dir) does not exist: create it (mkdir -p \(dir)) or choose another output path."
        case text(EACCES), text(EPERM):
            return "The directory \(dir) is not writable by this user: choose another output path or change its permissions."
        case text(EROFS):
            return "\(dir) is on a read-only file system: choose an output path elsewhere."
        case text(ENOSPC), text(EDQUOT):
            return "The disk is full (or the quota is reached): free some space, or choose another output path."
        default:
            return "Check the directory \(dir) exists, is writable and has free space."
        }
    }
}

#if canImport(Glibc)
private let sysWrite = Glibc.write
#else
private let sysWrite = Darwin.write
#endif

private func errnoText() -> String { String(cString: strerror(errno)) }

/// What kind of file `st` describes, for messages ("a character device", ...).
private func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "a regular file"
    case S_IFDIR: return "a directory"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFIFO: return "a FIFO"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "a special file"
    }
}

/// The directory and last component of `path` ("." when there is no slash).
private func split(_ path: String) -> (dir: String, base: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let dir = String(path[..<slash])
    return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
}

/// `realpath` of the directory + the last component: the name a path resolves to.
private func canonicalName(_ path: String) -> String? {
    let (dir, base) = split(path)
    guard let r = realpath(dir, nil) else { return nil }
    defer { free(r) }
    let d = String(cString: r)
    return (d == "/" ? "" : d) + "/" + base
}

public enum OutputFile {
    /// A file name made from an arbitrary name (a head's, ...) that stays in the current
    /// directory: every character other than an ASCII letter, digit, '-', '_' or '.' becomes '_'
    /// (so no '/'), ".." becomes "_", a leading '.' becomes '_' (no hidden file, no "."), and an
    /// empty name becomes `empty`. "../../x" -> "____x", "/abs/x" -> "_abs_x".
    public static func safeFileName(_ name: String, empty: String = "out") -> String {
        var s = String(String.UnicodeScalarView(name.unicodeScalars.map { u -> Unicode.Scalar in
            let ok = ("a"..."z").contains(u) || ("A"..."Z").contains(u) || ("0"..."9").contains(u) || u == "-" || u == "_" || u == "."
            return ok ? u : "_"
        }))
        while s.contains("..") { s = s.replacingOccurrences(of: "..", with: "_") }
        if s.hasPrefix(".") { s = "_" + s.dropFirst() }
        return s.isEmpty ? empty : s
    }

    /// Throws unless `path` may be replaced: absent or a regular file, and none of `protecting`
    /// (nor their SQLite companions) by device+inode or by name.
    public static func check(_ path: String, protecting: [String] = []) throws {
        guard path != "-" else { return }
        var st = stat()
        let exists = lstat(path, &st) == 0
        if exists && st.st_mode & S_IFMT != S_IFREG {
            throw OutputFileError.notRegularFile(path: path, kind: fileKind(st.st_mode))
        }
        // A write-protected file (no write bit, or not writable by this user) is not replaced,
        // as `cp` would refuse it (also for root, who may write anything: the mode says "keep").
        if exists && (st.st_mode & 0o222 == 0 || access(path, W_OK) != 0) {
            throw OutputFileError.readOnly(path: path)
        }
        let name = canonicalName(path)
        for input in protecting {
            for companion in [input, input + "-wal", input + "-shm", input + "-journal"] {
                var ps = stat()
                if exists, stat(companion, &ps) == 0, ps.st_dev == st.st_dev, ps.st_ino == st.st_ino {
                    throw OutputFileError.wouldOverwriteInput(path: path, input: input)
                }
                if let name, let c = canonicalName(companion), c == name {
                    throw OutputFileError.wouldOverwriteInput(path: path, input: input)
                }
            }
        }
    }
}

/// Writes one output file atomically (see the rules above), buffered in 1 MB chunks. Call
/// `commit()` at the end; a writer dropped without a commit removes its temporary file.
public final class AtomicFileWriter {
    public let path: String
    public let protecting: [String]
    public private(set) var written: Int64 = 0
    private var fd: Int32
    private let tmp: String?
    private var buffer: [UInt8] = []
    private var done = false

    public init(path: String, protecting: [String] = []) throws {
        self.path = path
        self.protecting = protecting
        try OutputFile.check(path, protecting: protecting)
        buffer.reserveCapacity(1 << 20)
        if path == "-" { fd = STDOUT_FILENO; tmp = nil; return }
        let (dir, base) = split(path)
        AtomicFileWriter.removeStaleTemporaries(dir: dir, base: base)
        let t = dir + "/." + base + ".tmp-\(getpid())-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var mode: mode_t = 0o644
        var st = stat()
        if lstat(path, &st) == 0 { mode = st.st_mode & 0o7777 }
        fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw OutputFileError.io(path: path, operation: "creating a temporary file in \(dir)", reason: errnoText()) }
        if lstat(path, &st) == 0 { _ = fchmod(fd, mode) }   // the previous file's mode, not the umask's
        tmp = t
    }

    deinit { abort() }

    /// Removes `.BASE.tmp-PID-*` files in `dir` left by killed writers (PID no longer running).
    static func removeStaleTemporaries(dir: String, base: String) {
        let prefix = "." + base + ".tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir + "/" + name) }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
    public func write(_ s: String) throws {
        var s = s
        try s.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    private func flush() throws {
        var off = 0
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { sysWrite(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputFileError.io(path: path, operation: "write", reason: errnoText())
            }
            off += n
        }
        written += Int64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, fsyncs and renames the temporary file over `path` (re-checking that what is there
    /// now may be replaced), then fsyncs the directory. For "-", flushes standard output.
    public func commit() throws {
        precondition(!done, "AtomicFileWriter committed twice")
        do { try flush() } catch { abort(); throw error }
        guard let tmp else { done = true; return }
        if fsync(fd) != 0 { let r = errnoText(); abort(); throw OutputFileError.io(path: path, operation: "fsync", reason: r) }
        if close(fd) != 0 { let r = errnoText(); fd = -1; abort(); throw OutputFileError.io(path: path, operation: "close", reason: r) }
        fd = -1
        do { try OutputFile.check(path, protecting: protecting) } catch { abort(); throw error }
        if rename(tmp, path) != 0 { let r = errnoText(); abort(); throw OutputFileError.io(path: path, operation: "rename", reason: r) }
        done = true
        let dfd = open(split(path).dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Abandons the write: the temporary file is removed, `path` is untouched.
    public func abort() {
        guard !done else { return }
        done = true
        if let tmp {
            if fd >= 0 { close(fd); fd = -1 }
            unlink(tmp)
        }
    }
}

/// Writes `bytes` to `path` atomically (see `AtomicFileWriter`).
public func writeFileAtomically(_ bytes: [UInt8], to path: String, protecting: [String] = []) throws {
    let w = try AtomicFileWriter(path: path, protecting: protecting)
    try w.write(bytes)
    try w.commit()
}

/// Writes `data` to `path` atomically (see `AtomicFileWriter`).
public func writeFileAtomically(_ data: Data, to path: String, protecting: [String] = []) throws {
    let w = try AtomicFileWriter(path: path, protecting: protecting)
    try data.withUnsafeBytes { try w.write($0) }
    try w.commit()
}
