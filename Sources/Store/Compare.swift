import Foundation

/// How two stores compare: rows per table, vector bytes, canonical digests.
public struct StoreComparison: Sendable, Codable, Equatable {
    public struct TableRows: Sendable, Codable, Equatable {
        public var table: String
        public var a: Int
        public var b: Int
    }
    public var a: String
    public var b: String
    public var rows: [TableRows] = []
    /// Vectors compared byte for byte (matched by image sha256, backbone, transform and view), and
    /// those missing on one side or with other bytes or dtype.
    public var vectorsCompared = 0
    public var vectorBytesCompared: Int64 = 0
    public var vectorsDiffering = 0
    public var digestA = ""
    public var digestB = ""

    public var rowsEqual: Bool { rows.allSatisfy { $0.a == $0.b } }
    public var equal: Bool { rowsEqual && vectorsDiffering == 0 && digestA == digestB }

    public func render() -> String {
        var s = equal ? "equal: " : "DIFFERENT: "
        s += "\(a) vs \(b)\n"
        s += "  rows: " + rows.map { $0.a == $0.b ? "\($0.table) \($0.a)" : "\($0.table) \($0.a) vs \($0.b)" }.joined(separator: ", ") + "\n"
        s += "  vectors: \(vectorsCompared) compared byte for byte (\(vectorBytesCompared) bytes), \(vectorsDiffering) differing or missing\n"
        s += "  canonical digest: \(digestA)" + (digestA == digestB ? " (both)" : " vs \(digestB)") + "\n"
        return s
    }
}

extension FeatureStore {
    /// Compares two stores: row counts of every table, every vector's bytes (streamed in content
    /// order on both sides), and `canonicalDigest`.
    public static func compare(_ pathA: String, _ pathB: String) throws -> StoreComparison {
        let a = try FeatureStore(path: pathA, readOnly: true)
        let b = try FeatureStore(path: pathB, readOnly: true)
        var c = StoreComparison(a: pathA, b: pathB)
        for table in ["meta", "images", "samples", "backbones", "features", "failures", "heads"] {
            c.rows.append(.init(table: table, a: Int(try a.database.scalarInt("SELECT count(*) FROM \(table)") ?? 0),
                                b: Int(try b.database.scalarInt("SELECT count(*) FROM \(table)") ?? 0)))
        }
        let sql = """
            SELECT i.sha256 || ' ' || bb.architecture || ' ' || bb.weights_sha256 || ' ' || f.transform || ' ' || printf('%09d', f.view),
                   f.dtype, f.vector
            FROM features f JOIN images i ON i.id = f.image_id JOIN backbones bb ON bb.id = f.backbone_id
            ORDER BY 1
            """
        try a.database.read {
            try b.database.read {
                let sa = try a.database.prepare(sql), sb = try b.database.prepare(sql)
                var ha = try sa.step(), hb = try sb.step()
                while ha || hb {
                    let ka = ha ? sa.string(0) ?? "" : nil, kb = hb ? sb.string(0) ?? "" : nil
                    if let ka, let kb, ka == kb {
                        c.vectorsCompared += 1
                        let same = sa.string(1) == sb.string(1) && sa.withBlob(2) { x in sb.withBlob(2) { y in
                            x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) } }
                        c.vectorBytesCompared += Int64(sa.withBlob(2) { $0.count })
                        if !same { c.vectorsDiffering += 1 }
                        ha = try sa.step(); hb = try sb.step()
                    } else if let ka, kb == nil || ka < kb! {
                        c.vectorsDiffering += 1; ha = try sa.step()
                    } else {
                        c.vectorsDiffering += 1; hb = try sb.step()
                    }
                }
            }
        }
        c.digestA = try a.canonicalDigest()
        c.digestB = try b.canonicalDigest()
        return c
    }
}
