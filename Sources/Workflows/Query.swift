import Foundation
import Store
import Neighbors

/// One neighbour in a query's answer.
public struct NeighbourRow: Sendable, Codable {
    public var rank: Int
    public var score: Double
    public var sha256: String
    public var path: String?
    public var label: String?
    public var split: String?
}

/// Cosine nearest neighbours among the cached embeddings of `backbone` (view 0), optionally only
/// of one split / label. Many queries go through one matrix product. A query image itself
/// (same content) is left out of its own answer.
public func nearestNeighbours(store: FeatureStore, backbone: StoredBackbone, queries: [ImageFeatures], k: Int,
                              split: String? = nil, label: String? = nil) throws -> [[NeighbourRow]] {
    let index = try store.loadIndex(backbone: backbone, filter: VectorFilter(split: split, label: label))
    guard index.count > 0 else { return queries.map { _ in [] } }
    var matrix: [Float] = []
    for q in queries { matrix += q.vector }
    let raw = try index.search(queries: matrix, k: min(index.count, k + 1))
    var samplesCache: [Int64: (String, SampleInfo?)] = [:]
    func describe(_ id: Int64) throws -> (String, SampleInfo?) {
        if let c = samplesCache[id] { return c }
        let sample = try store.samples(imageID: id).first
        let sha = try sample?.sha256 ?? store.image(id: id)?.sha256 ?? ""
        samplesCache[id] = (sha, sample)
        return (sha, sample)
    }
    return try zip(queries, raw).map { q, hits in
        var rows: [NeighbourRow] = []
        for h in hits {
            let (sha, sample) = try describe(h.imageID)
            if sha == q.sha256 { continue }
            if rows.count == k { break }
            rows.append(NeighbourRow(rank: rows.count + 1, score: Double(h.score), sha256: sha, path: sample?.path,
                                     label: sample?.label, split: sample?.split ?? nil))
        }
        return rows
    }
}

/// The stored features of a sample path (as recorded, or as given relative to the current directory).
public func featuresOfSample(path p: String, store: FeatureStore, backbone: StoredBackbone) throws -> ImageFeatures {
    let abs = URL(fileURLWithPath: p).standardizedFileURL.path
    guard let s = try store.sample(path: abs) ?? store.sample(path: p) else {
        throw WorkflowError.noFeatures("no sample with path \(p) in the store (give the image file itself instead)")
    }
    guard let v = try store.vector(sha256: s.sha256, backbone: backbone) else {
        throw WorkflowError.noFeatures("\(p) has no \(backbone.architecture) features in the store")
    }
    return ImageFeatures(path: s.path, sha256: s.sha256, vector: v, cached: true)
}

/// The stored features of an image given by id, or by a sha256 prefix of at least 4 hex digits.
public func featuresOfImage(id text: String, store: FeatureStore, backbone: StoredBackbone) throws -> ImageFeatures {
    var id: Int64? = nil
    if let n = Int64(text), try store.image(id: n) != nil { id = n }
    if id == nil, text.count >= 4 { id = try store.imageID(sha256OrPrefix: text) }
    guard let id, let image = try store.image(id: id) else { throw WorkflowError.noFeatures("no image \(text) in the store") }
    guard let v = try store.vector(sha256: image.sha256, backbone: backbone) else {
        throw WorkflowError.noFeatures("image \(text) has no \(backbone.architecture) features in the store")
    }
    return ImageFeatures(path: try store.samples(imageID: id).first?.path ?? image.sha256, sha256: image.sha256, vector: v, cached: true)
}
