import Foundation
import Digest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why `FeatureStore.selectBackbone(_:)` could not pick one backbone. Each lists the store's
/// backbones (architecture:short-hash) and how to choose.
public enum BackboneSelectionError: Error, CustomStringConvertible, Equatable {
    /// The store has no backbone yet (nothing extracted).
    case empty(store: String)
    /// Nothing matches the selector.
    case noMatch(selector: String, store: String, available: [StoredBackbone], int8: Set<Int64> = [])
    /// Several backbones match (`selector` nil: none was given and the store holds several).
    case ambiguous(selector: String?, store: String, matching: [StoredBackbone], available: [StoredBackbone], int8: Set<Int64> = [])
    /// A weights file given as selector could not be read.
    case weightsUnreadable(path: String, reason: String)

    static let howToChoose = "choose one with --backbone ARCH (e.g. resnet18), --backbone HASH (a prefix of the weights' sha256), "
        + "--backbone ARCH:HASH, --backbone WEIGHTS-FILE (the weights file it was extracted with), or ARCH:int8 / ARCH:float32"

    public var description: String {
        switch self {
        case let .empty(store):
            return "the store \(store) has no features yet; run `probe extract DIR` first"
        case let .noMatch(selector, store, available, int8):
            return "no backbone of the store \(store) matches '\(selector)'; it has \(BackboneSelectionError.list(available, int8: int8)); "
                + BackboneSelectionError.howToChoose
        case let .ambiguous(selector, store, matching, available, int8):
            let what = selector.map { "'\($0)' is ambiguous: it matches \(matching.count) backbones of the store \(store): \(BackboneSelectionError.list(matching, among: available, int8: int8))" }
                ?? "the store \(store) has several backbones: \(BackboneSelectionError.list(available, int8: int8))"
            return what + "; " + BackboneSelectionError.howToChoose
        case let .weightsUnreadable(path, reason):
            return "cannot read the weights file \(path) given as --backbone (\(reason)); give an existing file, "
                + "an architecture or a weights hash prefix (`probe store info` lists the store's backbones)"
        }
    }

    static func list(_ bs: [StoredBackbone], among all: [StoredBackbone]? = nil, int8: Set<Int64> = []) -> String {
        let n = FeatureStore.shortHashLength(all ?? bs)
        return bs.map { "\($0.architecture):\($0.weightsSHA256.prefix(n)) (\($0.dimension)-d\(int8.contains($0.id) ? ", int8" : ""))" }
            .joined(separator: ", ")
    }
}

extension FeatureStore {
    /// The length of hash prefixes that tell `backbones` apart: at least 8 hex digits.
    public static func shortHashLength(_ backbones: [StoredBackbone]) -> Int {
        var n = 8
        while n < 64 {
            let prefixes = Set(backbones.map { $0.weightsSHA256.prefix(n) })
            if prefixes.count == Set(backbones.map(\.weightsSHA256)).count { break }
            n += 1
        }
        return n
    }

    /// The backbone named by `selector`, or the only one when `selector` is nil. A selector is an
    /// architecture (`resnet18`), a prefix of the weights' sha256 (`17c68b6d`), both
    /// (`mobilenet_v2:17c68b6d`), the path of a weights file (hashed, and matched by its sha256:
    /// the float32 backbone of those weights), or a precision (`mobilenet_v2:int8`, `int8`, `float32`).
    /// Throws `BackboneSelectionError` when nothing or several match.
    public func selectBackbone(_ selector: String?) throws -> StoredBackbone {
        let all = try backbones()
        if all.isEmpty { throw BackboneSelectionError.empty(store: path) }
        let int8 = Set(try quantizations().map(\.backboneID))
        guard let selector, !selector.isEmpty else {
            if all.count == 1 { return all[0] }
            throw BackboneSelectionError.ambiguous(selector: nil, store: path, matching: all, available: all, int8: int8)
        }
        let matching: [StoredBackbone]
        let parts = selector.split(separator: ":", maxSplits: 1).map(String.init)
        if let precision = parts.last, ["int8", "float32"].contains(precision.lowercased()) {
            // ARCH:int8, ARCH:float32, int8, float32
            let arch = parts.count == 2 ? parts[0] : nil
            matching = all.filter { (arch == nil || $0.architecture == arch) && int8.contains($0.id) == (precision.lowercased() == "int8") }
        } else if all.contains(where: { $0.architecture == selector }) {
            matching = all.filter { $0.architecture == selector }
        } else if Self.isRegularFile(selector) {
            let sha = try weightsFileSHA256(selector)
            matching = all.filter { $0.weightsSHA256 == sha }
        } else if let colon = selector.lastIndex(of: ":"),
                  case let prefix = selector[selector.index(after: colon)...].lowercased(), Self.isHex(prefix) {
            let arch = String(selector[..<colon])
            matching = all.filter { $0.architecture == arch && $0.weightsSHA256.hasPrefix(prefix) }
        } else if Self.isHex(selector.lowercased()) {
            matching = all.filter { $0.weightsSHA256.hasPrefix(selector.lowercased()) }
        } else if selector.contains("/") || [".pth", ".pt", ".safetensors", ".bin"].contains(where: { selector.hasSuffix($0) }) {
            throw BackboneSelectionError.weightsUnreadable(path: selector, reason: "no such file")
        } else {
            matching = []
        }
        if matching.count == 1 { return matching[0] }
        if matching.isEmpty { throw BackboneSelectionError.noMatch(selector: selector, store: path, available: all, int8: int8) }
        throw BackboneSelectionError.ambiguous(selector: selector, store: path, matching: matching, available: all, int8: int8)
    }

    /// The sha256 of a weights file: the one `probe extract` remembered for this path, size and
    /// modification time, or else the file's bytes hashed now.
    func weightsFileSHA256(_ file: String) throws -> String {
        let abs = URL(fileURLWithPath: file).standardizedFileURL.path
        var st = stat()
        if stat(abs, &st) == 0 {
            #if canImport(Darwin)
            let mtime = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
            #else
            let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            #endif
            let stamp = "\(st.st_size):\(mtime):"
            if let cached = try? metaValue("weights-sha256:" + abs), cached.hasPrefix(stamp) {
                return String(cached.dropFirst(stamp.count))
            }
        }
        do { return try SHA256.hexOfFile(path: abs) } catch {
            throw BackboneSelectionError.weightsUnreadable(path: file, reason: error.reason)
        }
    }

    static func isHex(_ s: some StringProtocol) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
    }

    static func isRegularFile(_ p: String) -> Bool {
        var st = stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}
