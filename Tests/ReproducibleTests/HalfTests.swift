import Testing
import Reproducible

@Test func halfConversionIsExactAndRoundsLikeFloat16() {
    // Half → float → half is the identity for every non-NaN half.
    for bits in 0...0xFFFF {
        let h = UInt16(bits)
        let f = float(fromHalfBits: h)
        if f.isNaN { #expect(halfBits(from: f) & 0x7C00 == 0x7C00 && halfBits(from: f) & 0x3FF != 0); continue }
        #expect(halfBits(from: f) == h)
        #if !(os(macOS) && arch(x86_64))
        #expect(f == Float(Float16(bitPattern: h)))
        #endif
    }
    #if !(os(macOS) && arch(x86_64))
    // Float → half rounds exactly like Float16 (round to nearest even), including halfway cases.
    var rng = SplitMix64(seed: 11)
    for i in 0..<200_000 {
        var f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
        if i % 3 == 0 { f = Float(bitPattern: (f.bitPattern & 0xFFFF_E000) | 0x1000) }  // exact ties
        if f.isNaN { continue }
        #expect(halfBits(from: f) == Float16(f).bitPattern, "\(f)")
    }
    #endif
    #expect(halfBits(from: 65504) == 0x7BFF)
    #expect(halfBits(from: 65520) == 0x7C00)  // rounds to infinity
    #expect(halfBits(from: 5.9604645e-8) == 0x0001)  // smallest subnormal
    #expect(halfBits(from: 2.9802322e-8) == 0x0000)  // exactly half of it: ties to even
    #expect(float(fromHalfBits: 0x3C00) == 1 && float(fromHalfBits: 0xC000) == -2 && float(fromHalfBits: 0x0001) == Float(5.9604645e-8))
}
