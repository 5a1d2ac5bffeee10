// Linear (fully connected) layer, forward and backward.

/// Linear layer: out[N x O] = x[N x I] * weight[O x I]^T + bias[O].
public func linearForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    batch n: Int, inFeatures i: Int, outFeatures o: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?
) {
    sgemm(transB: true, m: n, n: o, k: i, a: input, lda: i, b: weight, ldb: i, c: output, ldc: o)
    if let bias {
        for r in 0..<n { for j in 0..<o { output[r * o + j] += bias[j] } }
    }
}

/// Backward of `linearForward` (out = x W^T + b):
///   gradWeight[O x I] += dY^T X, gradBias += column sums of dY, gradInput[N x I] += dY W.
public func linearBackward(
    gradOutput dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    batch n: Int, inFeatures i: Int, outFeatures o: Int,
    gradWeight: UnsafeMutablePointer<Float>, gradBias: UnsafeMutablePointer<Float>?,
    gradInput: UnsafeMutablePointer<Float>?
) {
    sgemm(transA: true, m: o, n: i, k: n, a: dy, lda: o, b: x, ldb: i, beta: 1, c: gradWeight, ldc: i)
    if let gradBias { for r in 0..<n { for j in 0..<o { gradBias[j] += dy[r * o + j] } } }
    if let gradInput {
        sgemm(m: n, n: i, k: o, a: dy, lda: o, b: weight, ldb: i, beta: 1, c: gradInput, ldc: i)
    }
}
