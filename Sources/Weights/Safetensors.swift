import Foundation
import NN
import OutputFiles

/// safetensors: u64 little-endian header length, a JSON header
/// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data.
enum Safetensors {
    static let dtypeNames: [String: DType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64, "I64": .int64,
        "I32": .int32, "I16": .int16, "I8": .int8, "U8": .uint8, "BOOL": .bool,
    ]
    static func name(of d: DType) -> String { dtypeNames.first { $0.value == d }?.key ?? "F32" }

    static func read(_ file: UnsafeRawBufferPointer) throws -> ([WeightTensor], [String: String]) {
        var r = ByteReader(file, what: "safetensors header")
        let n = try r.u64()
        guard n <= UInt64(r.remaining), n <= 100_000_000 else { throw WeightsError.truncated(what: "safetensors header", offset: 8) }
        let headerBytes = try r.take(Int(n))
        let dataStart = r.pos
        let data = UnsafeRawBufferPointer(rebasing: file[dataStart...])
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(headerBytes)) } catch {
            throw WeightsError.safetensors("the header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw WeightsError.safetensors("the header is not a JSON object") }
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw WeightsError.safetensors("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw WeightsError.safetensors("__metadata__ value for \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any],
                  let offsetsAny = info["data_offsets"] as? [Any], offsetsAny.count == 2 else {
                throw WeightsError.safetensors("entry \(key) lacks dtype, shape or data_offsets")
            }
            guard let dtype = dtypeNames[dtypeName] else { throw WeightsError.unsupportedDType("\(dtypeName) (tensor \(key))") }
            let shape = try shapeAny.map { v -> Int in
                guard let i = intValue(v), i >= 0 else { throw WeightsError.safetensors("entry \(key) has a bad shape") }
                return i
            }
            guard let b = intValue(offsetsAny[0]), let e = intValue(offsetsAny[1]), b >= 0, e >= b, e <= data.count else {
                throw WeightsError.safetensors("entry \(key) has data_offsets outside the \(data.count) data bytes")
            }
            guard let numel = Materializer.elementCount(shape),
                  !numel.multipliedReportingOverflow(by: dtype.byteSize).overflow,
                  numel * dtype.byteSize == e - b else {
                throw WeightsError.safetensors("entry \(key): shape \(shape) of \(dtypeName) does not fill bytes \(b)..<\(e)")
            }
            entries.append((key, dtype, shape, b, e))
        }
        entries.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
        var out: [WeightTensor] = []
        out.reserveCapacity(entries.count)
        for e in entries {
            let storage = try data.checkedSlice(e.begin, e.end - e.begin, what: "safetensors tensor \(e.name)")
            var stride = [Int](repeating: 1, count: e.shape.count)
            var acc = 1
            for i in e.shape.indices.reversed() { stride[i] = acc; acc *= max(e.shape[i], 1) }
            out.append(try Materializer.tensor(name: e.name, dtype: e.dtype, storage: storage, offset: 0, shape: e.shape, stride: stride))
        }
        return (out, metadata)
    }

    private static func intValue(_ v: Any) -> Int? {
        if let n = v as? NSNumber {
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 9e15 else { return nil }
            return n.intValue
        }
        return nil
    }
}

/// Writes float32 tensors as a safetensors file (order preserved, 8-byte aligned header).
/// Written through `writeFileAtomically` (see NN/OutputFile.swift): never over a non-regular file
/// or one of `protecting`; "-" is standard output.
public func writeSafetensors(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to path: String,
                             protecting: [String] = []) throws {
    try writeSafetensors(tensors.map { WeightTensor(name: $0.name, dtype: .float32, shape: $0.tensor.shape, values: $0.tensor.data) },
                         metadata: metadata, to: path, protecting: protecting)
}

/// Writes weight tensors as safetensors: float32 tensors as F32, int64 tensors (with `int64Values`) as I64.
public func writeSafetensors(_ tensors: [WeightTensor], metadata: [String: String] = [:], to path: String,
                             protecting: [String] = []) throws {
    var seen = Set<String>()
    var header = "{"
    var first = true
    func sep() { if !first { header += "," }; first = false }
    if !metadata.isEmpty {
        sep()
        header += "\"__metadata__\":{"
        header += metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",")
        header += "}"
    }
    var offset = 0
    for t in tensors {
        guard seen.insert(t.name).inserted, t.name != "__metadata__" else {
            throw WeightsError.writeFailed(path: path, reason: "duplicate or reserved tensor name \(t.name)")
        }
        let isInt = t.dtype == .int64 && t.int64Values != nil
        let size = t.values.count * (isInt ? 8 : 4)
        sep()
        header += "\(jsonString(t.name)):{\"dtype\":\"\(isInt ? "I64" : "F32")\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
            + "\"data_offsets\":[\(offset),\(offset + size)]}"
        offset += size
    }
    header += "}"
    var headerBytes = Array(header.utf8)
    while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
    var out = [UInt8]()
    out.reserveCapacity(8 + headerBytes.count + offset)
    let n = UInt64(headerBytes.count)
    for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
    out += headerBytes
    for t in tensors {
        if t.dtype == .int64, let ints = t.int64Values {
            ints.withUnsafeBytes { out.append(contentsOf: $0) }
        } else {
            t.values.withUnsafeBytes { out.append(contentsOf: $0) }
        }
    }
    try writeFileAtomically(out, to: path, protecting: protecting)
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

