import Foundation
import Parallelism

// Training kernels, llm.c style: the backward pass of every layer of ResNet-18 and MobileNetV2
// (and the training-mode forwards that must record something for it), one plain function each.
// Layouts are those of Layers.swift: activations inside networks are CNHW (channel c of the whole
// batch is one contiguous row of N*H*W floats), so a convolution over the batch is one matrix
// product and BatchNorm's per-channel statistics run over contiguous memory.
//
// Conventions of every backward here:
// - gradients are ACCUMULATED (+=) into gradInput / gradWeight / gradBias, so a tensor used by
//   several layers (residual connections) sums its gradients; callers zero a gradient once, or,
//   where a kernel takes `accumulate...: false`, let its first writer overwrite it (the memory need
//   not be zeroed: every value is written);
// - BLAS runs single-threaded (`setBLASThreads(1)`); the kernels split work between `workers`
//   themselves, along disjoint output blocks, so results do not depend on timing.

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

// MARK: - col2im

/// The adjoint of `im2col`: adds column block [j0, j1) of `col` (rows r = (c - c0)*KH*KW + ky*KW + kx,
/// row stride `ldcol`) back into the image positions they were read from, for channels
/// [c0, c0 + cCount). Out-of-image taps are dropped.
public func col2im(
    col: UnsafePointer<Float>, ldcol: Int,
    gradInput: UnsafeMutablePointer<Float>, layout: PlaneLayout,
    height h: Int, width w: Int, g: ConvGeometry,
    channels c0: Int, _ cCount: Int, columns j0: Int, _ j1: Int
) {
    let (oh, ow) = g.outputSize(height: h, width: w)
    let ohw = oh * ow
    let kk = g.kernelH * g.kernelW
    let s = g.stride, pad = g.padding
    for ci in 0..<cCount {
        for ky in 0..<g.kernelH {
            for kx in 0..<g.kernelW {
                let srcRow = col + (ci * kk + ky * g.kernelW + kx) * ldcol - j0
                var j = j0
                while j < j1 {
                    let n = j / ohw, p = j - n * ohw
                    let oy = p / ow, ox = p - oy * ow
                    let cnt = min(ow - ox, j1 - j)
                    let iy = oy * s - pad + ky
                    if iy >= 0 && iy < h {
                        let dst = gradInput + n * layout.imageStride + (c0 + ci) * layout.channelStride + iy * w
                        let src = srcRow + j
                        let base = ox * s - pad + kx
                        var tlo = 0
                        if base < 0 { tlo = min(cnt, (-base + s - 1) / s) }
                        let lastOK = w - 1 - base
                        var thi = lastOK < 0 ? 0 : min(cnt, lastOK / s + 1)
                        if thi < tlo { thi = tlo }
                        if s == 1 {
                            let d = dst + base
                            for t in tlo..<thi { d[t] += src[t] }
                        } else {
                            var ix = base + tlo * s
                            for t in tlo..<thi { dst[ix] += src[t]; ix += s }
                        }
                    }
                    j += cnt
                }
            }
        }
    }
}

// MARK: - Convolution backward (groups == 1)

/// Scratch floats `conv2dBackward` needs with column chunks of `chunkColumns` (one shared im2col
/// chunk; `workers` is kept for callers and no longer matters). Pointwise stride-1 convolutions need none.
public func conv2dBackwardScratchCount(_ g: ConvGeometry, chunkColumns: Int, workers: Int) -> Int {
    g.isPointwise ? 0 : g.groupK * max(1, chunkColumns)
}

/// Columns per im2col chunk of the convolution backward passes: `Grain.chunkFloats` of scratch (less
/// only when the caller's whole scratch is smaller, which only tests do).
@inline(__always)
func backwardChunk(columns cols: Int, im2colRows kAll: Int, scratchCount: Int) -> Int {
    max(1, min(cols, min(Grain.chunkFloats, scratchCount) / max(1, kAll)))
}

/// Weight gradient of an ungrouped convolution without bias:
///   gradWeight[OC x K] += dY[OC x cols] * im2col(input)[K x cols]^T.
/// The columns go in chunks of fixed size, one after another (so every weight's sum runs in the same
/// order whatever the worker count): the workers build each chunk's im2col (split by input channel),
/// then share the GEMM's fixed blocks (`parallelSgemm`). With few columns for many weights (late
/// layers) the whole batch is one chunk when the scratch holds it. A pointwise stride-1 convolution
/// over CNHW input reads the input directly.
public func conv2dBackwardWeight(
    gradOutput dy: UnsafePointer<Float>,
    input: UnsafePointer<Float>, layout: PlaneLayout,
    batch n: Int, height h: Int, width w: Int, geometry g: ConvGeometry,
    gradWeight: UnsafeMutablePointer<Float>,
    scratch: UnsafeMutablePointer<Float>?, scratchCount: Int, workers: Int = 1
) {
    precondition(g.groups == 1, "conv2dBackwardWeight handles groups == 1; use depthwiseConv3x3Backward")
    let (oh, ow) = g.outputSize(height: h, width: w)
    let cols = n * oh * ow
    guard cols > 0 else { return }
    let kAll = g.groupK, oc = g.outChannels
    let direct = g.isPointwise && layout.imageStride == h * w && layout.channelStride == n * h * w
    if direct {
        // A small OC x IC result summed over many columns: cut the sum into a fixed number of column
        // ranges (each GEMM keeps the whole OC x IC shape, so no panel is packed twice), add the
        // partial sums in order. Fewer columns, or no room: blocks of the result (parallelSgemm).
        let ic = g.inChannels
        let parts = min(8, cols / 2048)
        if parts >= 2, let scratch, parts * oc * ic <= scratchCount {
            let box = UncheckedSendable((scratch, gradWeight))
            parallelPieces(parts, workers: workers) { _, p in
                let j0 = cols * p / parts, j1 = cols * (p + 1) / parts
                sgemm(transB: true, m: oc, n: ic, k: j1 - j0, a: dy + j0, lda: cols, b: input + j0, ldb: cols,
                      beta: 0, c: box.value.0 + p * oc * ic, ldc: ic)
            }
            let total = oc * ic
            parallelPieces((total + 4095) / 4096, workers: workers) { _, piece in
                let (partial, gw) = box.value
                for i in (piece * 4096)..<min(total, (piece + 1) * 4096) {
                    var sum = partial[i]
                    for p in 1..<parts { sum += partial[p * total + i] }
                    gw[i] += sum
                }
            }
            return
        }
        parallelSgemm(transB: true, m: oc, n: ic, k: cols, a: dy, lda: cols, b: input, ldb: cols,
                      beta: 1, c: gradWeight, ldc: ic, workers: workers)
        return
    }
    guard let scratch else { preconditionFailure("conv2dBackwardWeight needs scratch for a non-pointwise convolution") }
    // few columns for many weights: the whole batch at once (one pass over dW), if it fits
    let whole = kAll * cols <= min(1 << 23, scratchCount) && g.weightCount >= kAll * cols / 4
    let chunk = whole ? cols : backwardChunk(columns: cols, im2colRows: kAll, scratchCount: scratchCount)
    precondition(kAll * chunk <= scratchCount, "conv2dBackwardWeight: scratch too small")
    let box = UncheckedSendable((scratch, input))
    var j0 = 0
    while j0 < cols {
        let j1 = min(cols, j0 + chunk), nc = j1 - j0
        parallelSlices(g.inChannels, workers: workers) { _, chans in
            let (scratch, input) = box.value
            im2col(col: scratch + chans.lowerBound * g.kernelH * g.kernelW * nc, ldcol: nc, input: input, layout: layout,
                   height: h, width: w, g: g, channels: chans.lowerBound, chans.count, columns: j0, j1)
        }
        parallelSgemm(transB: true, m: oc, n: kAll, k: nc, a: dy + j0, lda: cols, b: scratch, ldb: nc,
                      beta: 1, c: gradWeight, ldc: kAll, workers: workers)
        j0 = j1
    }
}

/// Input gradient of an ungrouped convolution by col2im:
///   dcol[K x cols] = W^T[K x OC] * dY[OC x cols], added back to the image positions (col2im),
/// in column chunks of `Grain.chunkFloats / K` floats. Any stride, padding and kernel; pointwise stride-1
/// convolutions over CNHW are one GEMM. `gradInput` (+=) has the input's layout.
public func conv2dBackwardInput(
    gradOutput dy: UnsafePointer<Float>, layout: PlaneLayout,
    batch n: Int, height h: Int, width w: Int, geometry g: ConvGeometry,
    weight: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>, accumulate: Bool = true,
    scratch: UnsafeMutablePointer<Float>?, scratchCount: Int, workers: Int = 1
) {
    precondition(g.groups == 1, "conv2dBackwardInput handles groups == 1; use depthwiseConv3x3Backward")
    let (oh, ow) = g.outputSize(height: h, width: w)
    let cols = n * oh * ow
    guard cols > 0 else { return }
    let kAll = g.groupK, oc = g.outChannels, kk = g.kernelH * g.kernelW
    let direct = g.isPointwise && layout.imageStride == h * w && layout.channelStride == n * h * w
    if direct {
        parallelSgemm(transA: true, m: g.inChannels, n: cols, k: oc, a: weight, lda: g.inChannels, b: dy, ldb: cols,
                      beta: accumulate ? 1 : 0, c: gradInput, ldc: cols, workers: workers)
        return
    }
    if !accumulate { gradInput.update(repeating: 0, count: n * g.inChannels * h * w) }
    guard let scratch else { preconditionFailure("conv2dBackwardInput needs scratch for a non-pointwise convolution") }
    let chunk = backwardChunk(columns: cols, im2colRows: kAll, scratchCount: scratchCount)
    precondition(kAll * chunk <= scratchCount, "conv2dBackwardInput: scratch too small")
    let box = UncheckedSendable((scratch, gradInput))
    var j0 = 0
    while j0 < cols {
        let j1 = min(cols, j0 + chunk)
        let nc = j1 - j0
        parallelSgemm(transA: true, m: kAll, n: nc, k: oc, a: weight, lda: kAll, b: dy + j0, ldb: cols,
                      beta: 0, c: scratch, ldc: nc, workers: workers)
        parallelSlices(g.inChannels, workers: workers) { _, chans in
            let (scratch, gradInput) = box.value
            col2im(col: scratch + chans.lowerBound * kk * nc, ldcol: nc, gradInput: gradInput, layout: layout,
                   height: h, width: w, g: g, channels: chans.lowerBound, chans.count, columns: j0, j1)
        }
        j0 = j1
    }
}

/// The weights of the "transposed" convolution that computes the input gradient of a stride-1
/// convolution with padding p = (k - 1) / 2 as a forward convolution of dY (same geometry with
/// in/out channels swapped): wT[ci][co][ky][kx] = w[co][ci][KH-1-ky][KW-1-kx].
public func flipTransposeConvWeight(_ wT: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ g: ConvGeometry) {
    let kh = g.kernelH, kw = g.kernelW, ic = g.inChannels, oc = g.outChannels
    for co in 0..<oc {
        for ci in 0..<ic {
            let src = w + (co * ic + ci) * kh * kw
            let dst = wT + (ci * oc + co) * kh * kw
            for ky in 0..<kh { for kx in 0..<kw { dst[ky * kw + kx] = src[(kh - 1 - ky) * kw + (kw - 1 - kx)] } }
        }
    }
}

/// True when `conv2dBackwardInputByForward` applies: ungrouped, stride 1, odd square kernel with
/// "same" padding (ResNet's 3x3 convolutions).
public func canBackpropInputByForward(_ g: ConvGeometry) -> Bool {
    g.groups == 1 && g.stride == 1 && g.kernelH == g.kernelW && g.kernelH % 2 == 1 && g.padding == (g.kernelH - 1) / 2 && g.kernelH > 1
}

/// Input gradient of a stride-1 "same" convolution as a forward convolution of dY (CNHW) with the
/// flipped, transposed weights: one well-shaped GEMM per chunk (K = OC*KH*KW) instead of a thin
/// GEMM (K = OC) plus col2im. Writes the result to `gradInput` (CNHW) when `accumulate` is false,
/// otherwise adds it through `temp` (n * IC * H * W floats). `weightT` holds weightCount floats.
public func conv2dBackwardInputByForward(
    gradOutput dy: UnsafePointer<Float>, batch n: Int, height h: Int, width w: Int, geometry g: ConvGeometry,
    weight: UnsafePointer<Float>, weightT: UnsafeMutablePointer<Float>,
    gradInput: UnsafeMutablePointer<Float>, accumulate: Bool, temp: UnsafeMutablePointer<Float>?,
    scratch: UnsafeMutablePointer<Float>, scratchCount: Int, workers: Int = 1
) {
    precondition(canBackpropInputByForward(g))
    flipTransposeConvWeight(weightT, weight, g)
    let gt = ConvGeometry(inChannels: g.outChannels, outChannels: g.inChannels, kernel: g.kernelH, stride: 1, padding: g.padding)
    let dst = accumulate ? temp! : gradInput
    conv2dForward(output: dst, input: dy, layout: .cnhw(batch: n, height: h, width: w), batch: n, height: h, width: w,
                  geometry: gt, weight: weightT, bias: nil, scratch: scratch, scratchCount: scratchCount, workers: workers)
    if accumulate {
        let total = n * g.inChannels * h * w
        let box = UncheckedSendable((gradInput, dst))
        parallelSlices(total / 8, workers: workers) { _, r in
            let (gi, t) = box.value
            for i in (r.lowerBound * 8)..<(r.upperBound * 8) { gi[i] += t[i] }
        }
        for i in (total / 8 * 8)..<total { gradInput[i] += dst[i] }
    }
}

/// Backward of `conv2dForward` for an ungrouped convolution without bias (weight and, unless
/// `gradInput` is nil, input gradients; both accumulated). See `conv2dBackwardWeight` and
/// `conv2dBackwardInput`; `scratch` is shared by both (sized by `conv2dBackwardScratchCount`).
public func conv2dBackward(
    gradOutput dy: UnsafePointer<Float>,
    input: UnsafePointer<Float>, layout: PlaneLayout,
    batch n: Int, height h: Int, width w: Int, geometry g: ConvGeometry,
    weight: UnsafePointer<Float>,
    gradWeight: UnsafeMutablePointer<Float>, gradInput: UnsafeMutablePointer<Float>?,
    scratch: UnsafeMutablePointer<Float>?, scratchCount: Int, workers: Int = 1
) {
    conv2dBackwardWeight(gradOutput: dy, input: input, layout: layout, batch: n, height: h, width: w, geometry: g,
                         gradWeight: gradWeight, scratch: scratch, scratchCount: scratchCount, workers: workers)
    if let gradInput {
        conv2dBackwardInput(gradOutput: dy, layout: layout, batch: n, height: h, width: w, geometry: g, weight: weight,
                            gradInput: gradInput, scratch: scratch, scratchCount: scratchCount, workers: workers)
    }
}

// MARK: - Depthwise 3x3 backward

/// Scratch floats per worker for `depthwiseConv3x3Backward`.
public func depthwiseBackwardScratchCount(height h: Int, width w: Int) -> Int {
    let pw = w + 24
    // padded input, padded input gradient (stride 2), padded output gradient (+1 row of slack)
    return 3 * (h + 3) * pw
}

/// Backward of a depthwise 3x3 convolution (padding 1, stride 1 or 2, no bias), CNHW:
///   gradWeight[c][ky][kx] += sum_{n,oy,ox} dY[c][n][oy][ox] * x[c][n][oy*s-1+ky][ox*s-1+kx]
///   gradInput[c][n][iy][ix] += sum of weight[c][ky][kx] * dY over the taps that read (iy, ix).
/// Channels are split between workers (each owns its channels' weight gradients); every plane is
/// copied into zero-padded scratch so the inner loops need no bounds tests.
/// `scratch` holds `workers * depthwiseBackwardScratchCount(height:width:)` floats.
public func depthwiseConv3x3Backward(
    gradOutput dy: UnsafePointer<Float>, input: UnsafePointer<Float>,
    channels c: Int, batch n: Int, height h: Int, width w: Int, stride: Int,
    weight: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>, gradInput: UnsafeMutablePointer<Float>?,
    accumulateInput: Bool = true, scratch: UnsafeMutablePointer<Float>, workers: Int = 1
) {
    let oh = (h + 2 - 3) / stride + 1, ow = (w + 2 - 3) / stride + 1
    let pw = w + 24
    let half = (w + 3) / 2 + 9   // stride 2: padded rows stored as even | odd columns, as the forward pass
    let per = depthwiseBackwardScratchCount(height: h, width: w)
    let box = UncheckedSendable((dy, input, gradWeight, gradInput, scratch, weight))
    parallelSlices(c, workers: max(1, min(workers, c))) { worker, chans in
        let (dy, input, gradWeight, gradInput, scratch, weight) = box.value
        let pad = scratch + worker * per          // padded input plane
        let dpad = pad + (h + 2) * pw             // padded input-gradient plane
        let dyp = dpad + (h + 2) * pw             // output gradient with zeroed tails
        pad.update(repeating: 0, count: per)
        for ch in chans {
            let k = weight + ch * 9
            var acc = [SIMD8<Float>](repeating: .zero, count: 9)
            var accS = [Float](repeating: 0, count: 9)
            for img in 0..<n {
                let plane = ch * n + img
                let src = input + plane * h * w
                let g = dy + plane * oh * ow
                if stride != 2 { for y in 0..<h { (pad + (y + 1) * pw + 1).update(from: src + y * w, count: w) } }
                if stride > 2 && gradInput != nil { dpad.update(repeating: 0, count: (h + 2) * pw) }
                if stride == 1 {
                    // dy zero-padded by one on every side (row stride dyw), so that the weight
                    // gradient reads 8 lanes past the row end as zeros and the input gradient is a
                    // plain 3x3 correlation of padded dy with the flipped kernel
                    let dyw1 = ow + 2 + 16
                    for y in 0..<oh { (dyp + (y + 1) * dyw1 + 1).update(from: g + y * ow, count: ow) }
                    var a0 = SIMD8<Float>.zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0
                    for oy in 0..<oh {
                        let gr = UnsafePointer(dyp + (oy + 1) * dyw1 + 1)
                        let r0 = UnsafePointer(pad + oy * pw), r1 = r0 + pw, r2 = r1 + pw
                        var x = 0
                        while x < ow {
                            let gv = ld8(gr + x)
                            a0 += gv * ld8(r0 + x); a1 += gv * ld8(r0 + x + 1); a2 += gv * ld8(r0 + x + 2)
                            a3 += gv * ld8(r1 + x); a4 += gv * ld8(r1 + x + 1); a5 += gv * ld8(r1 + x + 2)
                            a6 += gv * ld8(r2 + x); a7 += gv * ld8(r2 + x + 1); a8 += gv * ld8(r2 + x + 2)
                            x += 8
                        }
                    }
                    acc[0] += a0; acc[1] += a1; acc[2] += a2; acc[3] += a3; acc[4] += a4
                    acc[5] += a5; acc[6] += a6; acc[7] += a7; acc[8] += a8
                    if let gi = gradInput {
                        // dX[iy][ix] = sum k[2-ky][2-kx] * dyPad[iy+ky][ix+kx]
                        let f0 = SIMD8<Float>(repeating: k[8]), f1 = SIMD8<Float>(repeating: k[7]), f2 = SIMD8<Float>(repeating: k[6])
                        let f3 = SIMD8<Float>(repeating: k[5]), f4 = SIMD8<Float>(repeating: k[4]), f5 = SIMD8<Float>(repeating: k[3])
                        let f6 = SIMD8<Float>(repeating: k[2]), f7 = SIMD8<Float>(repeating: k[1]), f8 = SIMD8<Float>(repeating: k[0])
                        let dst = gi + plane * h * w
                        for iy in 0..<h {
                            let q0 = UnsafePointer(dyp + iy * dyw1), q1 = q0 + dyw1, q2 = q1 + dyw1
                            let o = dst + iy * w
                            var x = 0
                            while x < w {
                                var v = f0 * ld8(q0 + x) + f1 * ld8(q0 + x + 1) + f2 * ld8(q0 + x + 2)
                                v += f3 * ld8(q1 + x) + f4 * ld8(q1 + x + 1) + f5 * ld8(q1 + x + 2)
                                v += f6 * ld8(q2 + x) + f7 * ld8(q2 + x + 1) + f8 * ld8(q2 + x + 2)
                                if x + 8 <= w {
                                    st8(o + x, accumulateInput ? ld8(o + x) + v : v)
                                } else {
                                    for t in 0..<(w - x) { o[x + t] = accumulateInput ? o[x + t] + v[t] : v[t] }
                                }
                                x += 8
                            }
                        }
                    }
                } else if stride == 2 {
                    // weight gradient: padded x' = x + 1 split into E[i] = P[2i], O[i] = P[2i + 1]; output ox
                    // reads E[ox], O[ox], E[ox + 1] of rows 2oy..2oy+2, so 8 outputs at a time are contiguous
                    // loads. dY row j sits at dyRow(j) with zeros before it, after it (tails never written)
                    // and in rows -1 and oh.
                    for y in 0..<h {
                        let e = pad + (y + 1) * pw
                        splitPaddedRow(src + y * w, count: w, even: e, odd: e + half)
                    }
                    let dyw2 = ow + 32
                    @inline(__always) func dyRow(_ j: Int) -> UnsafePointer<Float> { UnsafePointer(dyp + (j + 1) * dyw2 + 8) }
                    for y in 0..<oh { UnsafeMutablePointer(mutating: dyRow(y)).update(from: g + y * ow, count: ow) }
                    var a0 = SIMD8<Float>.zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0
                    for oy in 0..<oh {
                        let gr = dyRow(oy)
                        let e0 = UnsafePointer(pad + 2 * oy * pw), e1 = e0 + pw, e2 = e1 + pw
                        let o0 = e0 + half, o1 = e1 + half, o2 = e2 + half
                        var x = 0
                        while x < ow {
                            let gv = ld8(gr + x)
                            a0 += gv * ld8(e0 + x); a1 += gv * ld8(o0 + x); a2 += gv * ld8(e0 + x + 1)
                            a3 += gv * ld8(e1 + x); a4 += gv * ld8(o1 + x); a5 += gv * ld8(e1 + x + 1)
                            a6 += gv * ld8(e2 + x); a7 += gv * ld8(o2 + x); a8 += gv * ld8(e2 + x + 1)
                            x += 8
                        }
                    }
                    acc[0] += a0; acc[1] += a1; acc[2] += a2; acc[3] += a3; acc[4] += a4
                    acc[5] += a5; acc[6] += a6; acc[7] += a7; acc[8] += a8
                    if let gi = gradInput {
                        // input gradient gathered, row by row: input (iy, x) is padded (iy + 1, x + 1), which
                        // taps (ky, kx) of outputs (oy, ox) with 2oy + ky = iy + 1 and 2ox + kx = x + 1 reach.
                        // Even iy (padded row 2j + 1, j = iy / 2): dX[2i] = k11 dY[j][i],
                        //   dX[2i + 1] = k10 dY[j][i + 1] + k12 dY[j][i].
                        // Odd iy (padded row 2j, j = (iy + 1) / 2): dX[2i] = k01 dY[j][i] + k21 dY[j - 1][i],
                        //   dX[2i + 1] = k00 dY[j][i + 1] + k02 dY[j][i] + k20 dY[j - 1][i + 1] + k22 dY[j - 1][i].
                        let k00 = SIMD8<Float>(repeating: k[0]), k01 = SIMD8<Float>(repeating: k[1]), k02 = SIMD8<Float>(repeating: k[2])
                        let k10 = SIMD8<Float>(repeating: k[3]), k11 = SIMD8<Float>(repeating: k[4]), k12 = SIMD8<Float>(repeating: k[5])
                        let k20 = SIMD8<Float>(repeating: k[6]), k21 = SIMD8<Float>(repeating: k[7]), k22 = SIMD8<Float>(repeating: k[8])
                        let dst = gi + plane * h * w
                        for iy in 0..<h {
                            let drow = dst + iy * w
                            let r = dyRow((iy + 1) / 2), q = dyRow((iy + 1) / 2 - 1)
                            var i = 0
                            while 2 * i < w {
                                var v = SIMD16<Float>()
                                let a = ld8(r + i), b = ld8(r + i + 1)
                                if iy % 2 == 0 {
                                    v.evenHalf = k11 * a
                                    v.oddHalf = k10 * b + k12 * a
                                } else {
                                    let c = ld8(q + i), d = ld8(q + i + 1)
                                    v.evenHalf = k01 * a + k21 * c
                                    v.oddHalf = k00 * b + k02 * a + k20 * d + k22 * c
                                }
                                let out = drow + 2 * i
                                if 2 * i + 16 <= w {
                                    let p = UnsafeMutableRawPointer(out)
                                    p.storeBytes(of: accumulateInput ? p.loadUnaligned(as: SIMD16<Float>.self) + v : v, as: SIMD16<Float>.self)
                                } else {
                                    for t in 0..<(w - 2 * i) { out[t] = accumulateInput ? out[t] + v[t] : v[t] }
                                }
                                i += 8
                            }
                        }
                    }
                } else {
                    for oy in 0..<oh {
                        let gr = g + oy * ow
                        for ky in 0..<3 {
                            let r = pad + (oy * stride + ky) * pw
                            let d = dpad + (oy * stride + ky) * pw
                            for kx in 0..<3 {
                                var s: Float = 0
                                let kval = k[ky * 3 + kx]
                                for ox in 0..<ow {
                                    let gv = gr[ox]
                                    s += gv * r[ox * stride + kx]
                                    d[ox * stride + kx] += kval * gv
                                }
                                accS[ky * 3 + kx] += s
                            }
                        }
                    }
                }
                if stride > 2, let gi = gradInput {
                    let dst = gi + plane * h * w
                    for y in 0..<h {
                        let srow = dpad + (y + 1) * pw + 1, drow = dst + y * w
                        if accumulateInput { for x in 0..<w { drow[x] += srow[x] } } else { drow.update(from: srow, count: w) }
                    }
                }
            }
            for t in 0..<9 { gradWeight[ch * 9 + t] += acc[t].sum() + accS[t] }
        }
    }
}

// MARK: - BatchNorm, training mode

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

// MARK: - Activations (stand-alone)

/// ReLU backward from the layer's output: gradInput += gradOutput where output > 0.
public func reluBackward(gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
                         output: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { gradInput[i] += ReLUActivation.masked(gradOutput[i], output[i]) }
}

/// ReLU6 backward from the layer's output: gradInput += gradOutput where 0 < output < 6
/// (PyTorch's hardtanh_backward: the boundaries get no gradient).
public func relu6Backward(gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
                          output: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { gradInput[i] += ReLU6Activation.masked(gradOutput[i], output[i]) }
}

// MARK: - Max pooling with argmax

/// Max pooling like `maxPool2dForward` that also records, for each output, the index within its
/// input plane of the (first, in scan order, as PyTorch) maximum.
public func maxPool2dTrainForward(
    output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>,
    planes: Int, height h: Int, width w: Int, kernel k: Int = 3, stride s: Int = 2, padding p: Int = 1,
    workers: Int = 1
) {
    let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
    if k == 3 && s == 2 && p == 1 && w >= 2 {
        maxPool3x3Stride2TrainForward(output: output, argmax: argmax, input: input, planes: planes, height: h, width: w,
                                      workers: workers)
        return
    }
    // The maxima by the (vectorised) inference kernel, then per output the first window position
    // holding that value: windows are scanned backwards with branch-free selects, as data-dependent
    // branches on "greater than the maximum so far" mispredict (measured: 12.8 -> 3 ms per ResNet-18
    // step at batch 4). A NaN maximum (PyTorch keeps the last NaN) takes the plain scan.
    maxPool2dForward(output: output, input: input, planes: planes, height: h, width: w, kernel: k, stride: s, padding: p,
                     workers: workers)
    let box = UncheckedSendable((output, argmax, input))
    parallelSlices(planes, workers: workers) { _, slice in
        let (output, argmax, input) = box.value
        for plane in slice {
            let x = input + plane * h * w, y = output + plane * oh * ow, a = argmax + plane * oh * ow
            for oy in 0..<oh {
                let y0 = max(0, oy * s - p), y1 = min(h, oy * s - p + k)
                for ox in 0..<ow {
                    let x0 = max(0, ox * s - p), x1 = min(w, ox * s - p + k)
                    let m = y[oy * ow + ox]
                    var best = y0 * w + x0
                    var nan = m != m
                    var iy = y1 - 1
                    while iy >= y0 {
                        var ix = x1 - 1
                        while ix >= x0 {
                            let i = iy * w + ix, v = x[i]
                            best = v == m ? i : best
                            nan = v != v ? true : nan
                            ix -= 1
                        }
                        iy -= 1
                    }
                    if nan {
                        var mm = -Float.infinity
                        for iy in y0..<y1 {
                            for ix in x0..<x1 {
                                let v = x[iy * w + ix]
                                if v > mm || v.isNaN { mm = v; best = iy * w + ix }
                            }
                        }
                        y[oy * ow + ox] = mm
                    }
                    a[oy * ow + ox] = Int32(best)
                }
            }
        }
    }
}

/// ResNet's pool (3x3, stride 2, padding 1) with argmax, 8 outputs at a time: each of the 3 input
/// rows of an output row is split into even and odd padded columns (x' = x + 1; E[i] = P[2i],
/// O[i] = P[2i + 1], -inf outside the image), so output ox reads E[ox], O[ox], E[ox + 1]. Candidates
/// go in PyTorch's scan order with its rule (`v > max || isnan(v)`: first maximum, last NaN), the
/// index starting at the window's first in-image element.
func maxPool3x3Stride2TrainForward(
    output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>,
    planes: Int, height h: Int, width w: Int, workers: Int
) {
    let oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1
    let half = (w + 3) / 2 + 9
    let lane = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
    let box = UncheckedSendable((output, argmax, input))
    parallelSlices(planes, workers: workers) { _, slice in
        let (output, argmax, input) = box.value
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 6 * half) { buf in
            let rows = buf.baseAddress!
            for plane in slice {
                let x = input + plane * h * w, y = output + plane * oh * ow, a = argmax + plane * oh * ow
                for oy in 0..<oh {
                    for r in 0..<3 {
                        let e = rows + 2 * r * half, o = e + half
                        e.update(repeating: -.infinity, count: 2 * half)
                        let iy = 2 * oy - 1 + r
                        guard iy >= 0 && iy < h else { continue }
                        splitPaddedRow(x + iy * w, count: w, even: e, odd: o)
                    }
                    let y0 = max(0, 2 * oy - 1)
                    var j = 0
                    while j < ow {
                        let first = (SIMD8<Int32>(repeating: Int32(j)) &+ lane) &* 2 &- 1  // column of E[j]
                        var m = SIMD8<Float>(repeating: -.infinity)
                        var idx = SIMD8<Int32>(repeating: Int32(y0 * w)) &+ first.replacing(with: 0, where: first .< 0)
                        for r in 0..<3 {
                            let iy = 2 * oy - 1 + r
                            guard iy >= 0 && iy < h else { continue }
                            let e = UnsafePointer(rows + 2 * r * half), o = e + half
                            let base = SIMD8<Int32>(repeating: Int32(iy * w)) &+ first
                            @inline(__always) func consider(_ v: SIMD8<Float>, _ at: SIMD8<Int32>) {
                                let take = (v .> m) .| (v .!= v)
                                m = m.replacing(with: v, where: take)
                                idx = idx.replacing(with: at, where: take)
                            }
                            consider(ld8(e + j), base)
                            consider(ld8(o + j), base &+ 1)
                            consider(ld8(e + j + 1), base &+ 2)
                        }
                        let lanes = min(8, ow - j)
                        let yo = y + oy * ow + j, ao = a + oy * ow + j
                        if lanes == 8 {
                            st8(yo, m)
                            UnsafeMutableRawPointer(ao).storeBytes(of: idx, as: SIMD8<Int32>.self)
                        } else {
                            for l in 0..<lanes { yo[l] = m[l]; ao[l] = idx[l] }
                        }
                        j += 8
                    }
                }
            }
        }
    }
}

/// Max pooling backward: each output's gradient goes to its recorded argmax (+=).
public func maxPool2dBackward(
    gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
    planes: Int, inputHW: Int, outputHW: Int, workers: Int = 1
) {
    let box = UncheckedSendable((gradInput, gradOutput, argmax))
    parallelSlices(planes, workers: workers) { _, slice in
        let (gradInput, gradOutput, argmax) = box.value
        for plane in slice {
            let gi = gradInput + plane * inputHW, go = gradOutput + plane * outputHW, a = argmax + plane * outputHW
            for i in 0..<outputHW { gi[Int(a[i])] += go[i] }
        }
    }
}

// MARK: - Global average pooling, linear, dropout, loss

/// Backward of `globalAvgPoolForward`: gradInput (CNHW) plane (c, n) += gradOutput[n][c] / hw.
public func globalAvgPoolBackward(
    gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
    channels c: Int, batch n: Int, hw: Int
) {
    let inv = 1 / Float(hw)
    for ch in 0..<c {
        for img in 0..<n {
            let g = gradOutput[img * c + ch] * inv
            let d = gradInput + (ch * n + img) * hw
            for i in 0..<hw { d[i] += g }
        }
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

/// Inverted dropout: output = input * mask, mask[i] = 0 with probability p, else 1 / (1 - p).
/// `uniform(i)` gives the i-th uniform draw in [0, 1) (the caller's seeded generator).
public func dropoutForward(
    output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    count: Int, p: Float, uniform: () -> Float
) {
    let keep = 1 / (1 - p)
    for i in 0..<count {
        mask[i] = uniform() < p ? 0 : keep
        output[i] = input[i] * mask[i]
    }
}

/// Dropout backward: gradInput += gradOutput * mask.
public func dropoutBackward(gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
                            mask: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { gradInput[i] += gradOutput[i] * mask[i] }
}

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
