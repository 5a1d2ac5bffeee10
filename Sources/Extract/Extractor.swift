import Foundation
import NN
import Digest
import Vision
import Store
import Backbones
import Weights
import Parallelism

/// Settings of one extraction run.
public struct ExtractOptions: Sendable {
    public var backbone: Architecture
    /// The weight file (resolved by the caller: explicit path, cache or download).
    public var weightsPath: String
    /// Augmented views (RandomResizedCrop + flip) per training image, besides view 0.
    public var views: Int = 0
    /// Images' tensors per backbone call and per committed transaction.
    public var batchSize: Int = 32
    /// Storage type of the vectors.
    public var dtype: VectorDType = .f32
    /// Seed of the augmented views: view v of an image uses AugmentRNG(seed, epoch: v, index: content key).
    public var seed: UInt64 = 0
    /// Worker threads of the backbone (the features do not depend on it); decoding threads follow
    /// from it (`ThreadCount.decoders(workers:)`).
    public var workers: Int = defaultWorkerCount
    /// Follow every symbolic link, also out of the folder (cycles are detected by device and
    /// inode); by default links to directories and links leading out of the folder are skipped.
    public var followSymlinks: Bool = false
    /// Read and hash every file, also those whose path, size and modification time match what the
    /// store recorded (which a plain run trusts): a file whose content changed with its size and
    /// mtime kept is then treated as changed (its new content computed if missing, its path
    /// recorded under the new content), and counted in `ExtractSummary.changedContent`.
    public var verify: Bool = false
    /// Compute only this shard's images (see `ShardSpec`): files of other shards are hashed but
    /// never decoded, and the store (its own file, on local disk) records only this shard.
    public var shard: ShardSpec? = nil
    /// float32, or int8: the backbone quantized with activation ranges calibrated on
    /// `calibrationImages` of the data set's training images (`calibrationSample`), once per store:
    /// a store that has an int8 version of these weights keeps using its calibration.
    public var precision: Precision = .float32
    public var calibrationImages: Int = 32
    /// int8, when this run calibrates: 3x3 stride-1 convolutions as Winograd F(2x2, 3x3) (arithmetic
    /// version 3); false: direct convolutions only (version 2). A stored calibration decides for itself.
    public var int8Winograd = true

    public init(backbone: Architecture, weightsPath: String, views: Int = 0, batchSize: Int = 32,
                dtype: VectorDType = .f32, seed: UInt64 = 0) {
        self.backbone = backbone; self.weightsPath = weightsPath; self.views = views
        self.batchSize = batchSize; self.dtype = dtype; self.seed = seed
    }
}

/// What `extract` did.
public struct ExtractSummary: Sendable, Codable {
    public var backbone: String
    /// DIR as given.
    public var root: String = ""
    public var weightsSHA256: String
    public var dimension: Int
    /// Image files found (accepted by extension).
    public var files: Int
    /// Files whose features were computed in this run, and the vectors written.
    public var computed: Int
    public var vectorsWritten: Int
    /// Files whose features were already in the store (by content).
    public var cached: Int
    /// Files that could not be read or decoded, with reasons.
    public var failed: Int
    public var failures: [FailureRecord]
    /// Files skipped by their extension (not images for torchvision's ImageFolder).
    public var skippedByExtension: [String]
    /// Samples of files that no longer exist, removed from the store (their features stay).
    public var removedSamples: Int
    public var seconds: Double
    /// Computed files per second (0 when nothing was computed).
    public var imagesPerSecond: Double
    public var bytesSavedByF16: Int
    /// Symbolic links not followed (to folders, or out of the folder; see `--follow-symlinks`).
    public var skippedLinks: [String] = []
    /// Folders reached again through a symbolic link (a cycle), not entered.
    public var loops: [String] = []
    /// Folders beside train/ and val/ that were not read (e.g. `test`).
    public var foldersNotRead: [String] = []
    /// The split given to this run's images when DIR is itself a folder beside `val/` (e.g.
    /// `extract D/train` records split `train`); nil otherwise.
    public var subfolderSplit: String?
    /// Images of a run without split folders whose recorded split was kept, by split.
    public var keptSplits: [String: Int] = [:]
    /// With `verify`: the files hashed (every readable image file); nil without `verify`.
    public var verified: Int?
    /// With `verify`: files whose content differs from what the store recorded for their path
    /// although their size and modification time match the record (a plain run does not see them).
    public var changedContent: Int = 0
    /// The shard computed (nil: the whole folder), and the files of other shards (hashed, not decoded).
    public var shard: ShardSpec?
    public var otherShardFiles: Int = 0
    /// "float32" or "int8".
    public var precision: String = Precision.float32.rawValue
    /// int8: the backbone row's identity (the quantized model's), how it was calibrated, and
    /// whether this run calibrated it (false: the store's calibration was reused).
    public var int8Identity: String?
    public var calibration: String?
    public var calibratedNow: Bool = false

    /// A few lines for the terminal.
    public func render() -> String {
        var s = ""
        if let shard {
            s += "shard \(shard.text) (from \(shard.source)): \(files - otherShardFiles) of \(files) files are this shard's "
            s += "(leading 64 bits of their SHA-256 mod \(shard.count)); \(otherShardFiles) of other shards hashed, not decoded\n"
        }
        s += "\(backbone) (weights \(weightsSHA256.prefix(12)), \(dimension)-d"
        if let id = int8Identity {
            s += ", int8 \(id.prefix(12)): \(calibratedNow ? "calibrated now" : "the store's calibration")\(calibration.map { ", \($0)" } ?? "")"
        }
        s += "): \(files) images: "
        s += "\(computed) new, \(cached) cached, \(failed) failed"
        s += String(format: " in %.2f s", seconds)
        if computed > 0 { s += String(format: " (%.1f images/s, %d vectors)", imagesPerSecond, vectorsWritten) }
        if let verified {
            s += "; verified \(verified) file\(verified == 1 ? "" : "s") by content: \(changedContent) file\(changedContent == 1 ? "" : "s") changed"
            if changedContent > 0 { s += " with size and modification time kept (recorded under their new content)" }
        }
        if bytesSavedByF16 > 0 { s += "; f16 saved \(bytesSavedByF16 / 1024) KiB" }
        if removedSamples > 0 { s += "; \(removedSamples) vanished files forgotten" }
        if let split = subfolderSplit {
            s += "\n  \(root) is a folder of a train/ and val/ tree: its images are recorded as split '\(split)'"
        }
        for (split, n) in keptSplits.sorted(by: { $0.key < $1.key }) {
            s += "\n  kept the split of \(n) image\(n == 1 ? "" : "s") already recorded as \(split)"
        }
        for f in foldersNotRead {
            s += "\n  not read: \(f)/ beside train/ and val/ (only train/ and val/ are read; `probe extract \(root)/\(f)` adds it as split '\(f)')"
        }
        if !loops.isEmpty {
            s += "\n  symbolic link loop(s) not entered: " + loops.prefix(5).joined(separator: ", ") + (loops.count > 5 ? ", ..." : "")
        }
        if !skippedLinks.isEmpty {
            s += "\n  \(skippedLinks.count) symbolic link(s) to folders or out of the folder not followed (pass --follow-symlinks to follow them): "
            s += skippedLinks.prefix(5).joined(separator: ", ") + (skippedLinks.count > 5 ? ", ..." : "")
        }
        for f in failures { s += "\n  failed: \(f.path): \(f.reason)" }
        if !skippedByExtension.isEmpty {
            s += "\n  skipped (not an image extension): " + skippedByExtension.prefix(5).map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ", ")
            if skippedByExtension.count > 5 { s += ", ..." }
        }
        return s
    }
}

/// Progress of an extraction: files done (computed or failed) out of those to compute.
public typealias ExtractProgress = @Sendable (_ done: Int, _ total: Int) -> Void

/// One file found by the scan.
struct ScannedFile: Sendable {
    let path: String
    let label: String
    var split: String?
    let status: FileStatus
}

/// One distinct image (by content) whose features are missing, with every path that holds it.
struct WorkItem: Sendable {
    let sha256: String
    let path: String
    let byteSize: Int
    let views: [Int]
    let samples: [SampleRecord]
    /// The file's bytes when the caller has read them already (decoded from here, not from `path`).
    var data: Data? = nil
}

/// A batch decoded and transformed, ready for the backbone.
struct PreparedBatch: @unchecked Sendable {
    let items: [WorkItem]
    /// Per item: its first tensor slot, or nil when it failed (then `errors` has the reason).
    let slots: [Int?]
    let errors: [VisionError?]
    let sizes: [(width: Int, height: Int)?]
    let tensors: UnsafeMutablePointer<Float>
    let count: Int
    /// Side of the square tensors (the preprocessing's crop): 3 x crop x crop floats per slot.
    let crop: Int
}

public enum ExtractError: Error, CustomStringConvertible {
    case noImages(String)
    case weightsUnreadable(String)
    case weightsChanged(String)
    public var description: String {
        switch self {
        case .noImages(let root):
            return "no image files under \(root) (expected class sub-folders, or train/ and val/ with class sub-folders)"
        case .weightsUnreadable(let path):
            return "cannot read the weight file \(path); check the path given with --weights"
        case .weightsChanged(let path):
            return "the weight file \(path) changed during the run; run again"
        }
    }
}

/// The transform name of view 0 (Resize 256, CenterCrop 224, Normalize) and of augmented views.
public let validationTransform = "val"
public let augmentedTransform = "rrc-flip"

/// Scans an ImageFolder tree (with train/ and val/ sub-trees, or a single tree), finds what the
/// store lacks, and computes it: decoding and transforms of the next batch overlap the backbone's
/// work on this one; every batch is committed in one transaction, so a killed run resumes where
/// it stopped. Files are identified by content (SHA-256); an unchanged file (same path, size and
/// modification time) is not even read again, unless `options.verify` asks to hash every file.
public func extract(root: String, into store: FeatureStore, options: ExtractOptions,
                    progress: ExtractProgress? = nil) throws -> ExtractSummary {
    let t0 = DispatchTime.now().uptimeNanoseconds
    let files = try scan(root: root, followSymlinks: options.followSymlinks)
    var summary = ExtractSummary(backbone: options.backbone.name, weightsSHA256: "", dimension: options.backbone.featureDimension,
                                 files: files.accepted.count, computed: 0, vectorsWritten: 0, cached: 0, failed: 0,
                                 failures: [], skippedByExtension: files.skipped, removedSamples: 0,
                                 seconds: 0, imagesPerSecond: 0, bytesSavedByF16: 0)
    summary.root = root
    summary.skippedLinks = files.skippedLinks
    summary.loops = files.loops
    summary.foldersNotRead = files.foldersNotRead
    summary.subfolderSplit = files.subfolderSplit
    summary.shard = options.shard
    guard !files.accepted.isEmpty else { throw ExtractError.noImages(root) }
    try checkShard(options.shard, store: store)

    // Identify the weights (cached by path, size and mtime: hashing 45 MB is not free).
    let (weightsSHA, loadedWeights) = try weightsIdentity(path: options.weightsPath, store: store)
    summary.weightsSHA256 = weightsSHA
    summary.precision = options.precision.rawValue

    // Hash what changed; reuse the recorded sha256 of unchanged files.
    let known = Dictionary(try store.samples().map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
    let knownFailures = Dictionary(try store.failures().map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
    var records: [SampleRecord] = []
    var failures: [FailureRecord] = []
    var hashed = 0
    // every file's content, also other shards' (the int8 calibration sample is chosen from all)
    var population: [(sha256: String, path: String, split: String?)] = []
    for var f in files.accepted {
        // A run that knows no split (a tree without train/ and val/) keeps the recorded one.
        if f.split == nil, let recorded = known[f.path]?.split {
            f.split = recorded
            summary.keptSplits[recorded, default: 0] += 1
        }
        let stampMatches = known[f.path].map { $0.mtimeNS == f.status.mtimeNS && $0.byteSize == f.status.size } ?? false
        if stampMatches, !options.verify, let k = known[f.path] {
            population.append((k.sha256, f.path, f.split))
            if let shard = options.shard, !shard.contains(sha256: k.sha256) { summary.otherShardFiles += 1; continue }
            records.append(SampleRecord(path: f.path, sha256: k.sha256, label: f.label, split: f.split, mtimeNS: f.status.mtimeNS))
            continue
        }
        guard let data = FileManager.default.contents(atPath: f.path) else {
            if let shard = options.shard, !shard.contains(unreadablePath: f.path) { summary.otherShardFiles += 1; continue }
            failures.append(FailureRecord(path: f.path, sha256: nil, reason: "cannot read the file"))
            continue
        }
        let sha = SHA256.hex(data)
        hashed += 1
        population.append((sha, f.path, f.split))
        // Another shard's image: hashed (that is how its shard is known), never decoded.
        if let shard = options.shard, !shard.contains(sha256: sha) { summary.otherShardFiles += 1; continue }
        if stampMatches, let k = known[f.path], k.sha256 != sha { summary.changedContent += 1 }
        if let old = knownFailures[f.path], old.sha256 == sha {
            failures.append(old)  // unchanged since it failed: not tried again
            continue
        }
        records.append(SampleRecord(path: f.path, sha256: sha, label: f.label, split: f.split, mtimeNS: f.status.mtimeNS))
    }
    if options.verify { summary.verified = hashed }

    // The backbone row: the weights' own, or (int8) the store's int8 version of them, or a new calibration.
    var floatModel: FoldedNetwork?
    var weights = loadedWeights
    func loadFloatModel() throws -> FoldedNetwork {
        if let floatModel { return floatModel }
        let sd = try weights ?? loadStateDict(path: options.weightsPath)
        weights = sd
        guard sd.sha256 == weightsSHA else { throw ExtractError.weightsChanged(options.weightsPath) }
        let (model, _) = try buildBackbone(options.backbone, from: sd, workers: options.workers)
        floatModel = model
        return model
    }
    let backboneRow: StoredBackbone
    switch options.precision {
    case .float32:
        backboneRow = try store.backbone(architecture: options.backbone.name, weightsSHA256: weightsSHA,
                                         dimension: options.backbone.featureDimension)
    case .int8:
        // The stored calibration (and the current arithmetic's backbone of it: the one stored,
        // unless that was an older version's), or a new one.
        let calibration: Int8Calibration, json: String
        if let (_, q) = try store.int8Backbones(architecture: options.backbone.name, weightsSHA256: weightsSHA).first {
            (calibration, json) = (try storedCalibration(q), q.calibration)
        } else {
            let sample = calibrationSample(population, count: options.calibrationImages)
            guard !sample.isEmpty else { throw Int8ExtractError.noCalibrationImages("no readable image under \(root)") }
            calibration = try calibrate(try loadFloatModel(), sample: sample,
                                        preprocessing: options.backbone.preprocessing(weightsSHA256: weightsSHA),
                                        winograd: options.int8Winograd)
            json = calibration.json()
            summary.calibratedNow = true
        }
        backboneRow = try store.int8Backbone(architecture: options.backbone.name, weightsSHA256: weightsSHA,
                                             dimension: options.backbone.featureDimension, calibration: json,
                                             identity: int8Identity(weightsSHA256: weightsSHA, calibration: calibration, json: json))
        summary.calibration = calibration.summary
        summary.int8Identity = backboneRow.weightsSHA256
    }

    // Which (image, transform, view) rows are missing?
    var keys: [FeatureKey] = []
    var seen = Set<String>()
    var isTrain: [String: Bool] = [:]
    for r in records where r.split != "val" { isTrain[r.sha256] = true }
    for r in records where seen.insert(r.sha256).inserted {
        keys.append(FeatureKey(sha256: r.sha256, transform: validationTransform, view: 0))
        if options.views > 0, isTrain[r.sha256] == true {
            for v in 1...options.views { keys.append(FeatureKey(sha256: r.sha256, transform: augmentedTransform, view: v)) }
        }
    }
    let missing = try store.missingFeatures(backbone: backboneRow, keys: keys)
    var missingViews: [String: [Int]] = [:]
    for k in missing { missingViews[k.sha256, default: []].append(k.view) }

    // Work: one item per distinct missing image, in scan order, with all its paths.
    var samplesBySHA: [String: [SampleRecord]] = [:]
    for r in records { samplesBySHA[r.sha256, default: []].append(r) }
    let sizes = Dictionary(files.accepted.map { ($0.path, $0.status.size) }, uniquingKeysWith: { a, _ in a })
    var work: [WorkItem] = []
    var queued = Set<String>()
    for r in records {
        guard let views = missingViews[r.sha256], queued.insert(r.sha256).inserted else { continue }
        work.append(WorkItem(sha256: r.sha256, path: r.path, byteSize: sizes[r.path] ?? 0, views: views,
                             samples: samplesBySHA[r.sha256] ?? []))
    }

    // Samples of images already complete: record their paths (renames, copies, new labels).
    let workSHAs = Set(work.map(\.sha256))
    let settled = records.filter { r in
        guard !workSHAs.contains(r.sha256) else { return false }
        guard let k = known[r.path] else { return true }
        return k.sha256 != r.sha256 || k.label != r.label || k.split != r.split || k.mtimeNS != r.mtimeNS
    }
    if !settled.isEmpty { try store.upsertSamples(settled) }
    let newFailures = failures.filter { knownFailures[$0.path] == nil || knownFailures[$0.path] != $0 }
    if !newFailures.isEmpty { try store.recordFailures(newFailures) }
    // Files under this root that vanished: forget their paths (features stay, by content).
    // (A shard's store forgets every path that is not this shard's now, e.g. a file whose new
    // content falls in another shard.)
    let present = options.shard == nil ? Set(files.accepted.map(\.path)) : Set(records.map(\.path) + failures.map(\.path))
    let rootPrefix = absolutePath(root) + "/"
    let vanished = known.keys.filter { $0.hasPrefix(rootPrefix) && !present.contains($0) }.sorted()
    if !vanished.isEmpty { summary.removedSamples = try store.removeSamples(paths: vanished) }

    summary.cached = records.filter { !workSHAs.contains($0.sha256) }.count
    if !work.isEmpty {
        let model = try network(for: backboneRow, float: try loadFloatModel(), store: store)
        (floatModel, weights) = (nil, nil)  // int8: the float weights are no longer needed
        let result = try computeFeatures(work, model: model, store: store, backbone: backboneRow,
                                         preprocessing: options.backbone.preprocessing(weightsSHA256: weightsSHA),
                                         options: options, progress: progress)
        summary.computed = result.computedFiles
        summary.vectorsWritten = result.vectors
        summary.bytesSavedByF16 = result.savedBytes
        failures += result.failures
    }
    summary.failures = failures
    summary.failed = failures.count
    summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    summary.imagesPerSecond = summary.computed > 0 ? Double(summary.computed) / summary.seconds : 0
    return summary
}

/// A shard's store holds that shard only: a new (or sample-less) store is marked with the shard
/// (`meta` key `FeatureStore.shardMetaKey`); a store of another shard, a store of a whole
/// extraction given a shard, and a shard's store given no shard are refused.
func checkShard(_ shard: ShardSpec?, store: FeatureStore) throws {
    let recorded = try store.metaValue(FeatureStore.shardMetaKey)
    guard let shard else {
        if let recorded { throw ShardError.shardStoreWithoutShard(store: store.path, recorded: recorded) }
        return
    }
    if let recorded {
        guard recorded == shard.text else {
            throw ShardError.storeHoldsOtherShard(store: store.path, recorded: recorded, requested: shard.text)
        }
        return
    }
    guard try store.sampleCount() == 0 else { throw ShardError.storeNotForShards(store: store.path, requested: shard.text) }
    try store.setMetaValue(FeatureStore.shardMetaKey, shard.text)
}

/// What `scan` found.
struct ScanResult {
    var accepted: [ScannedFile] = []
    var skipped: [String] = []
    var skippedLinks: [String] = []
    var loops: [String] = []
    var foldersNotRead: [String] = []
    var subfolderSplit: String?
}

/// The files of an ImageFolder tree (train/ and val/, or one tree), absolute paths. A single tree
/// that is itself a folder beside train/ and val/ (DIR/../train and DIR/../val exist, DIR is one of
/// them or a sibling such as test/) is that split: its files get the folder's name as split.
func scan(root: String, followSymlinks: Bool = false) throws -> ScanResult {
    let layout = try DatasetLayout.detect(root: root, followSymlinks: followSymlinks)
    var parts: [(ImageFolder, String?)] = []
    var result = ScanResult()
    switch layout {
    case .split(let train, let val):
        parts = [(train, "train"), (val, "val")]
        result.foldersNotRead = DatasetLayout.foldersBesideSplits(root: root)
    case .single(let folder):
        let url = URL(fileURLWithPath: absolutePath(root))
        let parent = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        let isSplitFolder = !name.hasPrefix(".") && parent != url.path
            && (DatasetLayout.foldersBesideSplits(root: parent) + ["train", "val"]).contains(name)
            && ImageFolder.isDirectory(parent + "/train") && ImageFolder.isDirectory(parent + "/val")
        result.subfolderSplit = isSplitFolder ? name : nil
        parts = [(folder, result.subfolderSplit)]
    }
    for (folder, split) in parts {
        for s in folder.samples {
            let path = absolutePath(s.path)
            guard let st = FileStatus(path: path) else { result.skipped.append(path); continue }
            result.accepted.append(ScannedFile(path: path, label: folder.classes[s.label], split: split, status: st))
        }
        result.skipped += folder.skippedByExtension.map(absolutePath)
        result.skippedLinks += folder.skippedLinks.map(absolutePath)
        result.loops += folder.loops.map(absolutePath)
    }
    return result
}

/// The sha256 of a weight file, remembered in the store by (path, size, mtime). When it is not
/// remembered, the file is loaded (which hashes it) and the loaded weights are returned too.
func weightsIdentity(path: String, store: FeatureStore) throws -> (sha256: String, loaded: StateDict?) {
    let abs = absolutePath(path)
    guard let st = FileStatus(path: abs) else {
        throw ExtractError.weightsUnreadable(path)
    }
    let stamp = "\(st.size):\(st.mtimeNS)"
    if let cached = try store.metaValue("weights-sha256:" + abs), cached.hasPrefix(stamp + ":") {
        return (String(cached.dropFirst(stamp.count + 1)), nil)
    }
    let sd = try loadStateDict(path: abs)
    try store.setMetaValue("weights-sha256:" + abs, stamp + ":" + sd.sha256)
    return (sd.sha256, sd)
}
