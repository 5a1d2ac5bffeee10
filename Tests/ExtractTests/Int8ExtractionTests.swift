import Foundation
import Testing
import Store
import Backbones
import Digest
import TestSupport
@testable import Extract

/// `extract --precision int8` with MobileNetV2's real ImageNet weights on part of ants/bees: the
/// features against float32 (the thresholds: mean cosine >= 0.99, minimum >= 0.97), the
/// int8 backbone kept apart from the float32 one, the calibration made once and reused, and two
/// stores extracted apart holding the same bytes.
@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights)"))
struct Int8ExtractionTests {
    /// train/ and val/ trees with the first `perClass` images of each class of each split.
    static func makeSplitFolder(_ dir: String, perClass: Int) throws {
        let fm = FileManager.default
        for split in ["train", "val"] {
            for cls in ["ants", "bees"] {
                let from = dataRoot + "/\(split)/\(cls)", to = dir + "/\(split)/\(cls)"
                try fm.createDirectory(atPath: to, withIntermediateDirectories: true)
                for name in try fm.contentsOfDirectory(atPath: from).sorted().prefix(perClass) {
                    try fm.copyItem(atPath: from + "/" + name, toPath: to + "/" + name)
                }
            }
        }
    }

    static func vectors(_ s: FeatureStore, backbone: StoredBackbone) throws -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: try s.database.query(
            "SELECT i.sha256, f.vector FROM features f JOIN images i ON i.id = f.image_id WHERE f.backbone_id = ? AND f.view = 0",
            [.integer(backbone.id)]) { st in
                (st.string(0)!, st.blob(1).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) })
            })
    }

    @Test func int8FeaturesAreCloseToFloat32AndKeptApart() throws {
        let dir = temporaryDirectory("int8")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.makeSplitFolder(dir + "/data", perClass: 12)
        let store = try FeatureStore(path: dir + "/store.sqlite")
        var options = ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, batchSize: 8)
        let f32 = try extract(root: dir + "/data", into: store, options: options)
        options.precision = .int8
        options.calibrationImages = 16
        let i8 = try extract(root: dir + "/data", into: store, options: options)
        print(i8.render())
        #expect(i8.computed == 48 && i8.failed == 0 && i8.calibratedNow && i8.precision == "int8")
        #expect(i8.weightsSHA256 == f32.weightsSHA256)

        // two backbones: the float one and the int8 one, which says what it quantizes and how
        let backbones = try store.backbones()
        #expect(backbones.count == 2)
        let float = try #require(backbones.first { $0.weightsSHA256 == f32.weightsSHA256 })
        let int8 = try #require(backbones.first { $0.weightsSHA256 == i8.int8Identity })
        #expect(try store.precision(of: float) == "float32" && store.precision(of: int8) == "int8")
        let q = try #require(try store.quantization(backboneID: int8.id))
        #expect(q.weightsSHA256 == f32.weightsSHA256)
        let calibration = try Int8Calibration.fromJSON(q.calibration)
        // 16 of the 24 training images: the smallest SHA-256 values, never a val image
        let train = try store.samples().filter { $0.split == "train" }.map(\.sha256)
        #expect(calibration.images == Array(Set(train).sorted().prefix(16)))
        // MobileNetV2 has no 3x3 stride-1 convolution to run as Winograd: version 2, direct convolutions
        #expect(calibration.winograd == nil && calibration.arithmeticVersion == 2)
        #expect(FeatureStore.int8Identity(weightsSHA256: q.weightsSHA256, calibration: q.calibration, version: 2) == int8.weightsSHA256)
        #expect(try store.info().render().contains("int8 (quantized from weights \(f32.weightsSHA256.prefix(12)))"))
        // chosen by precision; listed with it
        #expect(try store.selectBackbone("mobilenet_v2:int8") == int8 && store.selectBackbone("int8") == int8)
        #expect(try store.selectBackbone("mobilenet_v2:float32") == float && store.selectBackbone(mobilenetWeights) == float)
        let ambiguous = #expect(throws: BackboneSelectionError.self) { try store.selectBackbone("mobilenet_v2") }
        #expect("\(ambiguous!)".contains("(1280-d, int8)"))

        // the features, image by image, against float32
        let a = try Self.vectors(store, backbone: float), b = try Self.vectors(store, backbone: int8)
        #expect(a.count == 48 && Set(a.keys) == Set(b.keys))
        let cosines = a.keys.map { cosine(a[$0]!, b[$0]!) }
        let mean = cosines.reduce(0, +) / Double(cosines.count)
        print(String(format: "int8 vs float32, MobileNetV2, %d images: cosine mean %.4f, min %.4f", cosines.count, mean, cosines.min()!))
        #expect(mean >= 0.99 && cosines.min()! >= 0.97)

        // a second run reuses the calibration and computes nothing
        let again = try extract(root: dir + "/data", into: store, options: options)
        #expect(again.computed == 0 && !again.calibratedNow && again.int8Identity == i8.int8Identity)

        // A backbone of an older version of the int8 arithmetic (v1: no bound on weight pairs) keeps
        // its features, but no new ones are computed for it; extract makes the current version's
        // backbone from its stored calibration, without calibrating again.
        let old = try FeatureStore(path: dir + "/old.sqlite")
        let v1 = try old.backbone(architecture: "mobilenet_v2", weightsSHA256: SHA256.hex(Array("probe int8 v1\n\(q.weightsSHA256)\n\(q.calibration)".utf8)),
                                  dimension: 1280)
        try old.database.run("INSERT INTO quantizations(backbone_id, precision, weights_sha256, calibration) VALUES (?, 'int8', ?, ?)",
                             [.integer(v1.id), .text(q.weightsSHA256), .text(q.calibration)])
        let seeded = try FoldedNetwork(.mobilenetV2, weights: SeededWeights(), options: ForwardOptions(workers: 1))
        let refused = #expect(throws: Int8ExtractError.self) { try network(for: v1, float: seeded, store: old) }
        #expect("\(refused!)".contains("older version of probe's int8 arithmetic"))
        let upgraded = try extract(root: dir + "/data", into: old, options: options)
        #expect(!upgraded.calibratedNow && upgraded.computed == 48 && upgraded.int8Identity == i8.int8Identity)
        #expect(try old.backbones().count == 2 && Self.vectors(old, backbone: #require(old.backbones().last)) == b)

        // another store, another batch size and worker count: the same calibration and bytes
        options.batchSize = 5
        options.workers = 1
        let other = try FeatureStore(path: dir + "/other.sqlite")
        let o = try extract(root: dir + "/data", into: other, options: options)
        #expect(o.int8Identity == i8.int8Identity)
        let otherInt8 = try #require(try other.backbones().first)
        #expect(try Self.vectors(other, backbone: otherInt8) == b)

        // two shards calibrate alike (each hashes every file) and merge into the same store
        var shards: [String] = []
        for i in 0..<2 {
            options.shard = try ShardSpec(index: i, count: 2)
            let path = dir + "/shard-\(i).sqlite"
            let s = try extract(root: dir + "/data", into: FeatureStore(path: path), options: options)
            #expect(s.int8Identity == i8.int8Identity && s.calibratedNow)
            shards.append(path)
        }
        _ = try FeatureStore.merge(into: dir + "/merged.sqlite", shards: shards)
        let merged = try FeatureStore(path: dir + "/merged.sqlite", readOnly: true)
        #expect(try merged.quantizations().map(\.calibration) == [q.calibration])
        #expect(try merged.canonicalDigest() == other.canonicalDigest())
    }

    /// ResNet-18 (the seeded reference weights): its 3x3 stride-1 convolutions run as Winograd,
    /// version 3 of the arithmetic; the features of a store extracted with another batch size and
    /// worker count are the same bytes, and a store whose calibration predates Winograd (version
    /// 2, direct convolutions) goes on computing its own arithmetic.
    @Test func resnetInt8RunsWinogradAndKeepsItsVersion() throws {
        let dir = temporaryDirectory("int8-resnet")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.makeSplitFolder(dir + "/data", perClass: 6)
        var options = ExtractOptions(backbone: .resnet18, weightsPath: sharedDirectory + "/reference/resnet18-ref.pth", batchSize: 8)
        options.precision = .int8
        options.calibrationImages = 8
        let store = try FeatureStore(path: dir + "/a.sqlite")
        let a = try extract(root: dir + "/data", into: store, options: options)
        #expect(a.computed == 24 && a.failed == 0 && a.calibratedNow)
        let q = try #require(try store.quantizations().first)
        let calibration = try Int8Calibration.fromJSON(q.calibration)
        #expect(calibration.arithmeticVersion == 3 && calibration.winograd?.filter { !$0.isEmpty }.count == 13)
        #expect(FeatureStore.int8Identity(weightsSHA256: q.weightsSHA256, calibration: q.calibration, version: 3) == a.int8Identity)
        options.batchSize = 5
        options.workers = 1
        let other = try FeatureStore(path: dir + "/b.sqlite")
        let b = try extract(root: dir + "/data", into: other, options: options)
        #expect(b.int8Identity == a.int8Identity)
        #expect(try other.canonicalDigest() == store.canonicalDigest())

        // a version-2 backbone (the same ranges, no Winograd multipliers) extends with its own arithmetic
        var direct = calibration
        direct.winograd = nil
        let old = try FeatureStore(path: dir + "/old.sqlite")
        let v2 = try old.int8Backbone(architecture: "resnet18", weightsSHA256: q.weightsSHA256, dimension: 512, calibration: direct.json(),
                                      identity: FeatureStore.int8Identity(weightsSHA256: q.weightsSHA256, calibration: direct.json(), version: 2))
        let extended = try extract(root: dir + "/data", into: old, options: options)
        #expect(!extended.calibratedNow && extended.computed == 24 && extended.int8Identity == v2.weightsSHA256)
        let winograd = try Self.vectors(store, backbone: #require(try store.backbones().first { $0.weightsSHA256 == a.int8Identity }))
        let plain = try Self.vectors(old, backbone: v2)
        #expect(Set(plain.keys) == Set(winograd.keys) && plain != winograd)
        for k in plain.keys { #expect(cosine(plain[k]!, winograd[k]!) > 0.999) }

        // --int8-direct: a calibration without multipliers, version 2: the same features as that backbone's
        options.int8Winograd = false
        let directStore = try FeatureStore(path: dir + "/direct.sqlite")
        let d = try extract(root: dir + "/data", into: directStore, options: options)
        let dq = try #require(try directStore.quantizations().first)
        #expect(try d.calibratedNow && Int8Calibration.fromJSON(dq.calibration).winograd == nil)
        #expect(d.int8Identity == FeatureStore.int8Identity(weightsSHA256: dq.weightsSHA256, calibration: dq.calibration, version: 2))
    }

    @Test func theCalibrationSampleIsChosenByContentFromTheTrainingImages() {
        let population: [(sha256: String, path: String, split: String?)] = [
            ("c", "/d/train/x/1.jpg", "train"), ("a", "/d/val/x/2.jpg", "val"), ("b", "/d/train/y/3.jpg", "train"),
            ("b", "/d/train/y/copy.jpg", "train"), ("d", "/d/train/y/4.jpg", "train"),
        ]
        #expect(calibrationSample(population, count: 2).map(\.sha256) == ["b", "c"])
        #expect(calibrationSample(population, count: 10).map(\.sha256) == ["b", "c", "d"])
        // no training split: every image
        let flat = population.map { ($0.sha256, $0.path, String?.none) }
        #expect(calibrationSample(flat, count: 2).map(\.sha256) == ["a", "b"])
    }
}
