import Foundation
import Backbones
import NN
import OutputFiles

/// The resumable state of a run besides the tensors.
struct RunState: Codable, Equatable {
    var nextEpoch: Int
    var bestAccuracy: Double
    var bestEpoch: Int?
    var history: [FinetuneEpochMetrics]
    /// Seconds spent in earlier calls (resumed runs report the total).
    var elapsed: Double
    var skipped: [String]
}

struct CheckpointHeader: Codable {
    var version: Int
    var options: FinetuneOptions
    var classes: [String]
    var state: RunState
    var hasMomentum: Bool
    var batchesTracked: Int64
    var bestBatchesTracked: Int64
    /// The data the run trains on (absent in checkpoints of version 1, which are resumed unchecked).
    var data: DataIdentity? = nil
}

/// A checkpoint file: `PROBECKP`, a little-endian UInt64 header length, the JSON header (settings,
/// classes, epoch to continue from, best accuracy and epoch, metrics so far, optimizer flags), then
/// five float32 arrays, each preceded by its UInt64 count: parameters, SGD momentum buffers,
/// BatchNorm running statistics, best parameters, best running statistics. Every random draw of a
/// run is a function of (seed, epoch, index), so the header's epoch is the whole RNG state. The
/// header also identifies the data (`DataIdentity`): a resume on other data is refused.
/// Written atomically (temporary file + rename) after every epoch; removed once the run's final
/// weights are written, kept when the run stops early or fails.
struct Checkpoint {
    var header: CheckpointHeader
    var parameters: [Float]
    var momentum: [Float]
    var buffers: [Float]
    var bestParameters: [Float]
    var bestBuffers: [Float]

    static let magic = Array("PROBECKP".utf8)

    static func write(path: String, header: CheckpointHeader, parameters: [Float], momentum: [Float], buffers: [Float],
                      bestParameters: [Float], bestBuffers: [Float]) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = try enc.encode(header)
        var data = Data(magic)
        func u64(_ v: Int) { var x = UInt64(v).littleEndian; withUnsafeBytes(of: &x) { data.append(contentsOf: $0) } }
        u64(json.count)
        data.append(json)
        for a in [parameters, momentum, buffers, bestParameters, bestBuffers] {
            u64(a.count)
            a.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        try writeFileAtomically(data, to: path)   // temporary file, fsync, rename (NN/OutputFile.swift)
    }

    /// Reads and checks a checkpoint: the settings and classes must be those of `o` and `classes`,
    /// and, when `data` is given and the checkpoint records its data, the data must be the same.
    static func read(path: String, expect o: FinetuneOptions, classes: [String], data expectedData: DataIdentity? = nil,
                     parameterCount: Int?, bufferCount: Int?) throws -> Checkpoint {
        func bad(_ r: String) -> FinetuneError { .checkpoint(path: path, reason: r) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw bad("cannot read: \(error.localizedDescription)") }
        var pos = 0
        func take(_ n: Int) throws -> Data {
            guard n >= 0, pos + n <= data.count else { throw bad("truncated; delete it to start over") }
            defer { pos += n }
            return data.subdata(in: (data.startIndex + pos)..<(data.startIndex + pos + n))
        }
        func u64() throws -> Int {
            let d = try take(8)
            var v: UInt64 = 0
            for (i, b) in d.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
            guard v < UInt64(Int.max / 8) else { throw bad("corrupt length field; delete it to start over") }
            return Int(v)
        }
        guard try [UInt8](take(8)) == magic else { throw bad("not a probe finetune checkpoint") }
        let header: CheckpointHeader
        do { header = try JSONDecoder().decode(CheckpointHeader.self, from: try take(try u64())) } catch let e as FinetuneError { throw e } catch {
            throw bad("unreadable header (\(error)); delete it to start over")
        }
        func floats(_ expected: Int?) throws -> [Float] {
            let n = try u64()
            if let expected, n != expected { throw bad("holds \(n) values where \(expected) are expected") }
            let d = try take(n * 4)
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBytes { dst in d.withUnsafeBytes { dst.copyMemory(from: $0) } }
            return out
        }
        let h = header.options
        var mismatches: [String] = []
        if h.architecture != o.architecture { mismatches.append("backbone \(h.architecture.name)") }
        if h.batchSize != o.batchSize { mismatches.append("batch \(h.batchSize)") }
        if h.learningRate != o.learningRate { mismatches.append("lr \(h.learningRate)") }
        if h.momentum != o.momentum { mismatches.append("momentum \(h.momentum)") }
        if h.weightDecay != o.weightDecay { mismatches.append("weight decay \(h.weightDecay)") }
        if h.stepSize != o.stepSize { mismatches.append("step \(h.stepSize)") }
        if h.gamma != o.gamma { mismatches.append("gamma \(h.gamma)") }
        if h.seed != o.seed { mismatches.append("seed \(h.seed)") }
        if h.imageSize != o.imageSize { mismatches.append("image size \(h.imageSize)") }
        if h.dropout != o.dropout { mismatches.append("dropout \(String(describing: h.dropout))") }
        if header.classes != classes { mismatches.append("classes \(header.classes)") }
        if !mismatches.isEmpty {
            throw bad("was made with different settings (\(mismatches.joined(separator: ", "))); rerun with those settings or without --resume")
        }
        if let expectedData, let recorded = header.data, recorded.digest != expectedData.digest {
            throw FinetuneError.otherData(checkpoint: path, recorded: recorded, given: expectedData)
        }
        let p = try floats(parameterCount)
        let m = try floats(o.momentum != 0 ? parameterCount : nil)
        let b = try floats(bufferCount)
        let bp = try floats(parameterCount)
        let bb = try floats(bufferCount)
        return Checkpoint(header: header, parameters: p, momentum: m, buffers: b, bestParameters: bp, bestBuffers: bb)
    }
}
