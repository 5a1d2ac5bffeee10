// IEEE 754 binary16 (half precision) <-> float32, by portable bit manipulation (round to nearest,
// ties to even), because Swift's Float16 is unavailable on macOS x86_64. The store's f16 vectors
// and the weight readers' float16 tensors both convert here; StoreTests check it against Float16
// bit for bit where Float16 exists, WeightsTests every half bit pattern round trip.

/// float32 → IEEE 754 binary16 bits, round to nearest even; overflow gives infinity, a NaN stays a
/// quiet NaN (the top bits of its payload kept).
@inlinable @inline(__always)
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
@inlinable @inline(__always)
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
