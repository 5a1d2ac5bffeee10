/// Turning (storage bytes, dtype, offset, shape, stride) into contiguous float32 (and int64) arrays.

import Reproducible

protocol ElementDecoder { static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float }
enum F32Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(bitPattern: p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian) } }
enum F16Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { float(fromHalfBits: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian) } }
enum BF16Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian) << 16) } }
enum F64Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(Double(bitPattern: p.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian)) } }
enum I64Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(Int64(littleEndian: p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) } }
enum I32Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(Int32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) } }
enum I16Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(Int16(littleEndian: p.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) } }
enum I8Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(p.load(fromByteOffset: i, as: Int8.self)) } }
enum U8Dec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { Float(p.load(fromByteOffset: i, as: UInt8.self)) } }
enum BoolDec: ElementDecoder { @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int) -> Float { p.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 } }

enum Materializer {
    /// Number of elements of `shape`, or nil on overflow.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (m, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = m
        }
        return n
    }

    /// Builds a WeightTensor from a view into `storage` (the storage's bytes, elements of `dtype`).
    static func tensor(name: String, dtype: DType, storage: UnsafeRawBufferPointer, offset: Int,
                       shape: [Int], stride: [Int]) throws -> WeightTensor {
        guard shape.count == stride.count else { throw WeightsError.badTensor(name: name, reason: "size and stride differ in rank") }
        guard let n = elementCount(shape), n <= Int(Int32.max) * 4 else {
            throw WeightsError.badTensor(name: name, reason: "shape \(shape) is too large")
        }
        let storageCount = storage.count / dtype.byteSize
        // Stride-0 (expanded) views may repeat elements, but not without bound: refuse views that would
        // allocate far more than the file holds.
        guard n <= max(storageCount, 1) * 256 else {
            throw WeightsError.badTensor(name: name, reason: "view of \(n) elements over a storage of \(storageCount)")
        }
        if n > 0 {
            // Highest element touched must lie inside the storage.
            var last = offset
            for (d, s) in zip(shape, stride) {
                guard s >= 0 else { throw WeightsError.badTensor(name: name, reason: "negative stride") }
                let (m, o1) = (d - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(m)
                if o1 || o2 { throw WeightsError.badTensor(name: name, reason: "stride overflow") }
                last = sum
            }
            guard offset >= 0, last < storageCount else {
                throw WeightsError.badTensor(name: name, reason: "view (offset \(offset), shape \(shape), stride \(stride)) reaches element \(last) of a storage holding \(storageCount)")
            }
        }
        guard let base = storage.baseAddress ?? (n == 0 ? UnsafeRawPointer(bitPattern: 1) : nil) else {
            throw WeightsError.badTensor(name: name, reason: "empty storage")
        }
        let values: [Float]
        switch dtype {
        case .float32:
            if n > 0, isContiguous(shape, stride) {
                values = [Float](unsafeUninitializedCapacity: n) { buf, count in
                    UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: base + offset * 4, byteCount: n * 4)
                    count = n
                }
            } else {
                values = gather(F32Dec.self, base, offset, shape, stride, n)
            }
        case .float16: values = gather(F16Dec.self, base, offset, shape, stride, n)
        case .bfloat16: values = gather(BF16Dec.self, base, offset, shape, stride, n)
        case .float64: values = gather(F64Dec.self, base, offset, shape, stride, n)
        case .int64: values = gather(I64Dec.self, base, offset, shape, stride, n)
        case .int32: values = gather(I32Dec.self, base, offset, shape, stride, n)
        case .int16: values = gather(I16Dec.self, base, offset, shape, stride, n)
        case .int8: values = gather(I8Dec.self, base, offset, shape, stride, n)
        case .uint8: values = gather(U8Dec.self, base, offset, shape, stride, n)
        case .bool: values = gather(BoolDec.self, base, offset, shape, stride, n)
        }
        var ints: [Int64]?
        if dtype == .int64 {
            var out = [Int64](repeating: 0, count: n)
            var k = 0
            forEachIndex(offset, shape, stride) { idx in
                out[k] = Int64(littleEndian: base.loadUnaligned(fromByteOffset: idx * 8, as: Int64.self)); k += 1
            }
            ints = out
        }
        return WeightTensor(name: name, dtype: dtype, shape: shape, values: values, int64Values: ints)
    }

    static func isContiguous(_ shape: [Int], _ stride: [Int]) -> Bool {
        var expected = 1
        for i in stride.indices.reversed() {
            if shape[i] != 1 && stride[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    /// Calls `body` with each element's storage index in row-major order of the view.
    static func forEachIndex(_ offset: Int, _ shape: [Int], _ stride: [Int], _ body: (Int) -> Void) {
        guard let n = elementCount(shape), n > 0 else { return }
        let rank = shape.count
        if rank == 0 { body(offset); return }
        var counter = [Int](repeating: 0, count: rank)
        var base = offset
        let inner = shape[rank - 1], innerStride = stride[rank - 1]
        var done = 0
        while done < n {
            var p = base
            for _ in 0..<inner { body(p); p += innerStride }
            done += inner
            // advance the outer counters
            var d = rank - 2
            while d >= 0 {
                counter[d] += 1
                base += stride[d]
                if counter[d] < shape[d] { break }
                base -= stride[d] * shape[d]
                counter[d] = 0
                d -= 1
            }
        }
    }

    static func gather<D: ElementDecoder>(_: D.Type, _ base: UnsafeRawPointer, _ offset: Int,
                                          _ shape: [Int], _ stride: [Int], _ n: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: n) { buf, count in
            guard let out = buf.baseAddress else { count = 0; return }
            if isContiguous(shape, stride) {
                for i in 0..<n { out[i] = D.load(base, offset + i) }
            } else {
                var k = 0
                forEachIndex(offset, shape, stride) { idx in out[k] = D.load(base, idx); k += 1 }
            }
            count = n
        }
    }
}
