// Vector encoding: float32 or IEEE half precision, little-endian, in BLOBs.
//
// Half precision is converted with portable bit manipulation (round to nearest, ties to even),
// because Swift's Float16 is unavailable on macOS x86_64. Tests check it against Float16
// bit for bit where Float16 exists.

/// How vectors are stored.
public enum VectorDType: String, Sendable, Codable, CaseIterable {
    case f32
    case f16

    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

/// float32 → IEEE 754 binary16 bits, round to nearest even; overflow gives infinity.
@inline(__always)
public func halfBits(from f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
    let exp = Int((x >> 23) & 0xFF)
    var mant = x & 0x7F_FFFF
    if exp == 0xFF {  // infinity or NaN (kept quiet)
        return sign | 0x7C00 | (mant != 0 ? UInt16(truncatingIfNeeded: 0x200 | (mant >> 13)) : 0)
    }
    let e = exp - 127 + 15
    if e >= 0x1F { return sign | 0x7C00 }
    if e <= 0 {  // half subnormal or zero
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        var h = mant >> shift
        let rem = mant & ((UInt32(1) << shift) &- 1)
        let halfway = UInt32(1) << (shift - 1)
        if rem > halfway || (rem == halfway && (h & 1) != 0) { h += 1 }
        return sign | UInt16(truncatingIfNeeded: h)
    }
    var h = (UInt32(e) << 10) | (mant >> 13)
    let rem = mant & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0) { h += 1 }  // a carry rolls into the exponent
    return sign | UInt16(truncatingIfNeeded: h)
}

/// IEEE 754 binary16 bits → float32 (exact).
@inline(__always)
public func float(fromHalfBits h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = UInt32(h >> 10) & 0x1F
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        let v = Float(mant) * (1.0 / 16_777_216.0)  // mant * 2^-24
        return sign != 0 ? -v : v
    }
    if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
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
