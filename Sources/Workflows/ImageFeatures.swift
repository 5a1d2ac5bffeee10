import Foundation
import Digest
import Store
import Extract
import Backbones

/// The feature vector of one image file, with where it came from.
public struct ImageFeatures: Sendable {
    public var path: String
    public var sha256: String
    public var vector: [Float]
    /// True when the store already had it; false when it was computed now (and stored).
    public var cached: Bool
    /// False when it was computed now but not stored, because the store is read-only.
    public var stored: Bool = true
}

/// The note for images whose features were computed but not cached (read-only store), or nil.
public func notCachedNote(_ paths: [String], store: FeatureStore) -> String? {
    guard !paths.isEmpty else { return nil }
    return "note: the store \(store.path) is read-only, so the features of \(paths.count) new image(s) "
        + "(\(paths.prefix(3).joined(separator: ", "))\(paths.count > 3 ? ", ..." : "")) were computed but not cached; "
        + "make the store writable to cache them."
}

/// Features of image files for `backbone`: from the store when the image (by content) is known,
/// otherwise computed with the weights at `weightsPath` (which must be the backbone's, by sha256)
/// and stored (image and features; no sample row, so training data is untouched).
public func featuresOfImages(_ paths: [String], store: FeatureStore, backbone: StoredBackbone,
                             weightsPath: String?) throws -> [ImageFeatures] {
    var out: [ImageFeatures] = []
    var missing: [(index: Int, data: Data)] = []
    for p in paths {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue {
            throw WorkflowError.imageIsDirectory(p)
        }
        guard let data = FileManager.default.contents(atPath: p) else { throw WorkflowError.imageUnreadable(p) }
        let sha = SHA256.hex(data)
        if let v = try store.vector(sha256: sha, backbone: backbone) {
            out.append(ImageFeatures(path: p, sha256: sha, vector: v, cached: true))
        } else {
            out.append(ImageFeatures(path: p, sha256: sha, vector: [], cached: false))
            missing.append((out.count - 1, data))
        }
    }
    guard !missing.isEmpty else { return out }
    guard let kind = Architecture.find(backbone.architecture) else {
        throw WorkflowError.backboneMismatch("backbone \(backbone.architecture) cannot compute features of new images")
    }
    // an int8 backbone is computed from the float weights it quantizes, with the store's calibration
    let floatSHA = try store.quantization(backboneID: backbone.id)?.weightsSHA256 ?? backbone.weightsSHA256
    guard let weightsPath else {
        throw WorkflowError.backboneMismatch("\(out[missing[0].index].path) is not in the store: pass --weights PATH, the \(backbone.architecture) weights of sha256 \(floatSHA.prefix(12))… to compute its features")
    }
    let (model, sha) = try loadBackbone(kind, weightsPath: weightsPath)
    guard sha == floatSHA else {
        throw WorkflowError.backboneMismatch("\(weightsPath) (sha256 \(sha.prefix(12))…) is not the weights of this head's backbone (\(floatSHA.prefix(12))…)")
    }
    // Extraction's own pipeline, with the preprocessing the registry gives these weights.
    let batch = try computeValidationFeatures(missing.map { ImageBytes(name: out[$0.index].path, sha256: out[$0.index].sha256, data: $0.data) },
                                              model: try network(for: backbone, float: model, store: store),
                                              preprocessing: kind.preprocessing(weightsSHA256: sha))
    for (j, (i, _)) in missing.enumerated() { out[i].vector = batch.features[j].vector }
    // A read-only store still answers; the new features are just not cached.
    if store.isReadOnly {
        for (i, _) in missing { out[i].stored = false }
    } else {
        try store.insertBatch(batch, backbone: backbone)
    }
    return out
}
