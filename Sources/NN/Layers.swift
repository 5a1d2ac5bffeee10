// Layer forward kernels, llm.c style: one plain function per layer, pointers in, pointers out,
// no allocation. Backward functions (and training-mode BatchNorm) belong next to each forward.
//
// Activation layout. A batch of N images with C channels of H x W is stored as C*N planes of
// H*W floats. Two plane orders are used:
//   NCHW (PyTorch's): plane (n, c) at offset (n*C + c)*H*W   -> imageStride = C*H*W, channelStride = H*W
//   CNHW (ours, inside networks): plane (c, n) at (c*N + n)*H*W -> imageStride = H*W,  channelStride = N*H*W
// CNHW makes a convolution over the whole batch ONE matrix product,
//   out[OC x N*OH*OW] = W[OC x IC*KH*KW] * col[IC*KH*KW x N*OH*OW],
// whose result is directly the CNHW output (each output channel one contiguous row), so the GEMMs
// stay large even for 7x7 maps, bias/activation epilogues run over contiguous rows, and 1x1
// stride-1 convolutions need no im2col at all. Plane-wise kernels (pooling, depthwise, BatchNorm)
// only need to know each plane's channel. `conv2dForward` reads either layout (see `PlaneLayout`),
// so the network input stays NCHW as PyTorch gives it.

import Parallelism

/// Where plane (image n, channel c) of an activation starts: n * imageStride + c * channelStride.
public struct PlaneLayout: Sendable, Equatable {
    public var imageStride: Int
    public var channelStride: Int
    public init(imageStride: Int, channelStride: Int) {
        self.imageStride = imageStride
        self.channelStride = channelStride
    }
    /// PyTorch's NCHW layout.
    public static func nchw(channels: Int, height: Int, width: Int) -> PlaneLayout {
        PlaneLayout(imageStride: channels * height * width, channelStride: height * width)
    }
    /// The channel-major CNHW layout used inside networks.
    public static func cnhw(batch: Int, height: Int, width: Int) -> PlaneLayout {
        PlaneLayout(imageStride: height * width, channelStride: batch * height * width)
    }
}

/// Element-wise activation fused into convolution epilogues.
public enum Activation: Sendable, Equatable {
    case none, relu, relu6
}

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

// MARK: - im2col

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
                        // valid t: 0 <= (ox+t)*s - pad + kx < w
                        let base = ox * s - pad + kx
                        var tlo = 0
                        if base < 0 { tlo = min(cnt, (-base + s - 1) / s) }
                        var thi = cnt
                        let lastOK = (w - 1 - base)  // t*s <= lastOK
                        if lastOK < 0 { thi = 0 } else { thi = min(cnt, lastOK / s + 1) }
                        if thi < tlo { thi = tlo }
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

// MARK: - Convolution

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

// MARK: - Depthwise 3x3

/// Scratch floats per worker for `depthwiseConv3x3Forward`: one zero-padded input plane.
public func depthwiseScratchCount(height h: Int, width w: Int) -> Int {
    (h + 2) * (w + 24)
}

/// Depthwise 3x3 convolution (groups == channels), padding 1, stride 1 or 2, CNHW in and out,
/// fused bias and activation: out[c][n] = act(conv(x[c][n], weight[c]) + bias[c]).
/// weight: [C][1][3][3]. Planes are split between workers; each copies its plane into a
/// zero-padded scratch (cache resident) and runs an 8-wide SIMD loop (stride 1) over each row.
/// `scratch` holds `workers * depthwiseScratchCount(height:width:)` floats.
public func depthwiseConv3x3Forward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    channels c: Int, batch n: Int, height h: Int, width w: Int, stride: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, activation: Activation,
    scratch: UnsafeMutablePointer<Float>, workers: Int = 1
) {
    let oh = (h + 2 - 3) / stride + 1, ow = (w + 2 - 3) / stride + 1
    let pw = w + 24
    let half = (w + 3) / 2 + 9   // stride 2: each padded row stored as even | odd columns
    let per = depthwiseScratchCount(height: h, width: w)
    let planes = c * n
    let wk = max(1, min(workers, planes))
    parallelSlices(planes, workers: wk) { worker, slice in
        let pad = scratch + worker * per
        // zero the border once (rows 0 and h+1, columns 0 and w+1 are never overwritten)
        pad.update(repeating: 0, count: per)
        for plane in slice {
            let ch = plane / n
            let src = input + plane * h * w
            let dst = output + plane * oh * ow
            let k = weight + ch * 9
            let b = bias?[ch] ?? 0
            if stride == 1 {
                for y in 0..<h { (pad + (y + 1) * pw + 1).update(from: src + y * w, count: w) }
                switch activation {
                case .none: depthwiseRowsStride1(IdentityActivation.self, dst: dst, pad: pad, pw: pw, oh: oh, ow: ow, k: k, b: b)
                case .relu: depthwiseRowsStride1(ReLUActivation.self, dst: dst, pad: pad, pw: pw, oh: oh, ow: ow, k: k, b: b)
                case .relu6: depthwiseRowsStride1(ReLU6Activation.self, dst: dst, pad: pad, pw: pw, oh: oh, ow: ow, k: k, b: b)
                }
            } else if stride == 2 {
                // padded x' = x + 1; E[i] = P[2i] (src[2i - 1]), O[i] = P[2i + 1] (src[2i]);
                // output ox reads E[ox], O[ox], E[ox + 1]: contiguous 8-wide loads
                for y in 0..<h {
                    let e = pad + (y + 1) * pw
                    splitPaddedRow(src + y * w, count: w, even: e, odd: e + half)
                }
                switch activation {
                case .none: depthwiseRowsStride2(IdentityActivation.self, dst: dst, pad: pad, pw: pw, half: half, oh: oh, ow: ow, k: k, b: b)
                case .relu: depthwiseRowsStride2(ReLUActivation.self, dst: dst, pad: pad, pw: pw, half: half, oh: oh, ow: ow, k: k, b: b)
                case .relu6: depthwiseRowsStride2(ReLU6Activation.self, dst: dst, pad: pad, pw: pw, half: half, oh: oh, ow: ow, k: k, b: b)
                }
            } else {
                for y in 0..<h { (pad + (y + 1) * pw + 1).update(from: src + y * w, count: w) }
                let k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8]
                for oy in 0..<oh {
                    let r0 = pad + (oy * stride) * pw, r1 = r0 + pw, r2 = r1 + pw
                    let o = dst + oy * ow
                    for ox in 0..<ow {
                        let x = ox * stride
                        var v = b
                        v += k0 * r0[x] + k1 * r0[x + 1] + k2 * r0[x + 2]
                        v += k3 * r1[x] + k4 * r1[x + 1] + k5 * r1[x + 2]
                        v += k6 * r2[x] + k7 * r2[x + 1] + k8 * r2[x + 2]
                        switch activation {
                        case .none: o[ox] = v
                        case .relu: o[ox] = max(v, 0)
                        case .relu6: o[ox] = min(max(v, 0), 6)
                        }
                    }
                }
            }
        }
    }
}

/// Splits an image row of `w` floats, padded by one on the left (x' = x + 1), into its even and odd
/// padded columns: even[i] = P[2i] (x = 2i - 1), odd[i] = P[2i + 1] (x = 2i), so that a 3-wide
/// stride-2 window at output ox reads even[ox], odd[ox], even[ox + 1]. Entries the row does not
/// reach (even[0], the right edge) keep what the caller put there (its padding).
@inline(__always)
func splitPaddedRow(_ src: UnsafePointer<Float>, count w: Int, even e: UnsafeMutablePointer<Float>, odd o: UnsafeMutablePointer<Float>) {
    var x = 0
    while x + 16 <= w {
        let v = UnsafeRawPointer(src + x).loadUnaligned(as: SIMD16<Float>.self)
        st8(o + x / 2, v.evenHalf)
        st8(e + x / 2 + 1, v.oddHalf)
        x += 16
    }
    while x + 1 < w { o[x / 2] = src[x]; e[x / 2 + 1] = src[x + 1]; x += 2 }
    if x < w { o[x / 2] = src[x] }
}

@inline(never)
private func depthwiseRowsStride2<A: ActivationKind>(
    _: A.Type, dst: UnsafeMutablePointer<Float>, pad: UnsafeMutablePointer<Float>, pw: Int, half: Int, oh: Int, ow: Int,
    k: UnsafePointer<Float>, b: Float
) {
    let k0 = SIMD8<Float>(repeating: k[0]), k1 = SIMD8<Float>(repeating: k[1]), k2 = SIMD8<Float>(repeating: k[2])
    let k3 = SIMD8<Float>(repeating: k[3]), k4 = SIMD8<Float>(repeating: k[4]), k5 = SIMD8<Float>(repeating: k[5])
    let k6 = SIMD8<Float>(repeating: k[6]), k7 = SIMD8<Float>(repeating: k[7]), k8 = SIMD8<Float>(repeating: k[8])
    let bv = SIMD8<Float>(repeating: b)
    for oy in 0..<oh {
        let e0 = UnsafePointer(pad + 2 * oy * pw), e1 = e0 + pw, e2 = e1 + pw
        let o0 = e0 + half, o1 = e1 + half, o2 = e2 + half
        let o = dst + oy * ow
        var x = 0
        while x < ow {
            var v = bv + k0 * ld8(e0 + x)
            var u = k1 * ld8(o0 + x)
            v += k2 * ld8(e0 + x + 1); u += k3 * ld8(e1 + x)
            v += k4 * ld8(o1 + x); u += k5 * ld8(e1 + x + 1)
            v += k6 * ld8(e2 + x); u += k7 * ld8(o2 + x)
            v += k8 * ld8(e2 + x + 1)
            v += u
            v = A.apply(v)
            if x + 8 <= ow {
                UnsafeMutableRawPointer(o + x).storeBytes(of: v, as: SIMD8<Float>.self)
            } else {
                for t in 0..<(ow - x) { o[x + t] = v[t] }
            }
            x += 8
        }
    }
}

@inline(never)
private func depthwiseRowsStride1<A: ActivationKind>(
    _: A.Type, dst: UnsafeMutablePointer<Float>, pad: UnsafeMutablePointer<Float>, pw: Int, oh: Int, ow: Int,
    k: UnsafePointer<Float>, b: Float
) {
    let k0 = SIMD8<Float>(repeating: k[0]), k1 = SIMD8<Float>(repeating: k[1]), k2 = SIMD8<Float>(repeating: k[2])
    let k3 = SIMD8<Float>(repeating: k[3]), k4 = SIMD8<Float>(repeating: k[4]), k5 = SIMD8<Float>(repeating: k[5])
    let k6 = SIMD8<Float>(repeating: k[6]), k7 = SIMD8<Float>(repeating: k[7]), k8 = SIMD8<Float>(repeating: k[8])
    let bv = SIMD8<Float>(repeating: b)
    // The padded row has 16 spare floats, so an 8-wide load at x <= ow - 1 + 2 stays inside the row;
    // the last vector may compute up to 7 extra outputs, which are not stored.
    for oy in 0..<oh {
        let r0 = UnsafePointer(pad + oy * pw), r1 = r0 + pw, r2 = r1 + pw
        let o = dst + oy * ow
        var x = 0
        while x < ow {
            var v = bv + k0 * ld8(r0 + x)
            var u = k1 * ld8(r0 + x + 1)
            v += k2 * ld8(r0 + x + 2); u += k3 * ld8(r1 + x)
            v += k4 * ld8(r1 + x + 1); u += k5 * ld8(r1 + x + 2)
            v += k6 * ld8(r2 + x); u += k7 * ld8(r2 + x + 1)
            v += k8 * ld8(r2 + x + 2)
            v += u
            v = A.apply(v)
            if x + 8 <= ow {
                UnsafeMutableRawPointer(o + x).storeBytes(of: v, as: SIMD8<Float>.self)
            } else {
                for t in 0..<(ow - x) { o[x + t] = v[t] }
            }
            x += 8
        }
    }
}

// MARK: - BatchNorm (eval), activations

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

public func reluForward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = max(x[i], 0) }
}

public func relu6Forward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = min(max(x[i], 0), 6) }
}

// MARK: - Pooling

/// Max pooling (kernel k, stride s, padding p; padding never wins, like PyTorch) over `planes`
/// planes of h x w; output planes of oh x ow in the same plane order.
public func maxPool2dForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    planes: Int, height h: Int, width w: Int, kernel k: Int = 3, stride s: Int = 2, padding p: Int = 1,
    workers: Int = 1
) {
    let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
    if k == 3 && s == 2 && p == 1 && w >= 2 {
        // ResNet's pool: column maxima of the (up to) 3 rows, then 3-wide maxima at stride 2
        parallelSlices(planes, workers: workers) { _, slice in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: w) { colmax in
                let m = colmax.baseAddress!
                for plane in slice {
                    let x = input + plane * h * w, y = output + plane * oh * ow
                    for oy in 0..<oh {
                        let r0 = max(0, 2 * oy - 1), r1 = min(h - 1, 2 * oy + 1)
                        let a = x + r0 * w
                        m.update(from: a, count: w)
                        var r = r0 + 1
                        while r <= r1 {
                            let b = x + r * w
                            for i in 0..<w { m[i] = max(m[i], b[i]) }
                            r += 1
                        }
                        let o = y + oy * ow
                        o[0] = max(m[0], m[1])
                        for ox in 1..<ow {
                            let c = 2 * ox
                            o[ox] = c + 1 < w ? max(max(m[c - 1], m[c]), m[c + 1]) : max(m[c - 1], m[c])
                        }
                    }
                }
            }
        }
        return
    }
    parallelSlices(planes, workers: workers) { _, slice in
        for plane in slice {
            let x = input + plane * h * w, y = output + plane * oh * ow
            for oy in 0..<oh {
                let y0 = max(0, oy * s - p), y1 = min(h, oy * s - p + k)
                for ox in 0..<ow {
                    let x0 = max(0, ox * s - p), x1 = min(w, ox * s - p + k)
                    var m = -Float.infinity
                    for iy in y0..<y1 { for ix in x0..<x1 { m = max(m, x[iy * w + ix]) } }
                    y[oy * ow + ox] = m
                }
            }
        }
    }
}

/// Adaptive average pooling to 1x1 of a CNHW activation: out[n][c] = mean over plane (c, n).
/// Output is (N, C) row-major, i.e. PyTorch's flattened features.
public func globalAvgPoolForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    channels c: Int, batch n: Int, hw: Int
) {
    let inv = 1 / Float(hw)
    for ch in 0..<c {
        for img in 0..<n {
            let x = input + (ch * n + img) * hw
            var s: Float = 0
            for i in 0..<hw { s += x[i] }
            output[img * c + ch] = s * inv
        }
    }
}

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
