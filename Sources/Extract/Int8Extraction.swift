import Foundation
import Backbones
import Store
import Weights

// int8 extraction: which images calibrate, the calibration itself, and the int8 backbone row of
// the store (reused by every later run, so that the features of one store are quantized alike).

/// The calibration images of a data set: the `count` distinct contents with the smallest SHA-256
/// among the training images (all images when none is in split "train"). Chosen by content only,
/// so every shard of a sharded run (which hashes every file) picks the same ones, and
/// tools/bench_forward_torch.py can pick them too.
func calibrationSample(_ population: [(sha256: String, path: String, split: String?)], count: Int) -> [(sha256: String, path: String)] {
    let train = population.filter { $0.split == "train" }
    var firstPath: [String: String] = [:]
    for f in train.isEmpty ? population : train where firstPath[f.sha256] == nil { firstPath[f.sha256] = f.path }
    return firstPath.keys.sorted().prefix(max(0, count)).map { ($0, firstPath[$0]!) }
}

/// Errors of int8 extraction.
public enum Int8ExtractError: Error, CustomStringConvertible {
    case noCalibrationImages(String)
    case badStoredCalibration(String)
    case olderArithmetic(backboneID: Int64)
    public var description: String {
        switch self {
        case .noCalibrationImages(let why): return "cannot calibrate int8: \(why)"
        case .badStoredCalibration(let why): return "the store's int8 calibration cannot be used: \(why)"
        case .olderArithmetic(let id):
            return "int8 backbone \(id) was quantized by an older version of probe's int8 arithmetic, which this one no longer computes: its features cannot be extended. `probe extract --precision int8` makes the current version's backbone (from the same calibration)"
        }
    }
}

/// The calibration of a stored int8 backbone.
func storedCalibration(_ q: StoredQuantization) throws -> Int8Calibration {
    do { return try Int8Calibration.fromJSON(q.calibration) } catch {
        throw Int8ExtractError.badStoredCalibration("backbone \(q.backboneID): \(error)")
    }
}

/// The identity of the int8 backbone of weights `weightsSHA256` calibrated as `calibration` (whose
/// canonical JSON, as stored, is `json`): the arithmetic this version of probe computes it with.
func int8Identity(weightsSHA256: String, calibration: Int8Calibration, json: String) -> String {
    FeatureStore.int8Identity(weightsSHA256: weightsSHA256, calibration: json, version: calibration.arithmeticVersion)
}

/// Calibrates `model` on the images of `sample` (view 0: the preprocessing's resize and center
/// crop). Files that cannot be read or decoded are left out.
func calibrate(_ model: FoldedNetwork, sample: [(sha256: String, path: String)], preprocessing: Preprocessing,
               winograd: Bool) throws -> Int8Calibration {
    var items: [WorkItem] = []
    for s in sample {
        guard let data = FileManager.default.contents(atPath: s.path) else { continue }
        items.append(WorkItem(sha256: s.sha256, path: s.path, byteSize: data.count, views: [0], samples: [], data: data))
    }
    let prepared = prepare(items, seed: 0, preprocessing: preprocessing)
    defer { prepared.tensors.deallocate() }
    let per = 3 * prepared.crop * prepared.crop
    var tensors: [Float] = []
    var shas: [String] = []
    for (i, item) in items.enumerated() where prepared.errors[i] == nil {
        guard let slot = prepared.slots[i] else { continue }
        tensors.append(contentsOf: UnsafeBufferPointer(start: prepared.tensors + slot * per, count: per))
        shas.append(item.sha256)
    }
    guard !shas.isEmpty else { throw Int8ExtractError.noCalibrationImages("none of the \(sample.count) calibration images could be decoded") }
    return tensors.withUnsafeBufferPointer {
        model.calibrateInt8(images: $0.baseAddress!, count: shas.count, height: prepared.crop, width: prepared.crop, imageSHA256: shas, winograd: winograd)
    }
}

/// The network that computes `backbone`'s features: the float32 network itself, or its int8
/// version with the store's calibration.
public func network(for backbone: StoredBackbone, float model: FoldedNetwork, store: FeatureStore) throws -> any Backbones.Backbone {
    guard let q = try store.quantization(backboneID: backbone.id) else { return model }
    let calibration = try storedCalibration(q)
    // The identity names the arithmetic's version: new features of an older version's backbone
    // would not be its features.
    guard int8Identity(weightsSHA256: q.weightsSHA256, calibration: calibration, json: q.calibration) == backbone.weightsSHA256 else {
        throw Int8ExtractError.olderArithmetic(backboneID: backbone.id)
    }
    return try QuantizedNetwork(model, calibration: calibration)
}
