import Foundation
import NN
import Digest

/// Element types a weight file may hold. All are readable as float32 values; int64 also keeps its exact integers.
public enum DType: String, Sendable, CaseIterable {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    public var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: return true
        default: return false
        }
    }
}

public enum WeightFormat: String, Sendable {
    case pthZip, pthLegacy, safetensors

    public var displayName: String {
        switch self {
        case .pthZip: return "PyTorch zip (torch.save, torch >= 1.6)"
        case .pthLegacy: return "PyTorch legacy (pre-zip torch.save)"
        case .safetensors: return "safetensors"
        }
    }
}

/// One named tensor of a weight file, converted to float32 (`values`, row-major, contiguous).
public struct WeightTensor: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let values: [Float]
    /// The exact integers when `dtype == .int64` (e.g. BatchNorm's num_batches_tracked).
    public let int64Values: [Int64]?

    public init(name: String, dtype: DType, shape: [Int], values: [Float], int64Values: [Int64]? = nil) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.values = values; self.int64Values = int64Values
    }

    public var count: Int { values.count }
    public var tensor: Tensor { Tensor(shape: shape, data: values) }
}

/// A loaded state_dict: tensors in file order, looked up by name.
public struct StateDict: Sendable {
    public let format: WeightFormat
    public let tensors: [WeightTensor]
    /// Lowercase hex SHA-256 of the file's bytes.
    public let sha256: String
    /// safetensors `__metadata__` (empty for PyTorch files).
    public let metadata: [String: String]
    /// Size of the file in bytes.
    public let fileSize: Int
    private let index: [String: Int]

    public init(format: WeightFormat, tensors: [WeightTensor], sha256: String,
                metadata: [String: String] = [:], fileSize: Int = 0) {
        self.format = format
        self.tensors = tensors
        self.sha256 = sha256
        self.metadata = metadata
        self.fileSize = fileSize
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() where index[t.name] == nil { index[t.name] = i }
        self.index = index
    }

    public var names: [String] { tensors.map(\.name) }

    public subscript(name: String) -> WeightTensor? {
        guard let i = index[name] else { return nil }
        return tensors[i]
    }

    /// The tensor `name` as float32; throws `WeightsError.missingKey` (with a close name, if any) when absent.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = self[name] else {
            throw WeightsError.missingKey(name, available: tensors.count, suggestion: closestName(to: name))
        }
        return t.tensor
    }

    /// The present name sharing the longest suffix (then prefix) with `name`.
    func closestName(to name: String) -> String? {
        let target = Array(name.utf8)
        var best: (score: Int, name: String)?
        for t in tensors {
            let c = Array(t.name.utf8)
            var s = 0
            while s < min(c.count, target.count), c[c.count - 1 - s] == target[target.count - 1 - s] { s += 1 }
            var p = 0
            while p < min(c.count, target.count), c[p] == target[p] { p += 1 }
            let score = s * 2 + p
            if score > (best?.score ?? -1) { best = (score, t.name) }
        }
        guard let best, best.score >= 8 else { return nil }
        return best.name
    }
}

/// Reads a weight file (PyTorch zip or legacy .pth/.pt, or safetensors), sniffing the format from its bytes.
public func loadStateDict(path: String) throws -> StateDict {
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    } catch {
        let reason = FileManager.default.fileExists(atPath: path) ? "\(error.localizedDescription)" : "no such file"
        throw WeightsError.fileNotReadable(path: path, reason: reason)
    }
    return try data.withUnsafeBytes { try loadStateDict(bytes: $0, name: path) }
}

/// Reads a weight file held in memory. `name` appears in error messages.
public func loadStateDict(bytes: UnsafeRawBufferPointer, name: String = "<memory>") throws -> StateDict {
    let format = try sniffFormat(bytes, name: name)
    // Hash on the other core while this one parses; the file's bytes outlive both.
    let hasher = BackgroundSHA256(bytes)
    defer { hasher.wait() }
    let (tensors, meta) = try parseTensors(bytes, format: format)
    return StateDict(format: format, tensors: tensors, sha256: hasher.wait(), metadata: meta, fileSize: bytes.count)
}

/// The tensors of a file in a known format, without hashing it.
func parseTensors(_ bytes: UnsafeRawBufferPointer, format: WeightFormat) throws -> ([WeightTensor], [String: String]) {
    switch format {
    case .pthZip: return (try TorchReader.readZip(bytes), [:])
    case .pthLegacy: return (try TorchReader.readLegacy(bytes), [:])
    case .safetensors: return try Safetensors.read(bytes)
    }
}

/// SHA-256 of a buffer computed on a background thread.
final class BackgroundSHA256: @unchecked Sendable {
    private let group = DispatchGroup()
    private var result = ""
    private let lock = NSLock()

    init(_ bytes: UnsafeRawBufferPointer) {
        let box = RawBox(bytes: bytes)
        group.enter()
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let h = fileSHA256(box.bytes)
            lock.lock(); result = h; lock.unlock()
            group.leave()
        }
    }

    @discardableResult func wait() -> String {
        group.wait()
        lock.lock(); defer { lock.unlock() }
        return result
    }
}

private struct RawBox: @unchecked Sendable { let bytes: UnsafeRawBufferPointer }

/// Which of the three formats `bytes` holds.
public func sniffFormat(_ bytes: UnsafeRawBufferPointer, name: String = "<memory>") throws -> WeightFormat {
    if bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B, (bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6) {
        return .pthZip
    }
    if bytes.count >= 2, bytes[0] == 0x80, bytes[1] >= 2, bytes[1] <= 5 { return .pthLegacy }
    if bytes.count >= 10 {
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        if n >= 2, n <= UInt64(bytes.count - 8), bytes[8] == UInt8(ascii: "{") { return .safetensors }
    }
    throw WeightsError.unknownFormat(path: name, firstBytes: describeBytes(bytes))
}

/// SHA-256 of a whole buffer, hex.
public func fileSHA256(_ bytes: UnsafeRawBufferPointer) -> String {
    var h = SHA256()
    h.update(buffer: bytes)
    return SHA256.hexString(h.finalize())
}

/// SHA-256 of a file, streamed in 4 MiB chunks.
public func fileSHA256(path: String) throws -> String {
    do { return try SHA256.hexOfFile(path: path) } catch {
        let exists = FileManager.default.fileExists(atPath: path)
        throw WeightsError.fileNotReadable(path: path, reason: error.reason == "cannot open it" ? (exists ? "permission denied" : "no such file") : error.reason)
    }
}
