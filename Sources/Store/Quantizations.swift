import Digest

/// What an int8 backbone of the store quantizes, and how (the `quantizations` table). The
/// backbone's own `weightsSHA256` is `FeatureStore.int8Identity(weightsSHA256:calibration:)`.
public struct StoredQuantization: Sendable, Codable, Equatable {
    public let backboneID: Int64
    /// "int8".
    public let precision: String
    /// The float32 weights file that was quantized.
    public let weightsSHA256: String
    /// The calibration (Backbones' `Int8Calibration`, canonical JSON).
    public let calibration: String

    public init(backboneID: Int64, precision: String, weightsSHA256: String, calibration: String) {
        self.backboneID = backboneID; self.precision = precision; self.weightsSHA256 = weightsSHA256; self.calibration = calibration
    }
}

extension FeatureStore {
    /// The identity of an int8 model: SHA-256 of its precision, the float weights' SHA-256 and the
    /// calibration's canonical JSON. Equal calibrations of equal weights give the same backbone
    /// (shards calibrated alike merge into one); anything else is another backbone. `version` names
    /// the quantization arithmetic (Backbones' `QuantizedNetwork`; the calibration says which,
    /// `Int8Calibration.arithmeticVersion`): a change to it that changes features must change the
    /// version, so that its features never mix with older ones (v1: the weights' scales without the
    /// bound on pairs that AVX2's vpmaddubsw needs; v2: direct convolutions; v3: Winograd F(2x2, 3x3)
    /// for the convolutions the calibration has multipliers for).
    public static func int8Identity(weightsSHA256: String, calibration: String, version: Int) -> String {
        SHA256.hex(Array("probe int8 v\(version)\n\(weightsSHA256)\n\(calibration)".utf8))
    }

    /// The int8 backbone of `architecture` whose identity is `identity` (`int8Identity`), quantizing
    /// weights `weightsSHA256` with `calibration`, registered (with its quantization row) when new.
    public func int8Backbone(architecture: String, weightsSHA256: String, dimension: Int, calibration: String,
                             identity: String) throws -> StoredBackbone {
        try Self.checkSHA256(weightsSHA256, "weights sha256")
        try Self.checkSHA256(identity, "int8 identity")
        return try database.transaction {
            let b = try backbone(architecture: architecture, weightsSHA256: identity, dimension: dimension)
            try database.run("INSERT INTO quantizations(backbone_id, precision, weights_sha256, calibration) VALUES (?, 'int8', ?, ?) ON CONFLICT DO NOTHING",
                             [.integer(b.id), .text(weightsSHA256), .text(calibration)])
            return b
        }
    }

    /// The quantization of backbone `id`, or nil for a float32 backbone.
    public func quantization(backboneID id: Int64) throws -> StoredQuantization? {
        try database.queryFirst("SELECT backbone_id, precision, weights_sha256, calibration FROM quantizations WHERE backbone_id = ?",
                                [.integer(id)], row: Self.quantizationRow)
    }

    /// Every int8 backbone's quantization, by backbone id.
    public func quantizations() throws -> [StoredQuantization] {
        try database.query("SELECT backbone_id, precision, weights_sha256, calibration FROM quantizations ORDER BY backbone_id",
                           row: Self.quantizationRow)
    }

    /// The int8 backbones of `architecture` made from weights `weightsSHA256`, oldest first.
    public func int8Backbones(architecture: String, weightsSHA256: String) throws -> [(backbone: StoredBackbone, quantization: StoredQuantization)] {
        var out: [(StoredBackbone, StoredQuantization)] = []
        for q in try quantizations() where q.weightsSHA256 == weightsSHA256 && q.precision == "int8" {
            if let b = try backbone(id: q.backboneID), b.architecture == architecture { out.append((b, q)) }
        }
        return out
    }

    /// "int8" or "float32".
    public func precision(of b: StoredBackbone) throws -> String {
        try quantization(backboneID: b.id)?.precision ?? "float32"
    }

    static func quantizationRow(_ s: Statement) -> StoredQuantization {
        StoredQuantization(backboneID: s.int64(0), precision: s.string(1) ?? "", weightsSHA256: s.string(2) ?? "", calibration: s.string(3) ?? "")
    }
}
