import Foundation

// The loss: mean softmax cross-entropy of logits against labels, with its gradient.

/// Mean softmax cross-entropy of (N x K) logits against labels; writes d(loss)/d(logits) =
/// (softmax - onehot) / N into `gradLogits` (overwrites) and returns the loss. Computed in float64.
/// Also returns each row's predicted class (first maximum, like torch.max).
@discardableResult
public func softmaxCrossEntropy(
    logits: UnsafePointer<Float>, labels: UnsafePointer<Int>, batch n: Int, classes k: Int,
    gradLogits: UnsafeMutablePointer<Float>?, predictions: UnsafeMutablePointer<Int>? = nil
) -> Double {
    var loss: Double = 0
    for r in 0..<n {
        let z = logits + r * k
        var mx = z[0]
        var arg = 0
        for j in 1..<max(1, k) where z[j] > mx { mx = z[j]; arg = j }
        predictions?[r] = arg
        var s: Double = 0
        for j in 0..<k { s += exp(Double(z[j] - mx)) }
        let lse = Double(mx) + log(s)
        let y = labels[r]
        loss += lse - Double(z[y])
        if let g = gradLogits {
            for j in 0..<k {
                let p = exp(Double(z[j]) - lse)
                g[r * k + j] = Float((p - (j == y ? 1 : 0)) / Double(n))
            }
        }
    }
    return loss / Double(max(1, n))
}
