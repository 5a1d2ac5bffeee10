import Foundation

/// Errors from reading or writing NumPy `.npy` files.
public enum NPYError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case notNPY(String)
    case unsupportedVersion(major: UInt8, minor: UInt8)
    case badHeader(String)
    case unsupportedDType(String)
    case fortranOrder
    case truncated(expectedBytes: Int, actualBytes: Int)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read \(path): \(reason); check that the file exists and is readable"
        case .notNPY(let what):
            return "\(what) is not a NumPy .npy file (missing \\x93NUMPY magic); save it with numpy.save"
        case .unsupportedVersion(let major, let minor):
            return "unsupported .npy version \(major).\(minor); save with numpy.save (version 1.0 or 2.0)"
        case .badHeader(let h):
            return "malformed .npy header: \(h)"
        case .unsupportedDType(let d):
            return "unsupported .npy dtype '\(d)'; supported: <f4, <f8, |u1, <i8, <i4 (little-endian)"
        case .fortranOrder:
            return ".npy array is in Fortran order; save a C-contiguous array (numpy.ascontiguousarray)"
        case .truncated(let e, let a):
            return ".npy data is truncated: expected \(e) bytes, found \(a)"
        }
    }
}

/// A minimal NumPy `.npy` reader/writer (format versions 1.0 and 2.0, C order, little-endian).
/// Every supported dtype is converted to float32 (`Tensor`); `readUInt8` keeps bytes as they are.
public enum NPY {
    public struct Header: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        public var dataOffset: Int
    }

    /// Reads an .npy file as a float32 tensor (f4, f8, u1, i4, i8 are converted).
    public static func read(path: String) throws -> Tensor {
        try read(data: load(path))
    }

    /// Reads an .npy file of dtype uint8 without conversion: (shape, bytes).
    public static func readUInt8(path: String) throws -> (shape: [Int], bytes: [UInt8]) {
        let data = try load(path)
        let h = try header(data)
        guard h.dtype == "|u1" || h.dtype == "<u1" else { throw NPYError.unsupportedDType(h.dtype) }
        let count = h.shape.reduce(1, *)
        guard data.count - h.dataOffset >= count else {
            throw NPYError.truncated(expectedBytes: count, actualBytes: data.count - h.dataOffset)
        }
        return (h.shape, [UInt8](data[(data.startIndex + h.dataOffset)..<(data.startIndex + h.dataOffset + count)]))
    }

    public static func read(data: Data) throws -> Tensor {
        let h = try header(data)
        let count = h.shape.reduce(1, *)
        let itemSize: Int
        switch h.dtype {
        case "<f4", "<i4": itemSize = 4
        case "<f8", "<i8": itemSize = 8
        case "|u1", "<u1": itemSize = 1
        default: throw NPYError.unsupportedDType(h.dtype)
        }
        let available = data.count - h.dataOffset
        guard available >= count * itemSize else {
            throw NPYError.truncated(expectedBytes: count * itemSize, actualBytes: available)
        }
        var out = [Float](repeating: 0, count: count)
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress!.advanced(by: h.dataOffset)
            out.withUnsafeMutableBufferPointer { o in
                switch h.dtype {
                case "<f4":
                    for i in 0..<count { o[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                case "<i4":
                    for i in 0..<count { o[i] = Float(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
                case "<f8":
                    for i in 0..<count { o[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                case "<i8":
                    for i in 0..<count { o[i] = Float(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
                default:
                    for i in 0..<count { o[i] = Float(base.load(fromByteOffset: i, as: UInt8.self)) }
                }
            }
        }
        return Tensor(shape: h.shape, data: out)
    }

    /// Parses the header: magic, version, dict with 'descr', 'fortran_order', 'shape'.
    public static func header(_ data: Data) throws -> Header {
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw NPYError.notNPY("data")
        }
        let major = bytes[6], minor = bytes[7]
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw NPYError.badHeader("too short") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            start = 12
        default:
            throw NPYError.unsupportedVersion(major: major, minor: minor)
        }
        guard data.count >= start + headerLength else {
            throw NPYError.truncated(expectedBytes: start + headerLength, actualBytes: data.count)
        }
        let s = data.startIndex
        guard let text = String(data: data[(s + start)..<(s + start + headerLength)], encoding: .utf8) else {
            throw NPYError.badHeader("not UTF-8")
        }
        guard let descr = field(text, "descr") else { throw NPYError.badHeader(text) }
        let dtype = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        if let fo = field(text, "fortran_order"), fo.contains("True") { throw NPYError.fortranOrder }
        guard let open = text.range(of: "'shape'")?.upperBound ?? text.range(of: "\"shape\"")?.upperBound,
              let lp = text[open...].firstIndex(of: "("),
              let rp = text[lp...].firstIndex(of: ")") else { throw NPYError.badHeader(text) }
        var shape: [Int] = []
        for part in text[text.index(after: lp)..<rp].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw NPYError.badHeader(text) }
            shape.append(v)
        }
        return Header(dtype: dtype, shape: shape, dataOffset: start + headerLength)
    }

    /// Writes a float32 tensor as a version 1.0 .npy file.
    public static func write(_ tensor: Tensor, path: String) throws {
        let shapeText = tensor.shape.isEmpty ? "()" :
            tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" :
            "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let n = dict.utf8.count
        data.append(contentsOf: [UInt8(n & 0xff), UInt8(n >> 8)])
        data.append(contentsOf: Array(dict.utf8))
        tensor.data.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw NPYError.unreadable(path: path, reason: "\(error)")
        }
    }

    private static func load(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw NPYError.unreadable(path: path, reason: error.localizedDescription)
        }
    }

    private static func field(_ text: String, _ key: String) -> String? {
        guard let r = text.range(of: "'\(key)'") ?? text.range(of: "\"\(key)\"") else { return nil }
        let rest = text[r.upperBound...].drop(while: { $0 == ":" || $0 == " " })
        let end = rest.firstIndex(of: ",") ?? rest.endIndex
        return String(rest[..<end])
    }
}
