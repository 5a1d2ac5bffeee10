import Foundation
import Digest

/// One share of a sharded extraction: images whose content hash falls in shard `index` of `count`.
///
/// An image belongs to shard `h mod count`, where `h` is the leading 64 bits (the first 8 bytes,
/// big-endian: the first 16 hex digits) of the SHA-256 of its file's bytes. Every worker agrees on
/// it whatever order its file system lists files in, a duplicate file falls in the shard of its
/// twin, and a rescheduled worker recomputes only its own images. A file that cannot be read has no
/// content hash: it belongs to the shard of the SHA-256 of its absolute path (so exactly one shard
/// records its failure).
public struct ShardSpec: Sendable, Codable, Equatable {
    public var index: Int
    public var count: Int
    /// Where i and n came from: "--shard", "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT",
    /// "JOB_COMPLETION_INDEX and --shards".
    public var source: String

    public init(index: Int, count: Int, source: String = "--shard") throws {
        guard count >= 1 else { throw ShardError.badCount(count, source: source) }
        guard (0..<count).contains(index) else { throw ShardError.indexOutOfRange(index, count, source: source) }
        self.index = index; self.count = count; self.source = source
    }

    /// "i/n", as `--shard` takes it and the store's `meta` records it.
    public var text: String { "\(index)/\(count)" }

    /// Parses "i/n" (0 <= i < n).
    public static func parse(_ s: String, source: String = "--shard") throws -> ShardSpec {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else { throw ShardError.badSyntax(s) }
        return try ShardSpec(index: i, count: n, source: source)
    }

    /// The shard of a content hash given as 64 lowercase hex digits: its leading 64 bits mod n.
    public static func shard(ofSHA256Hex hex: String, count: Int) -> Int {
        var h: UInt64 = 0
        var taken = 0
        for b in hex.utf8 {
            guard taken < 16 else { break }
            let v: UInt64
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt64(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = UInt64(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = UInt64(b - UInt8(ascii: "A") + 10)
            default: v = 0
            }
            h = h << 4 | v
            taken += 1
        }
        return Int(h % UInt64(max(1, count)))
    }

    /// Whether an image of this content hash belongs to this shard.
    public func contains(sha256 hex: String) -> Bool { Self.shard(ofSHA256Hex: hex, count: count) == index }

    /// Whether an unreadable file (no content hash) belongs to this shard: by the SHA-256 of its path.
    public func contains(unreadablePath path: String) -> Bool {
        Self.shard(ofSHA256Hex: SHA256.hex(Array(path.utf8)), count: count) == index
    }

    /// The shard this process should compute: `explicit` (--shard i/n) when given; else Slurm's job
    /// array variables (SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN when set, of
    /// SLURM_ARRAY_TASK_COUNT); else Kubernetes' JOB_COMPLETION_INDEX with n from `shards`
    /// (--shards N). nil when none applies (the whole folder). `shards` given with Slurm's
    /// variables must agree with SLURM_ARRAY_TASK_COUNT.
    public static func resolve(explicit: String?, shards: Int?, environment: [String: String]) throws -> ShardSpec? {
        if let explicit {
            let spec = try parse(explicit)
            if let shards, shards != spec.count { throw ShardError.conflictingCount(shards, spec.count, source: "--shard \(explicit)") }
            return spec
        }
        if let id = environment["SLURM_ARRAY_TASK_ID"], !id.isEmpty {
            let source = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
            guard let i = Int(id) else { throw ShardError.badEnvironment("SLURM_ARRAY_TASK_ID", id) }
            guard let countText = environment["SLURM_ARRAY_TASK_COUNT"], let n = Int(countText) else {
                throw ShardError.badEnvironment("SLURM_ARRAY_TASK_COUNT", environment["SLURM_ARRAY_TASK_COUNT"] ?? "(unset)")
            }
            var index = i
            if let minText = environment["SLURM_ARRAY_TASK_MIN"], let lo = Int(minText) { index = i - lo }
            if let shards, shards != n { throw ShardError.conflictingCount(shards, n, source: source) }
            return try ShardSpec(index: index, count: n, source: source)
        }
        if let id = environment["JOB_COMPLETION_INDEX"], !id.isEmpty {
            let source = "JOB_COMPLETION_INDEX and --shards"
            guard let i = Int(id) else { throw ShardError.badEnvironment("JOB_COMPLETION_INDEX", id) }
            guard let shards else { throw ShardError.missingShards(index: i) }
            return try ShardSpec(index: i, count: shards, source: source)
        }
        if let shards { throw ShardError.shardsWithoutIndex(shards) }
        return nil
    }
}

public enum ShardError: Error, CustomStringConvertible, Equatable {
    case badSyntax(String)
    case badCount(Int, source: String)
    case indexOutOfRange(Int, Int, source: String)
    case badEnvironment(String, String)
    case missingShards(index: Int)
    case shardsWithoutIndex(Int)
    case conflictingCount(Int, Int, source: String)
    case storeHoldsOtherShard(store: String, recorded: String, requested: String)
    case storeNotForShards(store: String, requested: String)
    case shardStoreWithoutShard(store: String, recorded: String)

    public var description: String {
        switch self {
        case .badSyntax(let s):
            return "--shard \(s): expected i/n with 0 <= i < n (e.g. --shard 2/4)"
        case .badCount(let n, let source):
            return "shard count \(n) (from \(source)) must be at least 1"
        case .indexOutOfRange(let i, let n, let source):
            return "shard index \(i) (from \(source)) is not in 0..<\(n); a Slurm array must be contiguous (--array=0-\(max(0, n - 1)))"
        case .badEnvironment(let name, let value):
            return "\(name)=\(value) is not a number; unset it or pass --shard i/n"
        case .missingShards(let i):
            return "JOB_COMPLETION_INDEX=\(i) is set but the number of shards is not: pass --shards N (the Job's completions)"
        case .shardsWithoutIndex(let n):
            return "--shards \(n) without a shard index: pass --shard i/\(n), or run in a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or a Slurm job array"
        case .conflictingCount(let given, let found, let source):
            return "--shards \(given) disagrees with \(found) shards from \(source); drop --shards or fix the job"
        case .storeHoldsOtherShard(let store, let recorded, let requested):
            return "the store \(store) holds shard \(recorded), not \(requested): give each shard its own --store (e.g. shard-\(requested.replacingOccurrences(of: "/", with: "-of-")).sqlite)"
        case .storeNotForShards(let store, let requested):
            return "the store \(store) already holds a whole (unsharded) extraction; shard \(requested) needs a store of its own: pass --store PATH of a new file on local disk"
        case .shardStoreWithoutShard(let store, let recorded):
            return "the store \(store) holds shard \(recorded) of a sharded extraction; extract that shard again with --shard \(recorded), or merge the shards with `probe store merge OUT SHARD...` and extract into OUT"
        }
    }
}
