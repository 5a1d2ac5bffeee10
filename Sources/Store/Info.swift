import Foundation

/// What `probe store info` shows.
public struct StoreInfo: Sendable, Codable, Equatable {
    public struct ViewCount: Sendable, Codable, Equatable {
        public var transform: String
        public var view: Int
        public var dtype: String
        public var count: Int
    }
    public struct BackboneInfo: Sendable, Codable, Equatable {
        public var backbone: StoredBackbone
        public var views: [ViewCount]
        /// Vector rows of this backbone, and their bytes.
        public var rows: Int
        public var vectorBytes: Int64
        /// Bytes saved by rows stored in half precision.
        public var savedByF16: Int64
        /// For an int8 backbone: the float32 weights it quantizes (nil: a float32 backbone).
        public var int8Of: String? = nil
    }
    public struct GroupCount: Sendable, Codable, Equatable {
        public var split: String?
        public var label: String
        public var count: Int
    }
    public struct HeadInfo: Sendable, Codable, Equatable {
        public var name: String
        public var architecture: String
        public var classes: Int
        public var created: String
    }
    public var path: String
    public var schemaVersion: Int
    public var supportedSchemaVersion: Int
    /// The database file plus its -wal and -shm files.
    public var sizeOnDisk: Int64
    public var images: Int
    public var samples: Int
    public var backbones: [BackboneInfo]
    /// Samples per split and label.
    public var groups: [GroupCount]
    public var failureCount: Int
    /// The first failures (by path).
    public var failures: [FailureRecord]
    public var heads: [HeadInfo]

    /// A plain-text rendering for the terminal.
    public func render() -> String {
        var s = "store \(path)\n"
        s += "  schema version \(schemaVersion) (this probe: \(supportedSchemaVersion)), \(formatBytes(sizeOnDisk)) on disk\n"
        s += "  \(images) distinct images, \(samples) samples (file paths)\n"
        if backbones.isEmpty { s += "  backbones: none (run `probe extract`)\n" }
        for b in backbones {
            s += "  backbone \(b.backbone.id): \(b.backbone.architecture), weights \(b.backbone.weightsSHA256.prefix(12)), \(b.backbone.dimension)-d: "
            if let of = b.int8Of { s += "int8 (quantized from weights \(of.prefix(12))), " }
            s += "\(b.rows) vectors, \(formatBytes(b.vectorBytes))"
            if b.savedByF16 > 0 { s += " (f16 saves \(formatBytes(b.savedByF16)))" }
            s += "\n"
            var byKey: [String: (Int, Int, Int)] = [:]  // transform -> (min view, max view, count)
            var order: [String] = []
            for v in b.views {
                let key = "\(v.transform) \(v.view == 0 ? "view 0" : "views") \(v.dtype)"
                if byKey[key] == nil { order.append(key); byKey[key] = (v.view, v.view, 0) }
                let e = byKey[key]!
                byKey[key] = (min(e.0, v.view), max(e.1, v.view), e.2 + v.count)
            }
            for key in order {
                let e = byKey[key]!
                let parts = key.split(separator: " ")
                let range = e.0 == e.1 ? "view \(e.0)" : "views \(e.0)-\(e.1)"
                s += "      \(parts[0]) \(range) (\(parts.last!)): \(e.2) vectors\n"
            }
        }
        if !groups.isEmpty {
            s += "  samples per split and label:\n"
            let w = max(5, groups.map { ($0.split ?? "-").count }.max() ?? 5)
            for g in groups {
                let split = g.split ?? "-"
                s += "    " + split + String(repeating: " ", count: w - split.count) + "  \(g.label): \(g.count)\n"
            }
        }
        s += "  failures: \(failureCount)\n"
        for f in failures { s += "    \(f.path): \(f.reason)\n" }
        if failureCount > failures.count { s += "    ... and \(failureCount - failures.count) more\n" }
        s += "  heads: \(heads.isEmpty ? "none" : "")\n"
        for h in heads { s += "    \(h.name) (\(h.architecture), \(h.classes) classes, \(h.created))\n" }
        return s
    }
}

func formatBytes(_ n: Int64) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.1f MB", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1f kB", d / 1e3) }
    return "\(n) B"
}

extension FeatureStore {
    /// Schema version, backbones with their vectors per transform/view/dtype, counts per split
    /// and label, failures (the first `failureLimit`), heads and size on disk, in one snapshot.
    public func info(failureLimit: Int = 20) throws -> StoreInfo {
        try database.read {
            let bs = try backbones()
            var perBackbone: [Int64: [StoreInfo.ViewCount]] = [:]
            _ = try database.query("""
                SELECT backbone_id, transform, view, dtype, count(*) FROM features
                GROUP BY backbone_id, transform, view, dtype ORDER BY backbone_id, view, transform, dtype
                """) { s in
                perBackbone[s.int64(0), default: []].append(
                    StoreInfo.ViewCount(transform: s.string(1) ?? "", view: s.int(2), dtype: s.string(3) ?? "", count: s.int(4)))
            }
            var int8Of: [Int64: String] = [:]
            for q in try quantizations() { int8Of[q.backboneID] = q.weightsSHA256 }
            let infos = bs.map { b -> StoreInfo.BackboneInfo in
                let views = perBackbone[b.id] ?? []
                let rows = views.reduce(0) { $0 + $1.count }
                let f16 = views.filter { $0.dtype == "f16" }.reduce(0) { $0 + $1.count }
                return StoreInfo.BackboneInfo(backbone: b, views: views, rows: rows,
                                              vectorBytes: Int64(rows - f16) * Int64(b.dimension) * 4 + Int64(f16) * Int64(b.dimension) * 2,
                                              savedByF16: Int64(f16) * Int64(b.dimension) * 2, int8Of: int8Of[b.id])
            }
            let groups = try database.query("SELECT split, label, count(*) FROM samples GROUP BY split, label ORDER BY split, label") {
                StoreInfo.GroupCount(split: $0.string(0), label: $0.string(1) ?? "", count: $0.int(2))
            }
            let failureCount = Int(try database.scalarInt("SELECT count(*) FROM failures") ?? 0)
            let failures = try database.query("SELECT path, sha256, reason FROM failures ORDER BY path LIMIT ?", [.int(max(0, failureLimit))]) {
                FailureRecord(path: $0.string(0) ?? "", sha256: $0.string(1), reason: $0.string(2) ?? "")
            }
            let heads = try database.query("""
                SELECT h.name, b.architecture, h.classes, h.created FROM heads h JOIN backbones b ON b.id = h.backbone_id ORDER BY h.name
                """) { s in
                StoreInfo.HeadInfo(name: s.string(0) ?? "", architecture: s.string(1) ?? "",
                                   classes: (try? JSONDecoder().decode([String].self, from: Data((s.string(2) ?? "[]").utf8)))?.count ?? 0,
                                   created: s.string(3) ?? "")
            }
            return StoreInfo(path: path, schemaVersion: try database.userVersion(), supportedSchemaVersion: Schema.currentVersion,
                             sizeOnDisk: FeatureStore.bytesOnDisk(path: path),
                             images: Int(try database.scalarInt("SELECT count(*) FROM images") ?? 0),
                             samples: Int(try database.scalarInt("SELECT count(*) FROM samples") ?? 0),
                             backbones: infos, groups: groups, failureCount: failureCount, failures: failures, heads: heads)
        }
    }
}

extension FeatureStore {
    /// Bytes on disk of a store: the file and its -wal and -shm companions.
    public static func bytesOnDisk(path: String) -> Int64 {
        var total: Int64 = 0
        for p in [path, path + "-wal", path + "-shm"] {
            if let a = try? FileManager.default.attributesOfItem(atPath: p), let s = a[.size] as? NSNumber { total += s.int64Value }
        }
        return total
    }
}
