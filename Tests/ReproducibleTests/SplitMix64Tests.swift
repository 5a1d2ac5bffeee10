import Testing
import Reproducible

@Test func splitMix64MatchesVignasReference() {
    // Vigna's splitmix64.c from state 0: the first outputs.
    var g = SplitMix64(seed: 0)
    #expect([g.next(), g.next(), g.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    #expect(g.state == 3 &* SplitMix64.golden)
    #expect(SplitMix64.mix64(SplitMix64.golden) == 0xE220_A839_7B1D_CDAF)
    var u = SplitMix64(seed: 0)
    #expect(u.nextFloat() == Float(UInt64(0xE220_A839_7B1D_CDAF) >> 40) / 16_777_216)
}

@Test func decimalFormattingRoundsLikePrintf() {
    #expect(cFormat(0.125, 2) == "0.12")  // exact tie: to even
    #expect(cFormat(0.375, 2) == "0.38")
    #expect(cFormat(59.7, 0) == "60")
    #expect(fixed(0.96732, 4) == "0.9673")
    #expect(fixed(.nan, 4) == "nan" && fixed(-.infinity, 4) == "-inf")
}
