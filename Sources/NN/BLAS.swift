#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif
import Parallelism

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
/// op(A) is m x k, op(B) is k x n, C is m x n; lda/ldb/ldc are row strides.
@inline(__always)
public func sgemm(
    transA: Bool = false, transB: Bool = false,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(CblasRowMajor,
                transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Sets the number of threads the BLAS library uses (OpenBLAS; a no-op with Accelerate).
public func setBLASThreads(_ n: Int) {
    #if !canImport(Accelerate)
    openblas_set_num_threads(Int32(n))
    #endif
}

/// The number of threads the BLAS library currently uses (1 with Accelerate, which manages its own).
public func blasThreads() -> Int {
    #if !canImport(Accelerate)
    return Int(openblas_get_num_threads())
    #else
    return 1
    #endif
}

// MARK: - Parallel GEMM

/// C = op(A) op(B) + beta * C (row-major) cut along the larger of m and n into blocks whose size
/// depends on the shape only (`blockLength`); the workers share the blocks, each running a
/// single-threaded sgemm per block. Bit-identical for any worker count.
public func parallelSgemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, workers: Int
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        return
    }
    if m < 2 * 16 && n < 2 * 64 {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    let box = UncheckedSendable((a, b, c))
    if n >= m {
        // column blocks, multiples of 16 floats, at least 64 wide
        let cb = blockLength(n, minimum: 64)
        parallelPieces((n + cb - 1) / cb, workers: max(1, workers)) { _, piece in
            let (a, b, c) = box.value
            let j0 = piece * cb, j1 = min(n, j0 + cb)
            let bj = transB ? b + j0 * ldb : b + j0
            sgemm(transA: transA, transB: transB, m: m, n: j1 - j0, k: k, a: a, lda: lda, b: bj, ldb: ldb,
                  beta: beta, c: c + j0, ldc: ldc)
        }
    } else {
        let rb = blockLength(m, multiple: 4, minimum: 16)
        parallelPieces((m + rb - 1) / rb, workers: max(1, workers)) { _, piece in
            let (a, b, c) = box.value
            let i0 = piece * rb, i1 = min(m, i0 + rb)
            let ai = transA ? a + i0 : a + i0 * lda
            sgemm(transA: transA, transB: transB, m: i1 - i0, n: n, k: k, a: ai, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c + i0 * ldc, ldc: ldc)
        }
    }
}

extension ThreadCount {
    /// Sets the worker count (a command's `--threads`), and BLAS's own thread count to match for the
    /// GEMMs it runs alone. Call before any parallel work: the worker pool keeps its first size and
    /// runs larger jobs on GCD instead.
    public static func set(_ n: Int) {
        setWorkers(n)
        setBLASThreads(n)
    }
}

/// Row-major double-precision GEMM: C = alpha * op(A) * op(B) + beta * C (see `sgemm`).
@inline(__always)
public func dgemm(
    transA: Bool = false, transB: Bool = false,
    m: Int, n: Int, k: Int,
    alpha: Double = 1,
    a: UnsafePointer<Double>, lda: Int,
    b: UnsafePointer<Double>, ldb: Int,
    beta: Double = 0,
    c: UnsafeMutablePointer<Double>, ldc: Int
) {
    cblas_dgemm(CblasRowMajor,
                transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
