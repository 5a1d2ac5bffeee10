import NN
import OutputFiles

/// Writes a state_dict in torch's zip format, loadable by `torch.load(path)` (weights_only=True):
/// pickle protocol 2 of an OrderedDict of `_rebuild_tensor_v2` tensors over FloatStorage / LongStorage,
/// entries `archive/data.pkl`, `archive/data/<i>`, `archive/version`, `archive/byteorder`, 64-byte aligned.
public func writeTorchZip(_ tensors: [(name: String, tensor: Tensor)],
                          int64s: [(name: String, value: [Int64], shape: [Int])] = [],
                          to path: String, protecting: [String] = []) throws {
    var all = tensors.map { WeightTensor(name: $0.name, dtype: .float32, shape: $0.tensor.shape, values: $0.tensor.data) }
    for i in int64s {
        all.append(WeightTensor(name: i.name, dtype: .int64, shape: i.shape, values: i.value.map { Float($0) }, int64Values: i.value))
    }
    try writeTorchZip(all, to: path, protecting: protecting)
}

/// Writes weight tensors in torch's zip format, in the given order: int64 tensors (with `int64Values`)
/// as LongStorage, everything else as float32 FloatStorage. Written through `writeFileAtomically`
/// (see NN/OutputFile.swift): never over a non-regular file or one of `protecting`; "-" is standard output.
public func writeTorchZip(_ tensors: [WeightTensor], to path: String, archiveName: String = "archive",
                          protecting: [String] = []) throws {
    var seen = Set<String>()
    for t in tensors {
        guard seen.insert(t.name).inserted else { throw WeightsError.writeFailed(path: path, reason: "duplicate tensor name \(t.name)") }
        guard Materializer.elementCount(t.shape) == t.values.count else {
            throw WeightsError.writeFailed(path: path, reason: "tensor \(t.name) has shape \(t.shape) but \(t.values.count) values")
        }
        if let ints = t.int64Values, ints.count != t.values.count {
            throw WeightsError.writeFailed(path: path, reason: "tensor \(t.name) has \(ints.count) int64 values for shape \(t.shape)")
        }
    }
    var p = PickleWriter()
    p.proto(2)
    p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
    p.mark()
    for (i, t) in tensors.enumerated() {
        let isInt = t.dtype == .int64 && t.int64Values != nil
        p.unicode(t.name)
        p.global("torch._utils", "_rebuild_tensor_v2")
        p.mark()                                 // args
        p.mark()                                 // persistent id
        p.unicode("storage")
        p.global("torch", isInt ? "LongStorage" : "FloatStorage")
        p.unicode(String(i))
        p.unicode("cpu")
        p.int(t.values.count)
        p.tuple()
        p.binpersid()
        p.int(0)                                 // storage offset
        p.intTuple(t.shape)
        var stride = [Int](repeating: 1, count: t.shape.count)
        var acc = 1
        for d in t.shape.indices.reversed() { stride[d] = acc; acc *= max(t.shape[d], 1) }
        p.intTuple(stride)
        p.bool(false)                            // requires_grad
        p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()   // backward_hooks
        p.tuple()
        p.reduce()
    }
    p.setItems()
    p.stop()

    var zip = ZipWriter(alignment: 64)
    let a = archiveName + "/"
    zip.add(name: a + "data.pkl", bytes: p.bytes)
    zip.add(name: a + "byteorder", bytes: Array("little".utf8))
    for (i, t) in tensors.enumerated() {
        if t.dtype == .int64, let ints = t.int64Values {
            let le = ints.map { $0.littleEndian }
            le.withUnsafeBytes { zip.add(name: a + "data/\(i)", data: $0) }
        } else {
            t.values.withUnsafeBytes { zip.add(name: a + "data/\(i)", data: $0) }
        }
    }
    zip.add(name: a + "version", bytes: Array("3\n".utf8))
    try writeFileAtomically(zip.finish(), to: path, protecting: protecting)
}

/// Emits pickle protocol 2 opcodes.
struct PickleWriter {
    private(set) var bytes: [UInt8] = []

    mutating func proto(_ v: UInt8) { bytes += [0x80, v] }
    mutating func stop() { bytes.append(0x2E) }
    mutating func mark() { bytes.append(0x28) }
    mutating func tuple() { bytes.append(0x74) }
    mutating func emptyTuple() { bytes.append(0x29) }
    mutating func reduce() { bytes.append(0x52) }
    mutating func setItems() { bytes.append(0x75) }
    mutating func binpersid() { bytes.append(0x51) }
    mutating func bool(_ b: Bool) { bytes.append(b ? 0x88 : 0x89) }
    mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63); bytes += Array(module.utf8); bytes.append(0x0A); bytes += Array(name.utf8); bytes.append(0x0A)
    }
    mutating func unicode(_ s: String) {
        let u = Array(s.utf8)
        bytes.append(0x58)
        let n = UInt32(u.count)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: n >> (8 * UInt32(i)))) }
        bytes += u
    }
    mutating func int(_ v: Int) {
        if v >= 0 && v < 256 { bytes += [0x4B, UInt8(v)]; return }
        if v >= 0 && v < 65536 { bytes += [0x4D, UInt8(v & 0xFF), UInt8(v >> 8)]; return }
        if v >= Int(Int32.min) && v <= Int(Int32.max) {
            bytes.append(0x4A)
            let u = UInt32(bitPattern: Int32(v))
            for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: u >> (8 * UInt32(i)))) }
            return
        }
        // LONG1 with 8 little-endian two's-complement bytes
        bytes += [0x8A, 8]
        let u = UInt64(bitPattern: Int64(v))
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: u >> (8 * UInt64(i)))) }
    }
    mutating func intTuple(_ v: [Int]) {
        if v.isEmpty { emptyTuple(); return }
        mark(); for x in v { int(x) }; tuple()
    }
}
