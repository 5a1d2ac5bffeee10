// Vector encoding: float32 or IEEE half precision, little-endian, in BLOBs. Half precision is
// converted by Reproducible's `halfBits(from:)` and `float(fromHalfBits:)` (round to nearest, ties to even).

import Reproducible

/// How vectors are stored.
public enum VectorDType: String, Sendable, Codable, CaseIterable {
    case f32
    case f16

    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

enum VectorCodec {
    /// Checks a vector and encodes it as little-endian bytes of `dtype`.
    static func encode(_ v: UnsafeBufferPointer<Float>, dtype: VectorDType, into out: inout [UInt8], context: @autoclosure () -> String) throws {
        let n = v.count
        out.removeAll(keepingCapacity: true)
        guard n > 0 else { return }
        switch dtype {
        case .f32:
            for i in 0..<n where !v[i].isFinite {
                throw StoreError.invalidVector(context: context(), reason: "value \(i) is \(v[i]) (NaN and infinity are refused)")
            }
            out = [UInt8](unsafeUninitializedCapacity: n * 4) { buf, count in
                let dst = UnsafeMutableRawPointer(buf.baseAddress!)
                for i in 0..<n {
                    dst.storeBytes(of: v[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                }
                count = n * 4
            }
        case .f16:
            for i in 0..<n where !v[i].isFinite {
                throw StoreError.invalidVector(context: context(), reason: "value \(i) is \(v[i]) (NaN and infinity are refused)")
            }
            var overflow = -1
            out = [UInt8](unsafeUninitializedCapacity: n * 2) { buf, count in
                let dst = UnsafeMutableRawPointer(buf.baseAddress!)
                for i in 0..<n {
                    let h = halfBits(from: v[i])
                    if h & 0x7C00 == 0x7C00 && overflow < 0 { overflow = i }
                    dst.storeBytes(of: h.littleEndian, toByteOffset: i * 2, as: UInt16.self)
                }
                count = n * 2
            }
            if overflow >= 0 {
                throw StoreError.invalidVector(context: context(),
                    reason: "value \(overflow) (\(v[overflow])) exceeds half precision's range (±65504); store with dtype f32")
            }
        }
    }

    /// Decodes `count` values of `dtype` from `bytes` into `dst`; returns false when the byte
    /// count does not match.
    @inline(__always)
    static func decode(_ bytes: UnsafeRawBufferPointer, dtype: VectorDType, count: Int, into dst: UnsafeMutablePointer<Float>) -> Bool {
        guard bytes.count == count * dtype.bytesPerValue, let src = bytes.baseAddress else { return count == 0 }
        switch dtype {
        case .f32:
            #if _endian(little)
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)  // any alignment
            #else
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
            #endif
        case .f16:
            for i in 0..<count {
                dst[i] = float(fromHalfBits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            }
        }
        return true
    }
}
