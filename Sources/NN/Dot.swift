/// The float32 dot product of n values, for the per-row work of heads (batch-4 SGD, where a BLAS
/// call costs more than the arithmetic) and of nearest-neighbour scoring. Reductions use 16
/// independent lanes (two SIMD16 accumulators over 32 values, then one over 16, then a scalar
/// tail) so the compiler can vectorise them (multiply then add: `addingProduct` becomes a libm
/// fmaf call per lane on baseline x86-64, 30x slower); the summation order is therefore not
/// PyTorch's (differences ~1e-7 relative), and it depends on n only.
@inlinable @inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD16<Float>(repeating: 0)
    var acc1 = SIMD16<Float>(repeating: 0)
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 32 <= n {
        let x0 = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        let y0 = rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        let x1 = ra.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
        let y1 = rb.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
        acc0 += x0 * y0
        acc1 += x1 * y1
        i += 32
    }
    while i + 16 <= n {
        let x0 = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        let y0 = rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        acc0 += x0 * y0
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}
