// BatchNorm: eval mode (folded into the preceding convolution, plane-wise, or fused with residual
// and activation over CNHW) and training mode (batch statistics, forward and backward, fused with
// the residual addition and activation).

import Parallelism

// MARK: - Eval mode

/// Folds eval-mode BatchNorm into the preceding convolution: returns (weight', bias') with
/// weight'[oc] = weight[oc] * s, bias' = (bias - mean) * s + beta, s = gamma / sqrt(var + eps).
public func foldBatchNorm(
    weight: [Float], bias: [Float]?, outChannels: Int,
    gamma: [Float], beta: [Float], mean: [Float], variance: [Float], eps: Float = 1e-5
) -> (weight: [Float], bias: [Float]) {
    let per = weight.count / max(1, outChannels)
    var w = weight
    var b = [Float](repeating: 0, count: outChannels)
    for oc in 0..<outChannels {
        // computed in Double to keep the folded weights as close as possible to the unfolded math
        let s = Double(gamma[oc]) / (Double(variance[oc]) + Double(eps)).squareRoot()
        for i in 0..<per { w[oc * per + i] = Float(Double(weight[oc * per + i]) * s) }
        b[oc] = Float((Double(bias?[oc] ?? 0) - Double(mean[oc])) * s + Double(beta[oc]))
    }
    return (w, b)
}

/// BatchNorm with running statistics (eval mode), plane-wise over `planes` planes of `hw` floats,
/// plane p having channel `channelOf(p)`: y = (x - mean) / sqrt(var + eps) * gamma + beta.
/// For CNHW pass channelOf = { $0 / n }; for NCHW { $0 % c }. In place allowed (output == input).
public func batchNormEvalForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    planes: Int, hw: Int, channelOf: (Int) -> Int,
    mean: UnsafePointer<Float>, variance: UnsafePointer<Float>,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float = 1e-5
) {
    for p in 0..<planes {
        let c = channelOf(p)
        let scale = (gamma?[c] ?? 1) / (variance[c] + eps).squareRoot()
        let shift = (beta?[c] ?? 0) - mean[c] * scale
        let x = input + p * hw, y = output + p * hw
        for i in 0..<hw { y[i] = x[i] * scale + shift }
    }
}

/// BatchNorm in eval mode (running statistics) over CNHW, fused with residual and activation,
/// computed exactly like PyTorch's eval BatchNorm (per-channel scale and shift).
public func batchNormEvalForwardFused(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    channels c: Int, count m: Int,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
    runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
    residual: UnsafePointer<Float>? = nil, activation: Activation = .none, eps: Float = 1e-5, workers: Int = 1
) {
    let box = UncheckedSendable((output, input, residual, gamma, beta, runningMean, runningVar))
    parallelSlices(c, workers: workers) { _, chans in
        let (output, input, residual, gamma, beta, runningMean, runningVar) = box.value
        for ch in chans {
            let invstd = 1 / (runningVar[ch] + eps).squareRoot()
            let scale = gamma[ch] * invstd
            let shift = beta[ch] - runningMean[ch] * scale
            affineActivation(output + ch * m, input + ch * m, m, scale, shift, residual.map { $0 + ch * m }, activation)
        }
    }
}

// MARK: - Training mode

/// BatchNorm in training mode over a CNHW activation (channel c = `count` contiguous floats at
/// input + c*count), fused with an optional residual addition and activation:
///   y = act((x - mean_c) * invstd_c * gamma_c + beta_c + residual)
/// with the batch statistics mean_c and biased variance var_c (invstd = 1/sqrt(var + eps)), saved
/// for the backward pass. Running statistics (when given) are updated like PyTorch:
///   running_mean = (1 - momentum) * running_mean + momentum * mean
///   running_var  = (1 - momentum) * running_var  + momentum * var * count / (count - 1)   (unbiased)
/// Statistics are accumulated in float64.
public func batchNormTrainForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    channels c: Int, count m: Int,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
    residual: UnsafePointer<Float>? = nil, activation: Activation = .none,
    saveMean: UnsafeMutablePointer<Float>, saveInvStd: UnsafeMutablePointer<Float>,
    runningMean: UnsafeMutablePointer<Float>?, runningVar: UnsafeMutablePointer<Float>?,
    momentum: Float = 0.1, eps: Float = 1e-5, workers: Int = 1
) {
    let box = UncheckedSendable((output, input, residual, saveMean, saveInvStd, runningMean, runningVar, gamma, beta))
    parallelSlices(c, workers: workers) { _, chans in
        let (output, input, residual, saveMean, saveInvStd, runningMean, runningVar, gamma, beta) = box.value
        for ch in chans {
            let x = input + ch * m
            let mean = channelSum(x, m) / Double(m)
            let variance = channelSquaredDeviation(x, m, Float(mean)) / Double(m)
            let invstd = 1 / (variance + Double(eps)).squareRoot()
            saveMean[ch] = Float(mean)
            saveInvStd[ch] = Float(invstd)
            if let runningMean, let runningVar {
                let unbiased = m > 1 ? variance * Double(m) / Double(m - 1) : variance
                runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * Float(mean)
                runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * Float(unbiased)
            }
            let scale = gamma[ch] * Float(invstd)
            // (x - mean) * scale + beta: no cancellation when |mean| >> std
            affineActivation(output + ch * m, x, m, scale, beta[ch], residual.map { $0 + ch * m }, activation, center: Float(mean))
        }
    }
}

// The per-channel sums run four independent 8-lane accumulators (a single one is a chain of
// dependent additions, latency-bound: BatchNorm's training forward measured 10-20% slower), in
// float over blocks of 4096 values and in float64 across blocks.

@inline(__always)
func channelSum(_ x: UnsafePointer<Float>, _ m: Int) -> Double {
    var total: Double = 0
    var i = 0
    while i < m {
        let end = min(m, i + 4096)
        var v0 = SIMD8<Float>.zero, v1 = v0, v2 = v0, v3 = v0
        while i + 32 <= end {
            v0 += ld8(x + i); v1 += ld8(x + i + 8); v2 += ld8(x + i + 16); v3 += ld8(x + i + 24)
            i += 32
        }
        while i + 8 <= end { v0 += ld8(x + i); i += 8 }
        var s = Double(((v0 + v1) + (v2 + v3)).sum())
        while i < end { s += Double(x[i]); i += 1 }
        total += s
    }
    return total
}

@inline(__always)
func channelSquaredDeviation(_ x: UnsafePointer<Float>, _ m: Int, _ mean: Float) -> Double {
    var total: Double = 0
    let mv = SIMD8<Float>(repeating: mean)
    var i = 0
    while i < m {
        let end = min(m, i + 4096)
        var v0 = SIMD8<Float>.zero, v1 = v0, v2 = v0, v3 = v0
        while i + 32 <= end {
            let d0 = ld8(x + i) - mv, d1 = ld8(x + i + 8) - mv, d2 = ld8(x + i + 16) - mv, d3 = ld8(x + i + 24) - mv
            v0 += d0 * d0; v1 += d1 * d1; v2 += d2 * d2; v3 += d3 * d3
            i += 32
        }
        while i + 8 <= end { let d = ld8(x + i) - mv; v0 += d * d; i += 8 }
        var s = Double(((v0 + v1) + (v2 + v3)).sum())
        while i < end { let d = x[i] - mean; s += Double(d * d); i += 1 }
        total += s
    }
    return total
}

/// y = act((x - center) * scale + shift + residual) over `m` floats.
@inline(__always)
func affineActivation(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ m: Int, _ scale: Float, _ shift: Float,
                      _ residual: UnsafePointer<Float>?, _ act: Activation, center: Float = 0) {
    switch act {
    case .none: affineActivation(IdentityActivation.self, y, x, m, scale, shift, residual, center: center)
    case .relu: affineActivation(ReLUActivation.self, y, x, m, scale, shift, residual, center: center)
    case .relu6: affineActivation(ReLU6Activation.self, y, x, m, scale, shift, residual, center: center)
    }
}

@inline(__always)
func affineActivation<A: ActivationKind>(_: A.Type, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ m: Int,
                                         _ scale: Float, _ shift: Float, _ residual: UnsafePointer<Float>?, center: Float) {
    let sv = SIMD8<Float>(repeating: scale), bv = SIMD8<Float>(repeating: shift), cv = SIMD8<Float>(repeating: center)
    var i = 0
    while i + 8 <= m {
        var v = (ld8(x + i) - cv) * sv + bv
        if let r = residual { v += ld8(r + i) }
        st8(y + i, A.apply(v))
        i += 8
    }
    while i < m {
        var v = (x[i] - center) * scale + shift
        if let r = residual { v += r[i] }
        y[i] = A.apply(v)
        i += 1
    }
}

/// Backward of `batchNormTrainForward` (with its fused residual and activation). With
/// dz = dy * act'(y) (relu: y > 0; relu6: 0 < y < 6), xhat = (x - mean) * invstd:
///   gradBeta += sum dz;  gradGamma += sum dz * xhat;  gradResidual += dz;
///   gradInput += gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)).
/// `beta`: give it when the layer had no residual; act'(.) is then found from the forward's
/// pre-activation value (x - mean) * gamma * invstd + beta, recomputed from x bit for bit as the
/// forward computed it, and `output` is not read (one pass over memory less per sweep).
public func batchNormTrainBackward(
    gradOutput dy: UnsafePointer<Float>, output y: UnsafePointer<Float>, input x: UnsafePointer<Float>,
    channels c: Int, count m: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>? = nil,
    saveMean: UnsafePointer<Float>, saveInvStd: UnsafePointer<Float>, activation: Activation,
    gradInput: UnsafeMutablePointer<Float>?, gradResidual: UnsafeMutablePointer<Float>?,
    gradGamma: UnsafeMutablePointer<Float>, gradBeta: UnsafeMutablePointer<Float>,
    accumulateInput: Bool = true, accumulateResidual: Bool = true, workers: Int = 1
) {
    let box = UncheckedSendable((dy, y, x, gamma, beta, saveMean, saveInvStd, gradInput, gradResidual, gradGamma, gradBeta))
    parallelSlices(c, workers: workers) { _, chans in
        let (dy, y, x, gamma, beta, saveMean, saveInvStd, gradInput, gradResidual, gradGamma, gradBeta) = box.value
        for ch in chans {
            let off = ch * m
            // the forward's scale and shift (batchNormTrainForward: (x - mean) * (gamma * invstd) + beta)
            let preActivation = beta.map { (gamma[ch] * saveInvStd[ch], $0[ch]) }
            let args = BatchNormChannel(dy: dy + off, y: y + off, x: x + off, m: m, gamma: gamma[ch], mean: saveMean[ch],
                                        invstd: saveInvStd[ch], preActivation: preActivation,
                                        gradInput: gradInput.map { $0 + off }, gradResidual: gradResidual.map { $0 + off },
                                        accumulateInput: accumulateInput, accumulateResidual: accumulateResidual)
            let (sdz, sumDzXhat): (Double, Double)
            switch activation {
            case .none: (sdz, sumDzXhat) = batchNormBackwardChannel(IdentityActivation.self, args)
            case .relu: (sdz, sumDzXhat) = batchNormBackwardChannel(ReLUActivation.self, args)
            case .relu6: (sdz, sumDzXhat) = batchNormBackwardChannel(ReLU6Activation.self, args)
            }
            gradBeta[ch] += Float(sdz)
            gradGamma[ch] += Float(sumDzXhat)
        }
    }
}

/// One channel of `batchNormTrainBackward`.
struct BatchNormChannel {
    let dy: UnsafePointer<Float>, y: UnsafePointer<Float>, x: UnsafePointer<Float>
    let m: Int
    let gamma: Float, mean: Float, invstd: Float
    /// (scale, shift) of the forward when the mask is recomputed from x, else nil (read from y).
    let preActivation: (Float, Float)?
    let gradInput: UnsafeMutablePointer<Float>?, gradResidual: UnsafeMutablePointer<Float>?
    let accumulateInput: Bool, accumulateResidual: Bool
}

/// Returns (sum dz, sum dz * xhat) after writing the channel's input and residual gradients.
@inline(never)
func batchNormBackwardChannel<A: ActivationKind>(_: A.Type, _ a: BatchNormChannel) -> (Double, Double) {
    let g = a.dy, yo = a.y, xi = a.x, m = a.m
    let mean = a.mean, invstd = a.invstd
    let mv = SIMD8<Float>(repeating: mean)
    let recompute = a.preActivation != nil
    let (scale, shift) = a.preActivation ?? (0, 0)
    let sv = SIMD8<Float>(repeating: scale), bv = SIMD8<Float>(repeating: shift)
    // dz = dy * act'(.) from x - mean (d), 8 and 1 at a time
    @inline(__always) func dz8(_ i: Int, _ d: SIMD8<Float>) -> SIMD8<Float> {
        if A.isIdentity { return ld8(g + i) }
        return A.masked(ld8(g + i), recompute ? d * sv + bv : ld8(yo + i))
    }
    @inline(__always) func dz1(_ i: Int, _ d: Float) -> Float {
        if A.isIdentity { return g[i] }
        return A.masked(g[i], recompute ? d * scale + shift : yo[i])
    }
    // pass 1: sums of dz and dz * (x - mean)
    var sdz: Double = 0, sdzx: Double = 0
    var i = 0
    while i < m {
        let end = min(m, i + 4096)
        var s0 = SIMD8<Float>.zero, p0 = s0, s1 = s0, p1 = s0
        var sa: Float = 0, sb: Float = 0
        while i + 16 <= end {
            let d = ld8(xi + i) - mv, d1 = ld8(xi + i + 8) - mv
            let dz = dz8(i, d), dz1 = dz8(i + 8, d1)
            s0 += dz; s1 += dz1
            p0 += dz * d; p1 += dz1 * d1
            i += 16
        }
        while i + 8 <= end {
            let d = ld8(xi + i) - mv
            let dz = dz8(i, d)
            s0 += dz
            p0 += dz * d
            i += 8
        }
        s0 += s1; p0 += p1
        while i < end {
            let d = xi[i] - mean
            let dz = dz1(i, d)
            sa += dz
            sb += dz * d
            i += 1
        }
        sdz += Double(s0.sum() + sa)
        sdzx += Double(p0.sum() + sb)
    }
    let sumDzXhat = sdzx * Double(invstd)
    // pass 2: gradients
    let k = a.gamma * invstd
    let meanDz = Float(sdz / Double(m))
    let coef = Float(sumDzXhat / Double(m)) * invstd  // multiplies (x - mean)
    let kv = SIMD8<Float>(repeating: k), mdz = SIMD8<Float>(repeating: meanDz), cv = SIMD8<Float>(repeating: coef)
    let gi = a.gradInput, gr = a.gradResidual
    let accI = a.accumulateInput, accR = a.accumulateResidual
    i = 0
    while i + 8 <= m {
        let d = ld8(xi + i) - mv
        let dz = dz8(i, d)
        if let gr { st8(gr + i, accR ? ld8(gr + i) + dz : dz) }
        if let gi {
            let v = kv * (dz - mdz - d * cv)
            st8(gi + i, accI ? ld8(gi + i) + v : v)
        }
        i += 8
    }
    while i < m {
        let d = xi[i] - mean
        let dz = dz1(i, d)
        if let gr { gr[i] = (accR ? gr[i] : 0) + dz }
        if let gi { gi[i] = (accI ? gi[i] : 0) + k * (dz - meanDz - d * coef) }
        i += 1
    }
    return (sdz, sumDzXhat)
}
