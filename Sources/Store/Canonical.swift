import Digest

extension FeatureStore {
    /// A canonical text dump of the store's content, one line per row, for comparing stores:
    /// integer ids are replaced by content keys (image sha256; backbone architecture + weights
    /// sha256), rows are sorted by those keys, vectors appear as the SHA-256 of their BLOB, and
    /// `heads.created` is left out. Two stores with the same content give the same dump whatever
    /// the order of insertion, interruptions, rowids or page layout.
    public func canonicalDump(_ emit: (String) throws -> Void) throws {
        try database.read {
            try emit("schema \(try database.userVersion())")
            for s in try database.query("SELECT key, value FROM meta ORDER BY key", row: { "meta \($0.string(0) ?? "")=\($0.string(1) ?? "")" }) {
                try emit(s)
            }
            for s in try database.query("SELECT architecture, weights_sha256, dimension FROM backbones ORDER BY architecture, weights_sha256",
                                        row: { "backbone \($0.string(0) ?? "") \($0.string(1) ?? "") \($0.int(2))" }) {
                try emit(s)
            }
            for s in try database.query("""
                SELECT b.architecture, b.weights_sha256, q.precision, q.weights_sha256, q.calibration
                FROM quantizations q JOIN backbones b ON b.id = q.backbone_id ORDER BY b.architecture, b.weights_sha256
                """, row: { "quantization \($0.string(0) ?? "") \($0.string(1) ?? "") \($0.string(2) ?? "") \($0.string(3) ?? "") \(SHA256.hex(Array(($0.string(4) ?? "").utf8)))" }) {
                try emit(s)
            }
            func opt(_ st: Statement, _ c: Int32) -> String { st.isNull(c) ? "NULL" : (st.string(c) ?? "") }
            let images = try database.cachedStatement("SELECT sha256, width, height, byte_size FROM images ORDER BY sha256")
            defer { images.reset() }
            while try images.step() {
                try emit("image \(images.string(0) ?? "") \(opt(images, 1))x\(opt(images, 2)) \(images.int(3))")
            }
            images.reset()
            let samples = try database.cachedStatement("""
                SELECT s.path, i.sha256, s.label, s.split, s.mtime_ns FROM samples s JOIN images i ON i.id = s.image_id ORDER BY s.path
                """)
            defer { samples.reset() }
            while try samples.step() {
                try emit("sample \(samples.string(0) ?? "")\t\(samples.string(1) ?? "")\t\(samples.string(2) ?? "")\t\(opt(samples, 3))\t\(opt(samples, 4))")
            }
            samples.reset()
            let features = try database.cachedStatement("""
                SELECT i.sha256, b.architecture, b.weights_sha256, f.transform, f.view, f.dtype, f.vector
                FROM images i JOIN features f ON f.image_id = i.id JOIN backbones b ON b.id = f.backbone_id
                ORDER BY i.sha256, b.architecture, b.weights_sha256, f.transform, f.view
                """)
            defer { features.reset() }
            while try features.step() {
                let digest = features.withBlob(6) { b -> String in
                    var h = SHA256()
                    h.update(buffer: b)
                    return SHA256.hexString(h.finalize())
                }
                try emit("feature \(features.string(0) ?? "") \(features.string(1) ?? "") \(features.string(2) ?? "") \(features.string(3) ?? "") \(features.int(4)) \(features.string(5) ?? "") \(digest)")
            }
            features.reset()
            for s in try database.query("SELECT path, sha256, reason FROM failures ORDER BY path", row: {
                "failure \($0.string(0) ?? "")\t\(opt($0, 1))\t\($0.string(2) ?? "")"
            }) { try emit(s) }
            for s in try database.query("""
                SELECT h.name, b.architecture, b.weights_sha256, h.classes, h.settings, h.metrics, h.weights, h.temperature
                FROM heads h JOIN backbones b ON b.id = h.backbone_id ORDER BY h.name
                """, row: { st -> String in
                    let w = st.withBlob(6) { b -> String in var h = SHA256(); h.update(buffer: b); return SHA256.hexString(h.finalize()) }
                    return "head \(st.string(0) ?? "")\t\(st.string(1) ?? "") \(st.string(2) ?? "")\t\(st.string(3) ?? "")\t\(st.string(4) ?? "")\t\(st.string(5) ?? "")\t\(w)" + (st.isNull(7) ? "" : "\ttemperature \(st.double(7))")
                }) { try emit(s) }
        }
    }

    /// The SHA-256 of `canonicalDump` (lines joined by "\n"): equal for stores of equal content.
    public func canonicalDigest() throws -> String {
        var h = SHA256()
        try canonicalDump { line in
            h.update(Array(line.utf8))
            h.update([0x0A])
        }
        return SHA256.hexString(h.finalize())
    }
}
