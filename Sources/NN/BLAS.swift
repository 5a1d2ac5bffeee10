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

extension ThreadCount {
    /// Sets the worker count (a command's `--threads`), and BLAS's own thread count to match for the
    /// GEMMs it runs alone. Call before any parallel work: the worker pool keeps its first size and
    /// runs larger jobs on GCD instead.
    public static func set(_ n: Int) {
        setWorkers(n)
        setBLASThreads(n)
    }
}
