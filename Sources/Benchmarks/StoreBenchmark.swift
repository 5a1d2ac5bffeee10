import Digest
import Foundation
import Store
import Reproducible

/// Writes synthetic images `range` (content sha256 of "synthetic image i", label class(i mod 10),
/// split val for one image in five of every class, path /synthetic/SPLIT/LABEL/i.jpg, one `dimension`-d view-0 vector per
/// image) into the store at `path`, through `insertBatch` in transactions of `batchSize` rows. The
/// vector of image i depends on i only (SplitMix64 seeded with i), so stores of disjoint ranges
/// merge into the store of their union: four 250,000-image parts give the 1,000,000-image store.
/// With `shard`, the store is marked as that shard ("i/n") like `probe extract --shard`.
/// A fixture: written without WAL and fsync, switched to WAL at the end.
@discardableResult
public func buildSyntheticImages(path: String, range: Range<Int>, dimension: Int = 512, dtype: VectorDType = .f32,
                                 shard: String? = nil, batchSize: Int = 10_000,
                                 progress: ((Int) -> Void)? = nil) throws -> StoredBackbone {
    var options = Database.Options()
    options.wal = false
    let store = try FeatureStore(path: path, options: options)
    try store.database.execute("PRAGMA synchronous = OFF")
    let backbone = try store.backbone(architecture: "synthetic", weightsSHA256: SHA256.hex(Array("synthetic-\(dimension)".utf8)),
                                      dimension: dimension)
    if let shard { try store.setMetaValue(FeatureStore.shardMetaKey, shard) }
    var done = range.lowerBound
    while done < range.upperBound {
        let n = min(batchSize, range.upperBound - done)
        var batch = Batch()
        batch.images.reserveCapacity(n); batch.samples.reserveCapacity(n); batch.features.reserveCapacity(n)
        for i in done..<(done + n) {
            let sha = SHA256.hex(Array("synthetic image \(i)".utf8))
            let label = "class\(i % 10)"
            let split = (i / 10) % 5 == 0 ? "val" : "train"  // every class in both splits
            var rng = SplitMix64(seed: UInt64(i))
            // A class-dependent mean, so that a head has something to learn.
            let v = (0..<dimension).map { j in rng.nextFloat() - 0.5 + (j % 10 == i % 10 ? 0.5 : 0) }
            batch.images.append(ImageRecord(sha256: sha, width: 224, height: 224, byteSize: 1000 + i % 1000))
            batch.samples.append(SampleRecord(path: "/synthetic/\(split)/\(label)/\(i).jpg", sha256: sha, label: label, split: split,
                                              mtimeNS: Int64(i)))
            batch.features.append(FeatureRecord(sha256: sha, transform: "val", view: 0, vector: v))
        }
        try store.insertBatch(batch, backbone: backbone, dtype: dtype)
        done += n
        progress?(done - range.lowerBound)
    }
    _ = try store.database.scalarText("PRAGMA journal_mode = WAL")
    return backbone
}
