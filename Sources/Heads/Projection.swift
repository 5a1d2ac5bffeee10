// Principal component analysis of a feature matrix, for 2-D maps of the embeddings (reports).
//
// Block power (subspace) iteration in float64 on the centred matrix X, without forming the d x d
// covariance: V <- orthonormalise(X^T (X V)), from a fixed start, until the subspace stops moving.
// Each iteration costs 4 n d multiply-adds per component, so 100,000 x 512 features take a
// second or two; the answer does not depend on the thread count (one thread, fixed order).

/// The leading principal directions of a feature matrix and the rows projected on them.
public struct PrincipalComponents: Sendable, Equatable {
    /// Component-major: `components * dimension` unit vectors (sign fixed: largest |entry| positive).
    public var directions: [Double]
    /// Variance of the data along each direction (eigenvalues of the covariance, n - 1 normalised).
    public var variances: [Double]
    /// Total variance (trace of the covariance), for the explained fraction.
    public var totalVariance: Double
    /// Row-major `rows * components` coordinates of the centred rows.
    public var projections: [Double]
    public var components: Int
    /// Iterations run.
    public var iterations: Int

    /// Fraction of the total variance that component `k` explains.
    public func explained(_ k: Int) -> Double { totalVariance > 0 ? variances[k] / totalVariance : 0 }
}

/// The first `components` principal components of `rows` x `dimension` row-major `values`.
public func principalComponents(_ values: [Float], rows n: Int, dimension d: Int, components k: Int = 2,
                                maxIterations: Int = 500, tolerance: Double = 1e-10) throws(HeadsError) -> PrincipalComponents {
    guard n >= 2 else { throw .empty("a 2-D map (it needs at least 2 rows, got \(n))") }
    guard d >= 1, values.count == n * d else { throw .shapeMismatch("\(values.count) values for \(n) x \(d)") }
    guard k >= 1, k <= d else { throw .invalidOption("components must be in 1...\(d), got \(k)") }
    // Centred copy in float64.
    var mean = [Double](repeating: 0, count: d)
    for i in 0..<n { for j in 0..<d { mean[j] += Double(values[i * d + j]) } }
    for j in 0..<d { mean[j] /= Double(n) }
    var x = [Double](repeating: 0, count: n * d)
    var total = 0.0
    for i in 0..<n {
        for j in 0..<d {
            let v = Double(values[i * d + j]) - mean[j]
            guard v.isFinite else { throw .nonFinite(row: i, column: j) }
            x[i * d + j] = v
            total += v * v
        }
    }
    total /= Double(n - 1)
    // Start: a fixed, deterministic, non-degenerate basis.
    var v = [Double](repeating: 0, count: k * d)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for i in 0..<(k * d) {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        v[i] = Double(Int64(bitPattern: state >> 11)) / Double(1 << 52) - 0.5
    }
    orthonormalise(&v, k, d)
    var xv = [Double](repeating: 0, count: n * k)
    var iterations = 0
    var lambdas = [Double](repeating: 0, count: k)
    while iterations < maxIterations {
        iterations += 1
        multiply(x, n, d, v, k, into: &xv)                      // X V: n x k
        var w = [Double](repeating: 0, count: k * d)           // X^T (X V): k x d
        w.withUnsafeMutableBufferPointer { wb in
            x.withUnsafeBufferPointer { xb in
                for i in 0..<n {
                    for c in 0..<k {
                        axpyDouble(xv[i * k + c], xb.baseAddress! + i * d, wb.baseAddress! + c * d, d)
                    }
                }
            }
        }
        for c in 0..<k {
            var s = 0.0
            for j in 0..<d { s += w[c * d + j] * v[c * d + j] }
            lambdas[c] = s / Double(n - 1)
        }
        orthonormalise(&w, k, d)
        // Convergence: every new direction within the span of the old ones (|<w_c, v_c>| near 1).
        var change = 0.0
        for c in 0..<k {
            var s = 0.0
            for j in 0..<d { s += w[c * d + j] * v[c * d + j] }
            change = max(change, 1 - abs(s))
        }
        v = w
        if change < tolerance { break }
    }
    for c in 0..<k {   // a deterministic sign: the entry of largest magnitude is positive
        var best = 0
        for j in 1..<d where abs(v[c * d + j]) > abs(v[c * d + best]) { best = j }
        if v[c * d + best] < 0 { for j in 0..<d { v[c * d + j] = -v[c * d + j] } }
    }
    multiply(x, n, d, v, k, into: &xv)
    for c in 0..<k {   // the variance along each final direction
        var s = 0.0
        for i in 0..<n { s += xv[i * k + c] * xv[i * k + c] }
        lambdas[c] = s / Double(n - 1)
    }
    return PrincipalComponents(directions: v, variances: lambdas, totalVariance: total, projections: xv,
                               components: k, iterations: iterations)
}

/// out (n x k) = x (n x d) * v^T (v: k x d).
private func multiply(_ x: [Double], _ n: Int, _ d: Int, _ v: [Double], _ k: Int, into out: inout [Double]) {
    x.withUnsafeBufferPointer { xb in
        v.withUnsafeBufferPointer { vb in
            for i in 0..<n {
                for c in 0..<k { out[i * k + c] = dotDouble(xb.baseAddress! + i * d, vb.baseAddress! + c * d, d) }
            }
        }
    }
}

/// Modified Gram-Schmidt on the k rows (length d) of `v`.
private func orthonormalise(_ v: inout [Double], _ k: Int, _ d: Int) {
    for c in 0..<k {
        for p in 0..<c {
            var s = 0.0
            for j in 0..<d { s += v[c * d + j] * v[p * d + j] }
            for j in 0..<d { v[c * d + j] -= s * v[p * d + j] }
        }
        var norm = 0.0
        for j in 0..<d { norm += v[c * d + j] * v[c * d + j] }
        norm = norm.squareRoot()
        if norm > 0 { for j in 0..<d { v[c * d + j] /= norm } }
    }
}
