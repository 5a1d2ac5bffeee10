/// The package's documented pseudo-random generator: SplitMix64 (Steele, Lea & Flood, 2014).
///
/// state += 0x9E3779B97F4A7C15; z = state;
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)
///
/// Floats in [0, 1) take the top 24 bits (`Float(x >> 40) * 2^-24`); bounded integers use
/// Lemire's multiply-and-reject method (unbiased). Every random choice the trainers make comes
/// from one of these, seeded from the user's seed, so runs are reproducible on every platform.
/// Vision's `AugmentRNG` keys its streams with `mix64`, Weights' seeded tensors draw `nextFloat`.
/// It is not PyTorch's generator: runs are reproducible, not bit-equal to torch's.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The state (read-only outside; stored under another name so the steps can be inlined into callers).
    public var state: UInt64 { _state }
    @usableFromInline var _state: UInt64

    public init(seed: UInt64) { _state = seed }

    /// A generator for one purpose of a seeded run (initialisation, shuffling, view choice, folds),
    /// independent of the others: seeded with `seed ^ stream * 0xD1B54A32D192ED03` and warmed up once.
    public init(seed: UInt64, stream: UInt64) {
        _state = seed ^ (stream &* 0xD1B54A32D192ED03)
        _ = next()
    }

    /// The increment of the state (the golden ratio in 64 bits).
    public static var golden: UInt64 { 0x9E37_79B9_7F4A_7C15 }

    /// SplitMix64's output function: z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
    /// z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^ (z >> 31).
    @inlinable @inline(__always)
    public static func mix64(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        _state &+= Self.golden
        return Self.mix64(_state)
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inlinable @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform integer in `0..<bound` (bound > 0), Lemire's unbiased method.
    @inlinable @inline(__always)
    public mutating func next(below bound: Int) -> Int {
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let t = (0 &- b) % b
            while m.low < t { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// Fills `perm` with a uniformly random permutation of 0..<perm.count (Fisher-Yates from the
    /// identity, i from n-1 down to 1 swapping with j in 0...i), like a fresh `torch.randperm`.
    public mutating func permutation(into perm: UnsafeMutableBufferPointer<Int>) {
        for i in 0..<perm.count { perm[i] = i }
        var i = perm.count - 1
        while i > 0 {
            let j = next(below: i + 1)
            perm.swapAt(i, j)
            i -= 1
        }
    }
}
