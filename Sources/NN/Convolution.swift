// Convolution (any kernel, stride, padding; groups in the forward pass): its geometry, im2col and
// its adjoint col2im, the forward pass with its fused bias/residual/activation epilogue, and the
// backward passes (weight and input gradients) of ungrouped convolutions. Layouts: Layout.swift.

import Parallelism

/// Convolution hyper-parameters (square or rectangular kernels, symmetric padding).
public struct ConvGeometry: Sendable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var kernelH: Int
    public var kernelW: Int
    public var stride: Int
    public var padding: Int
    public var groups: Int

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelH = kernel
        self.kernelW = kernel
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernelH) / stride + 1, (width + 2 * padding - kernelW) / stride + 1)
    }
    /// Rows of the im2col matrix of one group: (inChannels / groups) * kernelH * kernelW.
    public var groupK: Int { inChannels / groups * kernelH * kernelW }
    /// Number of weights: outChannels * (inChannels / groups) * kernelH * kernelW.
    public var weightCount: Int { outChannels * groupK }
    /// True for a 1x1, stride-1, unpadded, ungrouped convolution (a plain matrix product).
    public var isPointwise: Bool { kernelH == 1 && kernelW == 1 && stride == 1 && padding == 0 && groups == 1 }
}

// MARK: - im2col, col2im

/// The taps t in [lo, hi) of a run of `count` outputs that read an input row of `width` values
/// inside it: 0 <= base + t * stride < width (`base`: the first output's input column).
@inline(__always)
func validTaps(base: Int, count: Int, stride s: Int, width w: Int) -> (lo: Int, hi: Int) {
    let lo = base < 0 ? min(count, (-base + s - 1) / s) : 0
    let last = w - 1 - base
    let hi = last < 0 ? 0 : min(count, last / s + 1)
    return (lo, max(hi, lo))
}

/// Writes columns [j0, j1) of the im2col matrix of channels [c0, c0 + cCount) into `col`
/// (row r = (c - c0) * KH*KW + ky*KW + kx, column j - j0, row stride `ldcol`).
/// Column j indexes output pixels image-major: j = n * OH*OW + oy * OW + ox. Out-of-image taps are 0.
public func im2col(
    col: UnsafeMutablePointer<Float>, ldcol: Int,
    input: UnsafePointer<Float>, layout: PlaneLayout,
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
                let dstRow = col + (ci * kk + ky * g.kernelW + kx) * ldcol - j0
                var j = j0
                while j < j1 {
                    let n = j / ohw, p = j - n * ohw
                    let oy = p / ow, ox = p - oy * ow
                    let cnt = min(ow - ox, j1 - j)
                    let dst = dstRow + j
                    let iy = oy * s - pad + ky
                    if iy < 0 || iy >= h {
                        dst.update(repeating: 0, count: cnt)
                    } else {
                        let src = input + n * layout.imageStride + (c0 + ci) * layout.channelStride + iy * w
                        let base = ox * s - pad + kx
                        let (tlo, thi) = validTaps(base: base, count: cnt, stride: s, width: w)
                        if tlo > 0 { dst.update(repeating: 0, count: tlo) }
                        if s == 1 {
                            (dst + tlo).update(from: src + base + tlo, count: thi - tlo)
                        } else {
                            var t = tlo
                            var ix = base + tlo * s
                            if s == 2 {
                                // 8 taps from 16 consecutive floats of the row (the even ones)
                                while t + 8 <= thi && ix + 16 <= w {
                                    st8(dst + t, UnsafeRawPointer(src + ix).loadUnaligned(as: SIMD16<Float>.self).evenHalf)
                                    t += 8; ix += 16
                                }
                            }
                            while t < thi { dst[t] = src[ix]; t += 1; ix += s }
                        }
                        if thi < cnt { (dst + thi).update(repeating: 0, count: cnt - thi) }
                    }
                    j += cnt
                }
            }
        }
    }
}

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
                        let (tlo, thi) = validTaps(base: base, count: cnt, stride: s, width: w)
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

// MARK: - Epilogue

/// out[r, j] = act(out[r, j] + bias[r] + residual[r, j]) over rows [r0, r1) and columns [j0, j1).
@inline(__always)
public func biasActivationEpilogue(
    _ out: UnsafeMutablePointer<Float>, ld: Int, rows r0: Int, _ r1: Int, columns j0: Int, _ j1: Int,
    bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation
) {
    for r in r0..<r1 {
        let b = bias?[r] ?? 0
        let o = out + r * ld
        if let res = residual {
            let q = res + r * ld
            switch activation {
            case .none: for j in j0..<j1 { o[j] = o[j] + b + q[j] }
            case .relu: for j in j0..<j1 { o[j] = max(o[j] + b + q[j], 0) }
            case .relu6: for j in j0..<j1 { o[j] = min(max(o[j] + b + q[j], 0), 6) }
            }
        } else {
            switch activation {
            case .none: if b != 0 { for j in j0..<j1 { o[j] = o[j] + b } }
            case .relu: for j in j0..<j1 { o[j] = max(o[j] + b, 0) }
            case .relu6: for j in j0..<j1 { o[j] = min(max(o[j] + b, 0), 6) }
            }
        }
    }
}

// MARK: - Convolution forward

/// Floats of scratch `conv2dForward` wants for a given column chunk size (per worker).
public func conv2dScratchCount(_ g: ConvGeometry, chunkColumns: Int, workers: Int) -> Int {
    // (column pieces: one chunk per worker; row blocks: one shared chunk)
    g.isPointwise ? 0 : g.inChannels * g.kernelH * g.kernelW * chunkColumns * max(1, workers)
}

/// How `conv2dForward` cuts its work: column chunks of `chunk` columns, and output rows in blocks of
/// `rowBlock` when there are too few chunks to share. Depends on the shape only, never on the
/// worker count (see `Grain`).
public struct ConvPlan: Sendable {
    public let chunk: Int, chunks: Int, rowBlock: Int
    /// True: the chunks run in parallel, each with its own scratch; false: the chunks run one after
    /// another and the row blocks of each run in parallel.
    public var byColumns: Bool { rowBlock == 0 }

    /// `budget`: scratch floats of one piece's im2col (`Grain.chunkFloats`, or less when the caller's
    /// whole scratch is smaller, which only tests do).
    public init(columns cols: Int, outChannels oc: Int, im2colRows kAll: Int, direct: Bool,
                minColumns: Int = 256, outputChunkFloats: Int = 1 << 17, budget: Int = Grain.chunkFloats) {
        // cache-resident output block, im2col within the per-piece budget, and enough pieces to share
        var c = max(16, outputChunkFloats / max(1, oc))
        if !direct { c = min(c, max(1, budget / max(1, kAll))) }
        c = min(c, blockLength(cols, minimum: max(1, min(minColumns, c))))
        var k = max(1, min(c, cols))
        if (cols + k - 1) / k < 4 {
            // too few chunks to share: the workers will split output channels instead, so the chunk
            // need not be small; as many columns as the im2col budget holds (fewer, larger GEMMs)
            k = direct ? cols : max(1, min(cols, budget / max(1, kAll)))
            rowBlock = blockLength(oc, pieces: 8, multiple: 8, minimum: 16)
        } else {
            rowBlock = 0
        }
        chunk = k
        chunks = (cols + k - 1) / k
    }
}

/// Convolution forward (any stride, padding, groups) over a batch, output in CNHW:
/// output[oc][n][oy][ox] = act(sum_{ci,ky,kx} weight[oc][ci][ky][kx] * x[n][g*icg+ci][oy*s-p+ky][ox*s-p+kx]
///                           + bias[oc] + residual[oc][n][oy][ox]).
/// weight: [OC][IC/groups][KH][KW] (PyTorch's order). input: any `PlaneLayout`.
///
/// Implementation: the output columns (pixels of all images) are processed in chunks small enough
/// to stay in cache: im2col of the chunk into `scratch` (skipped for pointwise convolutions over
/// CNHW input, which read the activation directly), one sgemm per group, then the bias/residual/
/// activation epilogue while the chunk is hot. Parallelism is ours, BLAS runs single-threaded
/// (call `setBLASThreads(1)`). The cut (`ConvPlan`) depends on the shape only: with many chunks the
/// workers take chunks; with few (late layers, small batches) the workers split each chunk's
/// output channels into fixed row blocks. So results do not depend on the worker count.
/// `scratch` must hold `conv2dScratchCount(g, chunkColumns: plan.chunk, workers: 1)` floats; with
/// less than `workers` chunks' worth, fewer workers run.
public func conv2dForward(
    output: UnsafeMutablePointer<Float>,
    input: UnsafePointer<Float>, layout: PlaneLayout,
    batch n: Int, height h: Int, width w: Int,
    geometry g: ConvGeometry,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    residual: UnsafePointer<Float>? = nil, activation: Activation = .none,
    scratch: UnsafeMutablePointer<Float>?, scratchCount: Int,
    workers: Int = 1, minColumnsPerWorker: Int = 256, outputChunkFloats: Int = 1 << 17
) {
    let (oh, ow) = g.outputSize(height: h, width: w)
    let cols = n * oh * ow
    guard cols > 0 else { return }
    let ocg = g.outChannels / g.groups, icg = g.inChannels / g.groups
    let kg = g.groupK, kk = g.kernelH * g.kernelW
    let direct = g.isPointwise && layout.imageStride == h * w && layout.channelStride == n * h * w
    let kAll = g.inChannels * kk
    let plan = ConvPlan(columns: cols, outChannels: g.outChannels, im2colRows: kAll, direct: direct,
                        minColumns: minColumnsPerWorker, outputChunkFloats: outputChunkFloats,
                        budget: min(Grain.chunkFloats, scratchCount))
    let chunk = plan.chunk
    if !direct { precondition(scratch != nil && scratchCount >= kAll * chunk, "conv2dForward: scratch too small") }

    /// Output rows [r0, r1) (within each group's share) of columns [j0, j1), reading im2col `col`.
    func gemmRows(_ col: UnsafePointer<Float>?, _ j0: Int, _ j1: Int, _ r0: Int, _ r1: Int) {
        let nc = j1 - j0
        if direct {
            sgemm(m: r1 - r0, n: nc, k: g.inChannels,
                  a: weight + r0 * g.inChannels, lda: g.inChannels, b: input + j0, ldb: cols,
                  c: output + r0 * cols + j0, ldc: cols)
        } else {
            for gi in 0..<g.groups {
                // rows of this group inside [r0, r1)
                let lo = max(r0, gi * ocg), hi = min(r1, (gi + 1) * ocg)
                if hi <= lo { continue }
                sgemm(m: hi - lo, n: nc, k: kg,
                      a: weight + lo * kg, lda: kg,
                      b: col! + gi * icg * kk * nc, ldb: nc,
                      c: output + lo * cols + j0, ldc: cols)
            }
        }
        biasActivationEpilogue(output, ld: cols, rows: r0, r1, columns: j0, j1,
                               bias: bias, residual: residual, activation: activation)
    }

    if plan.byColumns {
        // Pointwise with scratch to spare: the GEMM writes a cache-resident block (ldc = chunk) and
        // the epilogue streams it to the output once (no write-allocate of the output by BLAS).
        // (staged or not, the arithmetic is the same: `biasActivationEpilogue`'s, so this choice may
        // depend on the workers)
        let perPiece = direct ? chunk * g.outChannels : kAll * chunk
        let staged = direct && scratch != nil && scratchCount >= min(workers, plan.chunks) * perPiece
        let wk = direct && !staged ? workers : max(1, min(workers, scratchCount / max(1, perPiece)))
        parallelPieces(plan.chunks, workers: wk) { worker, piece in
            let j0 = piece * chunk, j1 = min(cols, j0 + chunk)
            let nc = j1 - j0
            if staged {
                let block = scratch! + worker * perPiece
                sgemm(m: g.outChannels, n: nc, k: g.inChannels,
                      a: weight, lda: g.inChannels, b: input + j0, ldb: cols, c: block, ldc: nc)
                for r in 0..<g.outChannels {
                    let bv = bias?[r] ?? 0
                    let src = block + r * nc, dst = output + r * cols + j0
                    if let residual {
                        let q = residual + r * cols + j0
                        switch activation {
                        case .none: for j in 0..<nc { dst[j] = src[j] + bv + q[j] }
                        case .relu: for j in 0..<nc { dst[j] = max(src[j] + bv + q[j], 0) }
                        case .relu6: for j in 0..<nc { dst[j] = min(max(src[j] + bv + q[j], 0), 6) }
                        }
                    } else {
                        switch activation {
                        case .none: if bv != 0 { for j in 0..<nc { dst[j] = src[j] + bv } } else { dst.update(from: src, count: nc) }
                        case .relu: for j in 0..<nc { dst[j] = max(src[j] + bv, 0) }
                        case .relu6: for j in 0..<nc { dst[j] = min(max(src[j] + bv, 0), 6) }
                        }
                    }
                }
                return
            }
            var col: UnsafeMutablePointer<Float>? = nil
            if !direct {
                col = scratch! + worker * perPiece
                im2col(col: col!, ldcol: nc, input: input, layout: layout, height: h, width: w, g: g,
                       channels: 0, g.inChannels, columns: j0, j1)
            }
            gemmRows(col, j0, j1, 0, g.outChannels)
        }
    } else {
        let rb = plan.rowBlock
        let blocks = (g.outChannels + rb - 1) / rb
        for piece in 0..<plan.chunks {
            let j0 = piece * chunk, j1 = min(cols, j0 + chunk)
            var col: UnsafeMutablePointer<Float>? = nil
            if !direct {
                let c = scratch!
                col = c
                // im2col split by input channels (disjoint row blocks of col; a copy, so any split)
                parallelSlices(g.inChannels, workers: workers) { _, chans in
                    im2col(col: c + chans.lowerBound * kk * (j1 - j0), ldcol: j1 - j0, input: input, layout: layout,
                           height: h, width: w, g: g, channels: chans.lowerBound, chans.count, columns: j0, j1)
                }
            }
            let colPointer = UncheckedSendable(col.map { UnsafePointer($0) })
            parallelPieces(blocks, workers: workers) { _, b in
                gemmRows(colPointer.value, j0, j1, b * rb, min(g.outChannels, (b + 1) * rb))
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
