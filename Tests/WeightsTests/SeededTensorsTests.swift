import Testing
@testable import Weights

// Cross-implementation check of Sources/Weights/SeededTensors.swift against tools/seeded_weights.py:
// the numbers below were printed by the Python implementation (first three float32 bit patterns, and a
// checksum over the whole tensor: sum over i of (i + 1) * bits[i] mod 2^64, i from 0 in row-major order).

/// Sum of (i + 1) * bitPattern[i], wrapping.
func seededChecksum(_ v: [Float]) -> UInt64 {
    var s: UInt64 = 0
    for (i, x) in v.enumerated() { s &+= UInt64(i + 1) &* UInt64(x.bitPattern) }
    return s
}

private let pythonValues: [(name: String, shape: [Int], seed: UInt64, first: [UInt32], checksum: UInt64)] = [
    ("conv1.weight", [64, 3, 7, 7], 7, [0x3d9b6ed5, 0xbe092475, 0x3c2eedb7], 0x014b6b2168c70ec1),
    ("bn1.running_var", [64], 7, [0x3fb7e31a, 0x3faa0bd0, 0x3f682a0b], 0x000002028495b287),
    ("layer1.0.bn1.running_mean", [64], 7, [0x3dbaec27, 0x3dc25afa, 0x3da1f6b8], 0x0000047407599fd8),
    ("bn1.weight", [64], 7, [0x3fb3fca8, 0x3faf962c, 0x3f8a7d89], 0x000002038396dfc1),
    ("fc.bias", [10], 7, [0xbdabe287, 0xbd40c7a7, 0x3d8408f2], 0x00000020a1e94ffe),
    ("fc.weight", [10, 2048], 7, [0x3ca645fa, 0xbcb43eab, 0xbbbd0959], 0x0612bf9162075fd7),
    ("layer4.2.conv3.weight", [2048, 512, 1, 1], 12345678901234567890, [0x3b491c9a, 0x3cb5c526, 0xbd137351], 0x7c9179ae1969c19d),
    ("layer3.5.conv2.weight", [256, 256, 3, 3], 7, [0xbcd2a0b7, 0xbcceca64, 0x3c07d0b3], 0xa94978fa10787235),
    ("layer2.0.downsample.0.weight", [512, 256, 1, 1], 0, [0x3dc97f88, 0xbd82963f, 0x3ccb066f], 0xfa337625d9b86bed),
]

@Test func seededTensorsMatchPython() {
    for c in pythonValues {
        let v = seededTensorValues(name: c.name, shape: c.shape, seed: c.seed)
        #expect(v.count == c.shape.reduce(1, *), "\(c.name)")
        #expect(Array(v.prefix(3)).map(\.bitPattern) == c.first, "\(c.name) first values")
        #expect(seededChecksum(v) == c.checksum, "\(c.name) checksum")
    }
}

@Test func seededInputMatchesPython() {
    let x = seededInputValues(shape: [2, 3, 128, 128], seed: 7)
    #expect(Array(x.prefix(3)).map(\.bitPattern) == [0xbfb47db0, 0xbfa2e314, 0xbfc38bc2])
    #expect(seededChecksum(x) == 0x8f16c150f7397f8a)
    #expect(x.allSatisfy { $0 >= -2 && $0 < 2 })
}

@Test func seededStreamIsSplitMix64AndFNV1a() {
    // Vigna's splitmix64.c from state 0, and FNV-1a 64 of "" and "a".
    var s = seededStream(name: "", seed: 0xcbf2_9ce4_8422_2325)   // seed ^ fnv1a64("") = 0
    #expect([s.next(), s.next(), s.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    #expect(fnv1a64("") == 0xcbf2_9ce4_8422_2325)
    #expect(fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
}

@Test func seededStateDictKeepsOrderShapesAndCounters() throws {
    let entries: [(name: String, shape: [Int])] = [
        ("conv1.weight", [64, 3, 7, 7]), ("bn1.weight", [64]), ("bn1.bias", [64]), ("bn1.running_mean", [64]),
        ("bn1.running_var", [64]), ("bn1.num_batches_tracked", []), ("fc.weight", [10, 2048]), ("fc.bias", [10]),
    ]
    let sd = seededStateDict(entries: entries, seed: 7)
    #expect(sd.names == entries.map(\.name))
    let counter = try #require(sd["bn1.num_batches_tracked"])
    #expect(counter.dtype == .int64 && counter.shape == [] && counter.int64Values == [0] && counter.values == [0])
    let conv = try #require(sd["conv1.weight"])
    #expect(conv.dtype == .float32 && conv.shape == [64, 3, 7, 7])
    #expect(seededChecksum(conv.values) == 0x014b6b2168c70ec1)
    #expect(try sd.tensor("fc.weight").shape == [10, 2048])
    // Ranges of the rules.
    let bound = Float((3.0 / 147.0).squareRoot())
    #expect(conv.values.allSatisfy { abs($0) <= bound })
    #expect(sd["bn1.running_var"]!.values.allSatisfy { $0 >= 0.5 && $0 <= 1.5 })
    #expect(sd["bn1.bias"]!.values.allSatisfy { abs($0) <= 0.1 })
}
