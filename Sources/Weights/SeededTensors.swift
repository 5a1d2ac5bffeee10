// Deterministic seeded tensors, bit for bit the same as tools/seeded_weights.py, so that parity tests of
// whole networks need no weight files: both sides build the same weights from a seed, and the PyTorch
// side (tools/seeded_parity.py) writes only its small outputs as fixtures.
//
// The specification (tools/seeded_weights.py states the same; change both or neither):
//
//   Stream. SplitMix64 (Steele, Lea & Flood 2014), all arithmetic mod 2^64:
//       state += 0x9E3779B97F4A7C15; z = state
//       z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//       z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//       return z ^ (z >> 31)
//   One stream per tensor: initial state = seed XOR fnv1a64(UTF-8 bytes of the tensor's name)
//   (FNV-1a 64: h = 0xcbf29ce484222325; per byte h ^= b; h *= 0x100000001b3 mod 2^64).
//   u = Float(next() >> 40) / 2^24: uniform in [0, 1) with 24 bits, exact in float32. The tensor's
//   elements take successive u in row-major order.
//
//   Values, by name and shape (float32 arithmetic throughout, one rounding per operation):
//       name ends with ".num_batches_tracked"   int64 scalar 0 (shape [], as torchvision's; no u drawn)
//       name ends with ".running_var"           0.5 + u
//       name ends with ".running_mean"          (u - 0.5) * Float(0.2)
//       1-D, name ends with ".weight"           0.5 + u                  (BatchNorm gamma)
//       1-D, name ends with ".bias"             (u - 0.5) * Float(0.2)   (BatchNorm beta, linear bias)
//       2-D ".weight" [O, I] (linear)           (2u - 1) * Float(1 / sqrt(I))
//       >= 3-D ".weight" [O, I, kh, kw] (conv)  (2u - 1) * Float(sqrt(3 / fan_in)), fan_in = I * kh * kw
//       anything else                           2u - 1
//   The scales are computed in Double (correctly rounded division and sqrt) and rounded to Float once;
//   2u - 1 and u - 0.5 are exact in float32. The parity input is 4u - 2 of the stream "input"
//   (`seededInputValues`).
//
//   Scale. A conv weight uniform in +-sqrt(3 / fan_in) has variance 1 / fan_in: a convolution keeps the
//   second moment of its input. With seed 7 on the parity input, the pooled features' root mean square is
//   5.1 (ResNet-50) and 17 (ResNet-34) in eval mode, 1.1 in train mode (batch statistics): residual
//   branches add their variance to the identity path, so it grows additively, neither exploding nor
//   vanishing (`python3 tools/seeded_weights.py --check`).

import Reproducible

/// FNV-1a 64 of the UTF-8 bytes of `name`.
func fnv1a64(_ name: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in name.utf8 {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01b3
    }
    return h
}

/// The stream of one seeded tensor (SplitMix64 from `seed ^ fnv1a64(name)`; u in [0, 1) is
/// `nextFloat`, the top 24 bits over 2^24, exact).
func seededStream(name: String, seed: UInt64) -> SplitMix64 { SplitMix64(seed: seed ^ fnv1a64(name)) }

/// `count` successive u in [0, 1) of the stream of `name`.
public func seededUniforms(name: String, count: Int, seed: UInt64) -> [Float] {
    var s = seededStream(name: name, seed: seed)
    return (0..<count).map { _ in s.nextFloat() }
}

/// The parity input: 4u - 2 of the stream `name` (default "input"), row-major, `shape` e.g. [2, 3, 128, 128].
public func seededInputValues(shape: [Int], seed: UInt64, name: String = "input") -> [Float] {
    seededUniforms(name: name, count: shape.reduce(1, *), seed: seed).map { 4 * $0 - 2 }
}

/// Whether `name` is a BatchNorm batch counter (an int64 scalar 0 in a seeded state_dict).
func isBatchCounter(_ name: String) -> Bool { name.hasSuffix(".num_batches_tracked") }

/// The values of the seeded tensor `name` of `shape`, row-major (see the specification above);
/// `[0]` for a `.num_batches_tracked` counter.
public func seededTensorValues(name: String, shape: [Int], seed: UInt64) -> [Float] {
    if isBatchCounter(name) { return [0] }
    let count = shape.reduce(1, *)
    var s = seededStream(name: name, seed: seed)
    let transform: (Float) -> Float
    if name.hasSuffix(".running_var") || (shape.count == 1 && name.hasSuffix(".weight")) {
        transform = { 0.5 + $0 }
    } else if name.hasSuffix(".running_mean") || (shape.count == 1 && name.hasSuffix(".bias")) {
        let c: Float = 0.2
        transform = { ($0 - 0.5) * c }
    } else if shape.count == 2 && name.hasSuffix(".weight") {
        let scale = Float(1.0 / Double(shape[1]).squareRoot())
        transform = { (2 * $0 - 1) * scale }
    } else if shape.count >= 3 && name.hasSuffix(".weight") {
        let fanIn = shape.dropFirst().reduce(1, *)
        let scale = Float((3.0 / Double(fanIn)).squareRoot())
        transform = { (2 * $0 - 1) * scale }
    } else {
        transform = { 2 * $0 - 1 }
    }
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { p in
        for i in 0..<count { p[i] = transform(s.nextFloat()) }
    }
    return out
}

/// A state_dict of seeded tensors with these names and shapes, in this order (PyTorch zip format tag,
/// no file: `sha256` is "seeded-<seed>"). `.num_batches_tracked` entries are int64 scalars 0 (shape []),
/// like torchvision's; the others float32.
public func seededStateDict(entries: [(name: String, shape: [Int])], seed: UInt64) -> StateDict {
    let tensors = entries.map { e -> WeightTensor in
        if isBatchCounter(e.name) {
            return WeightTensor(name: e.name, dtype: .int64, shape: [], values: [0], int64Values: [0])
        }
        return WeightTensor(name: e.name, dtype: .float32, shape: e.shape,
                            values: seededTensorValues(name: e.name, shape: e.shape, seed: seed))
    }
    return StateDict(format: .pthZip, tensors: tensors, sha256: "seeded-\(seed)")
}
