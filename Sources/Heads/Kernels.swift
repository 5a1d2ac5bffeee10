#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Small float32 kernels over raw pointers for the per-step work of batch-4 SGD, where a BLAS call
// costs more than the arithmetic. The float32 dot product is NN's `dot` (16-lane SIMD
// reductions; the summation order is therefore not PyTorch's, differences ~1e-7 relative).

@inline(__always)
func dotDouble(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
    var acc0 = SIMD8<Double>(repeating: 0)
    var acc1 = SIMD8<Double>(repeating: 0)
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 16 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
            * rb.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: (i + 8) * 8, as: SIMD8<Double>.self)
            * rb.loadUnaligned(fromByteOffset: (i + 8) * 8, as: SIMD8<Double>.self)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += alpha * x
@inline(__always)
func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

@inline(__always)
func axpyDouble(_ alpha: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

/// In place: logits (one row of `c` values) -> softmax probabilities; returns the cross-entropy
/// -log p[label] computed stably as logsumexp - logit[label] (PyTorch's log_softmax formula),
/// and the first index of the maximal logit (argmax, as torch.max picks it).
@inline(__always)
func softmaxCrossEntropyRow(_ z: UnsafeMutablePointer<Float>, _ c: Int, label: Int) -> (loss: Float, argmax: Int) {
    var mx = z[0], am = 0
    for j in 1..<max(c, 1) where z[j] > mx { mx = z[j]; am = j }
    let shiftedLabel = label >= 0 ? z[label] - mx : 0
    var sum: Float = 0
    for j in 0..<c {
        let e = expf(z[j] - mx)
        z[j] = e
        sum += e
    }
    let logSum = logf(sum)
    let loss = logSum - shiftedLabel
    let inv = 1 / sum
    for j in 0..<c { z[j] *= inv }
    return (loss, am)
}
