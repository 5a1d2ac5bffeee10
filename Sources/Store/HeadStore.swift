import Foundation

/// A trained head as stored: its backbone, class names, settings and per-epoch metrics (JSON
/// text chosen by the Heads module) and weights (float32, layout chosen by the Heads module,
/// e.g. W row-major classes x dimension followed by the bias).
public struct HeadRecord: Sendable, Equatable {
    public var name: String
    public var backboneID: Int64
    public var classes: [String]
    /// JSON text (an object, typically): solver, lr, epochs, seed, ...
    public var settingsJSON: String
    /// JSON text (an array of per-epoch objects, typically).
    public var metricsJSON: String
    public var weights: [Float]
    /// ISO 8601 UTC; left out of `canonicalDigest()`.
    public var created: String
    /// Softmax temperature from temperature scaling (probabilities = softmax(logits / T)); nil = 1, not calibrated.
    public var temperature: Double?

    public init(name: String, backboneID: Int64, classes: [String], settingsJSON: String, metricsJSON: String,
                weights: [Float], created: String = HeadRecord.now(), temperature: Double? = nil) {
        self.name = name; self.backboneID = backboneID; self.classes = classes
        self.settingsJSON = settingsJSON; self.metricsJSON = metricsJSON; self.weights = weights; self.created = created
        self.temperature = temperature
    }

    public static func now() -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}

/// A head in a listing (no weights).
public struct HeadSummary: Sendable, Codable, Equatable {
    public var name: String
    public var backbone: StoredBackbone
    public var classes: [String]
    public var settingsJSON: String
    public var metricsJSON: String
    public var parameterCount: Int
    public var created: String
    /// See `HeadRecord.temperature`.
    public var temperature: Double?
}

extension FeatureStore {
    static func checkJSON(_ text: String, _ what: String) throws {
        guard (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil else {
            throw StoreError.invalidArgument("the head's \(what) is not valid JSON: \(text.prefix(80))")
        }
    }

    /// Saves a head under its name; an existing head of that name is replaced only when `replace`.
    public func saveHead(_ head: HeadRecord, replace: Bool = true) throws {
        guard !head.name.isEmpty else { throw StoreError.invalidArgument("a head needs a name") }
        try requireWritable("save the head '\(head.name)'")
        try Self.checkJSON(head.settingsJSON, "settings")
        try Self.checkJSON(head.metricsJSON, "metrics")
        guard !head.classes.isEmpty else { throw StoreError.invalidArgument("head \(head.name) has no classes") }
        if let t = head.temperature, !(t > 0 && t.isFinite) {
            throw StoreError.invalidArgument("head \(head.name): the temperature must be a positive number, got \(t)")
        }
        for (i, w) in head.weights.enumerated() where !w.isFinite {
            throw StoreError.invalidVector(context: "head \(head.name) weights", reason: "value \(i) is \(w)")
        }
        let classes = String(decoding: try JSONEncoder().encode(head.classes), as: UTF8.self)
        var blob: [UInt8] = []
        try head.weights.withUnsafeBufferPointer { try VectorCodec.encode($0, dtype: .f32, into: &blob, context: "head \(head.name)") }
        try database.transaction {
            guard try backbone(id: head.backboneID) != nil else {
                throw StoreError.notFound("backbone id \(head.backboneID) of head \(head.name)")
            }
            if !replace, try database.scalarInt("SELECT 1 FROM heads WHERE name = ?", [.text(head.name)]) != nil {
                throw StoreError.invalidArgument("a head named \(head.name) exists; choose another name or replace it")
            }
            try database.run("""
                INSERT INTO heads(name, backbone_id, classes, settings, metrics, weights, created, temperature)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                ON CONFLICT(name) DO UPDATE SET backbone_id = excluded.backbone_id, classes = excluded.classes,
                    settings = excluded.settings, metrics = excluded.metrics, weights = excluded.weights, created = excluded.created,
                    temperature = excluded.temperature
                """, [.text(head.name), .integer(head.backboneID), .text(classes), .text(head.settingsJSON),
                      .text(head.metricsJSON), .blob(blob), .text(head.created), head.temperature.map { .real($0) } ?? .null])
        }
    }

    /// The head of this name, or nil.
    public func loadHead(name: String) throws -> HeadRecord? {
        try database.queryFirst("SELECT name, backbone_id, classes, settings, metrics, weights, created, temperature FROM heads WHERE name = ?",
                                [.text(name)]) { s in
            let classes = (try? JSONDecoder().decode([String].self, from: Data((s.string(2) ?? "").utf8))) ?? []
            let weights: [Float] = s.withBlob(5) { b in
                let n = b.count / 4
                var w = [Float](repeating: 0, count: n)
                _ = w.withUnsafeMutableBufferPointer { VectorCodec.decode(UnsafeRawBufferPointer(rebasing: b[0..<(n * 4)]), dtype: .f32, count: n, into: $0.baseAddress!) }
                return w
            }
            return HeadRecord(name: s.string(0) ?? "", backboneID: s.int64(1), classes: classes, settingsJSON: s.string(3) ?? "{}",
                              metricsJSON: s.string(4) ?? "[]", weights: weights, created: s.string(6) ?? "",
                              temperature: s.isNull(7) ? nil : s.double(7))
        }
    }

    /// All heads, by name.
    public func heads() throws -> [HeadSummary] {
        try database.query("""
            SELECT h.name, b.id, b.architecture, b.weights_sha256, b.dimension, h.classes, h.settings, h.metrics, length(h.weights) / 4, h.created, h.temperature
            FROM heads h JOIN backbones b ON b.id = h.backbone_id ORDER BY h.name
            """) { s in
            HeadSummary(name: s.string(0) ?? "",
                        backbone: StoredBackbone(id: s.int64(1), architecture: s.string(2) ?? "", weightsSHA256: s.string(3) ?? "", dimension: s.int(4)),
                        classes: (try? JSONDecoder().decode([String].self, from: Data((s.string(5) ?? "").utf8))) ?? [],
                        settingsJSON: s.string(6) ?? "{}", metricsJSON: s.string(7) ?? "[]", parameterCount: s.int(8), created: s.string(9) ?? "",
                        temperature: s.isNull(10) ? nil : s.double(10))
        }
    }

    /// Deletes a head; false when there was none of that name.
    @discardableResult
    public func deleteHead(name: String) throws -> Bool {
        try database.run("DELETE FROM heads WHERE name = ?", [.text(name)]) > 0
    }
}

extension FeatureStore {
    /// Sets (or clears, with nil) the temperature of the head called `name`; false when there is none.
    @discardableResult
    public func setHeadTemperature(name: String, temperature: Double?) throws -> Bool {
        if let t = temperature, !(t > 0 && t.isFinite) {
            throw StoreError.invalidArgument("head \(name): the temperature must be a positive number, got \(t)")
        }
        try requireWritable("save the temperature of head '\(name)'")
        return try database.run("UPDATE heads SET temperature = ? WHERE name = ?",
                                [temperature.map { .real($0) } ?? .null, .text(name)]) > 0
    }
}
