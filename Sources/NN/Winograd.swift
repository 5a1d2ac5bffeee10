// Winograd F(2x2, 3x3) for 3x3, stride 1, padding 1, ungrouped convolutions (most of ResNet-18's
// work): 16 multiplies per 2x2 output tile and channel pair instead of 36.
//   U = G g G^T (weights), V = B^T d B (4x4 input patches), M = U . V per position
//   (16 GEMMs: M[xi] (OC x tiles) = U[xi] (OC x IC) * V[xi] (IC x tiles)), Y = A^T M A (2x2).
// Training uses all three passes: the forward, the input gradient (the same forward with U read
// flipped and transposed) and the weight gradient (dU = sum over tiles of (A dY A^T) V^T, then
// G^T dU G). Activations are CNHW (see Layout.swift). Tiles are processed in cache-sized chunks, the
// bias/residual/activation epilogue fused into the output transform. Round-off stays at float32
// level (the transforms only add, subtract and halve). Winograd4.swift has F(4x4, 3x3) for inference.

import Parallelism

/// Transformed weights [16][OC][IC] from PyTorch's [OC][IC][3][3].
public func winogradTransformWeights(_ g: UnsafePointer<Float>, outChannels oc: Int, inChannels ic: Int) -> [Float] {
    var u = [Float](repeating: 0, count: 16 * oc * ic)
    u.withUnsafeMutableBufferPointer { winogradTransformWeights(into: $0.baseAddress!, g, outChannels: oc, inChannels: ic) }
    return u
}

/// Writes the transformed weights U = G g G^T, [16][OC][IC], of PyTorch's [OC][IC][3][3] weights `g`
/// into `u` (16 * OC * IC floats), output channels split between `workers`. No allocation, so a
/// training step can afford it after every weight update.
public func winogradTransformWeights(into u: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                                     outChannels oc: Int, inChannels ic: Int, workers: Int = 1) {
    let plane = oc * ic
    let box = UncheckedSendable((u, g))
    parallelSlices(oc, workers: oc * ic >= 4096 ? workers : 1) { _, os in
        let (u, g) = box.value
        for o in os {
            let dst = u + o * ic
            for i in 0..<ic {
                let k = g + (o * ic + i) * 9
                // Gg: 4x3, rows [g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2] (g rows); then each row r of Gg
                // becomes [a, (a+b+c)/2, (a-b+c)/2, c] (times G^T).
                for r in 0..<4 {
                    let a: Float, b: Float, c: Float
                    switch r {
                    case 0: a = k[0]; b = k[1]; c = k[2]
                    case 1: a = (k[0] + k[3] + k[6]) * 0.5; b = (k[1] + k[4] + k[7]) * 0.5; c = (k[2] + k[5] + k[8]) * 0.5
                    case 2: a = (k[0] - k[3] + k[6]) * 0.5; b = (k[1] - k[4] + k[7]) * 0.5; c = (k[2] - k[5] + k[8]) * 0.5
                    default: a = k[6]; b = k[7]; c = k[8]
                    }
                    let d = dst + r * 4 * plane + i
                    d[0] = a
                    d[plane] = (a + b + c) * 0.5
                    d[2 * plane] = (a - b + c) * 0.5
                    d[3 * plane] = c
                }
            }
        }
    }
}

/// Position of U[xi] that serves the flipped kernel: G J = P G, where J reverses the 3 taps and P
/// swaps rows 0 and 3 of G, so the transform of a flipped kernel is U with positions 0 and 3 of
/// each axis exchanged.
@inline(__always) func winogradFlippedPosition(_ xi: Int) -> Int {
    let r = xi >> 2, c = xi & 3
    return (r == 0 ? 3 : r == 3 ? 0 : r) * 4 + (c == 0 ? 3 : c == 3 ? 0 : c)
}

/// Scratch floats per worker for a chunk of `tiles` tiles (plus row buffers).
public func winogradScratchCount(inChannels ic: Int, outChannels oc: Int, tiles: Int) -> Int {
    16 * (ic + oc) * tiles + 8 * (tiles + 16)
}

/// 3x3 / stride 1 / padding 1 convolution of a CNHW activation by Winograd F(2x2, 3x3), output
/// CNHW: out = act(conv(x) + bias + residual). `u` from `winogradTransformWeights`. `residual` may be
/// `output` itself (each value is read before it is written), which accumulates into `output`.
/// `flippedTransposed`: `u` is the transform of the weights of the convolution with `inChannels` and
/// `outChannels` exchanged ([16][outChannels][inChannels] of this call), and the kernel convolved is
/// those weights flipped and transposed: the input gradient of that convolution, dX = conv(dY), with
/// the U the forward pass already made.
/// Tiles are taken a tile row (one image, two output rows) at a time; a chunk of tile rows is
/// transformed into V, multiplied into M by 16 GEMMs and transformed back with the epilogue.
/// With many tile rows the workers split them; with few, the workers split channels.
/// `scratch` holds `scratchCount` floats (at least `workers * winogradScratchCount(tiles: width/2+1)`).
public func conv3x3WinogradForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    batch n: Int, inChannels ic: Int, outChannels oc: Int, height h: Int, width w: Int,
    u: UnsafePointer<Float>, flippedTransposed: Bool = false,
    bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation,
    scratch: UnsafeMutablePointer<Float>, scratchCount: Int, workers: Int = 1, minTilesPerWorker: Int = 64
) {
    let th = (h + 1) / 2, tw = (w + 1) / 2
    let tileRows = n * th
    guard tileRows > 0 else { return }
    let pw = tw + 16                          // one de-interleaved half row (+ room for 8-wide loads)
    let rowBuffers = 8 * pw                   // 4 input rows as even/odd halves (or 2 output rows)
    let hw = h * w, planeStride = n * hw

    let tiles = WinogradTiles(input: input, batch: n, channels: ic, height: h, width: w)
    func inputTransform(_ v: UnsafeMutablePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                        _ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int) {
        tiles.inputTransform(v, rowbuf, r0, r1, c0, c1)
    }

    /// Output channels [o0, o1) of tile rows [r0, r1) from M[xi][o][t], with the epilogue.
    /// Even and odd output columns are produced 8 tiles at a time into separate half rows.
    func outputTransform(_ m: UnsafePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                         _ r0: Int, _ r1: Int, _ o0: Int, _ o1: Int) {
        let nc = (r1 - r0) * tw
        let xs = oc * nc
        let ye0 = rowbuf, yo0 = rowbuf + pw, ye1 = yo0 + pw, yo1 = ye1 + pw
        for o in o0..<o1 {
            let b = bias?[o] ?? 0
            for r in r0..<r1 {
                let img = r / th, ti = r - img * th
                let s = m + o * nc + (r - r0) * tw
                var j = 0
                while j + 8 <= tw {
                    let q = s + j
                    let a0 = ld8(q) + ld8(q + 4 * xs) + ld8(q + 8 * xs), c0 = ld8(q + 4 * xs) - ld8(q + 8 * xs) - ld8(q + 12 * xs)
                    let a1 = ld8(q + xs) + ld8(q + 5 * xs) + ld8(q + 9 * xs), c1 = ld8(q + 5 * xs) - ld8(q + 9 * xs) - ld8(q + 13 * xs)
                    let a2 = ld8(q + 2 * xs) + ld8(q + 6 * xs) + ld8(q + 10 * xs), c2 = ld8(q + 6 * xs) - ld8(q + 10 * xs) - ld8(q + 14 * xs)
                    let a3 = ld8(q + 3 * xs) + ld8(q + 7 * xs) + ld8(q + 11 * xs), c3 = ld8(q + 7 * xs) - ld8(q + 11 * xs) - ld8(q + 15 * xs)
                    st8(ye0 + j, a0 + a1 + a2); st8(yo0 + j, a1 - a2 - a3)
                    st8(ye1 + j, c0 + c1 + c2); st8(yo1 + j, c1 - c2 - c3)
                    j += 8
                }
                while j < tw {
                    let q = s + j
                    let a0 = q[0] + q[4 * xs] + q[8 * xs], c0 = q[4 * xs] - q[8 * xs] - q[12 * xs]
                    let a1 = q[xs] + q[5 * xs] + q[9 * xs], c1 = q[5 * xs] - q[9 * xs] - q[13 * xs]
                    let a2 = q[2 * xs] + q[6 * xs] + q[10 * xs], c2 = q[6 * xs] - q[10 * xs] - q[14 * xs]
                    let a3 = q[3 * xs] + q[7 * xs] + q[11 * xs], c3 = q[7 * xs] - q[11 * xs] - q[15 * xs]
                    ye0[j] = a0 + a1 + a2; yo0[j] = a1 - a2 - a3
                    ye1[j] = c0 + c1 + c2; yo1[j] = c1 - c2 - c3
                    j += 1
                }
                let oy = 2 * ti
                for k in 0..<min(2, h - oy) {
                    let ye = k == 0 ? ye0 : ye1, yo = k == 0 ? yo0 : yo1
                    let off = o * planeStride + img * hw + (oy + k) * w
                    let dst = output + off
                    let res = residual.map { UnsafePointer($0 + off) }
                    switch activation {
                    case .none: interleaveRows(IdentityActivation.self, dst, ye, yo, w, b, res)
                    case .relu: interleaveRows(ReLUActivation.self, dst, ye, yo, w, b, res)
                    case .relu6: interleaveRows(ReLU6Activation.self, dst, ye, yo, w, b, res)
                    }
                }
            }
        }
    }

    func gemms(_ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ nc: Int, _ o0: Int, _ o1: Int) {
        guard flippedTransposed else {
            winogradGemms(positions: 16, u: u, inChannels: ic, outChannels: oc, v: v, m: m, tiles: nc, o0, o1)
            return
        }
        for xi in 0..<16 {
            // U of the forward convolution, [16][ic][oc]: A[xi] = U[flipped(xi)]^T
            sgemm(transA: true, m: o1 - o0, n: nc, k: ic,
                  a: u + winogradFlippedPosition(xi) * ic * oc + o0, lda: oc,
                  b: v + xi * ic * nc, ldb: nc,
                  c: m + xi * oc * nc + o0 * nc, ldc: nc)
        }
    }

    winogradSchedule(positions: 16, tileRows: tileRows, tilesPerRow: tw, inChannels: ic, outChannels: oc,
                     rowBuffers: rowBuffers, minTiles: minTilesPerWorker,
                     workers: workers, scratch: scratch, scratchCount: scratchCount,
                     input: inputTransform, gemms: gemms, output: outputTransform)
}

/// dst[x] = act(half[x / 2] + b + residual[x]) for x < w, `half` = even (x even) or odd (x odd):
/// an output row of the transform back, 16 values at a time. `residual` may be `dst`.
@inline(__always)
private func interleaveRows<A: ActivationKind>(_: A.Type, _ dst: UnsafeMutablePointer<Float>, _ even: UnsafePointer<Float>,
                                               _ odd: UnsafePointer<Float>, _ w: Int, _ b: Float, _ residual: UnsafePointer<Float>?) {
    let bv = SIMD16<Float>(repeating: b)
    var x = 0
    while x + 16 <= w {
        var v = SIMD16<Float>()
        v.evenHalf = ld8(even + x / 2)
        v.oddHalf = ld8(odd + x / 2)
        v += bv
        if let residual { v += UnsafeRawPointer(residual + x).loadUnaligned(as: SIMD16<Float>.self) }
        st8(dst + x, A.apply(v.lowHalf))
        st8(dst + x + 8, A.apply(v.highHalf))
        x += 16
    }
    while x < w {
        var t = (x & 1 == 0 ? even[x / 2] : odd[x / 2]) + b
        if let residual { t += residual[x] }
        dst[x] = A.apply(t)
        x += 1
    }
}

/// The per-position products of a chunk of `nc` tiles: rows [o0, o1) of M[xi] = U[xi] (OC x IC) *
/// V[xi] (IC x tiles), for each of the `positions` positions.
func winogradGemms(positions: Int, u: UnsafePointer<Float>, inChannels ic: Int, outChannels oc: Int,
                   v: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>, tiles nc: Int, _ o0: Int, _ o1: Int) {
    for xi in 0..<positions {
        sgemm(m: o1 - o0, n: nc, k: ic,
              a: u + (xi * oc + o0) * ic, lda: ic,
              b: v + xi * ic * nc, ldb: nc,
              c: m + xi * oc * nc + o0 * nc, ldc: nc)
    }
}

/// Tile rows per chunk of a Winograd pass: `Grain.chunkFloats` of scratch (less only when the caller's
/// whole scratch is smaller, which only tests do), and enough chunks to share (not below `minTiles`
/// tiles each). Depends on the shape only.
func winogradChunkRows(positions: Int, tileRows: Int, tilesPerRow tw: Int, inChannels ic: Int, outChannels oc: Int,
                       rowBuffers: Int, minTiles: Int, scratchCount: Int) -> Int {
    let fit = max(1, (min(Grain.chunkFloats, scratchCount) - rowBuffers) / max(1, positions * (ic + oc) * tw))
    let share = max(blockLength(tileRows, multiple: 1, minimum: 1), (minTiles + tw - 1) / max(1, tw))
    return max(1, min(tileRows, fit, share))
}

/// The chunked, parallel schedule of the Winograd forwards (`positions` = 16 for F(2x2, 3x3), 36 for
/// F(4x4, 3x3)): V, M and row buffers per chunk of tile rows (`winogradChunkRows`). With at least 4
/// chunks the workers take chunks and run input transform, GEMMs and output transform on their own
/// slot of scratch; otherwise (few tiles) the chunks run in turn and the workers split the input
/// channels (transform) and fixed blocks of output channels (GEMMs and transform back). The cut
/// depends on the shape only, so results do not depend on the worker count. `scratch` holds at least
/// one chunk's V, M and row buffers; with less than `workers` slots, fewer workers run.
func winogradSchedule(
    positions: Int, tileRows: Int, tilesPerRow tw: Int, inChannels ic: Int, outChannels oc: Int,
    rowBuffers: Int, minTiles: Int, workers: Int,
    scratch: UnsafeMutablePointer<Float>, scratchCount: Int,
    input: (_ v: UnsafeMutablePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int) -> Void,
    gemms: (_ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ tiles: Int, _ o0: Int, _ o1: Int) -> Void,
    output: (_ m: UnsafePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int, _ o0: Int, _ o1: Int) -> Void
) {
    let chunkRows = winogradChunkRows(positions: positions, tileRows: tileRows, tilesPerRow: tw, inChannels: ic,
                                      outChannels: oc, rowBuffers: rowBuffers, minTiles: minTiles, scratchCount: scratchCount)
    let chunks = (tileRows + chunkRows - 1) / chunkRows
    let vm = positions * (ic + oc) * chunkRows * tw
    precondition(vm + rowBuffers <= scratchCount, "Winograd: scratch too small")
    if chunks >= 4 {
        let perSlot = vm + rowBuffers
        parallelPieces(chunks, workers: max(1, min(workers, scratchCount / perSlot))) { worker, piece in
            let v = scratch + worker * perSlot
            let m = v + positions * ic * chunkRows * tw
            let rowbuf = m + positions * oc * chunkRows * tw
            let r0 = piece * chunkRows, r1 = min(tileRows, r0 + chunkRows)
            input(v, rowbuf, r0, r1, 0, ic)
            gemms(v, m, (r1 - r0) * tw, 0, oc)
            output(m, rowbuf, r0, r1, 0, oc)
        }
    } else {
        let wk = max(1, min(workers, (scratchCount - vm) / rowBuffers))
        let v = scratch, m = scratch + positions * ic * chunkRows * tw
        let rowBase = scratch + vm
        let ob = blockLength(oc, pieces: 8, multiple: 8, minimum: 8)
        for piece in 0..<chunks {
            let r0 = piece * chunkRows, r1 = min(tileRows, r0 + chunkRows)
            parallelSlices(ic, workers: wk) { wi, cs in input(v, rowBase + wi * rowBuffers, r0, r1, cs.lowerBound, cs.upperBound) }
            parallelPieces((oc + ob - 1) / ob, workers: wk) { wi, b in
                let o0 = b * ob, o1 = min(oc, o0 + ob)
                gemms(v, m, (r1 - r0) * tw, o0, o1)
                output(m, rowBase + wi * rowBuffers, r0, r1, o0, o1)
            }
        }
    }
}

/// Scratch floats for `conv3x3WinogradBackwardWeight` with chunks of `tiles` tiles and `workers` workers.
public func winogradBackwardWeightScratchCount(inChannels ic: Int, outChannels oc: Int, tiles: Int, workers: Int) -> Int {
    16 * (ic + oc) * tiles + workers * 8 * (tiles + 16)
}

/// Weight gradient of a 3x3 / stride 1 / padding 1 convolution (`conv3x3WinogradForward`) by the same
/// F(2x2, 3x3) algorithm: with V = B^T d B per input patch and dM = A dY A^T per 2x2 output-gradient
/// tile, dU[xi] (OC x IC) = sum over tiles of dM[xi] V[xi]^T (16 GEMMs with K = tiles: 16 multiplies
/// per tile and channel pair instead of 36), and gradWeight += G^T dU G. Input and dY are CNHW;
/// gradWeight is PyTorch's [OC][IC][3][3] and is accumulated (+=). `gradU` holds 16 * OC * IC floats.
/// Tiles go in chunks of fixed size; the workers split input channels (V) and fixed blocks of output
/// channels (dM, GEMMs), so the result does not depend on the number of workers.
public func conv3x3WinogradBackwardWeight(
    gradWeight: UnsafeMutablePointer<Float>, gradOutput dy: UnsafePointer<Float>, input: UnsafePointer<Float>,
    batch n: Int, inChannels ic: Int, outChannels oc: Int, height h: Int, width w: Int,
    gradU: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, workers: Int = 1
) {
    let tiles = WinogradTiles(input: input, batch: n, channels: ic, height: h, width: w)
    let th = tiles.th, tw = tiles.tw, pw = tiles.pw, hw = tiles.hw, planeStride = tiles.planeStride
    let tileRows = n * th
    guard tileRows > 0, ic > 0, oc > 0 else { return }
    let rowBuffers = 8 * pw
    // chunks of fixed size (the sums over tiles run chunk after chunk in the same order for any
    // worker count); the workers split input channels (V) and fixed blocks of output channels
    let chunkRows = max(1, min(tileRows, (min(Grain.chunkFloats, scratchCount) - rowBuffers) / max(1, 16 * (ic + oc) * tw)))
    let plane = oc * ic
    let v = scratch, dm = scratch + 16 * ic * chunkRows * tw
    let rowBase = dm + 16 * oc * chunkRows * tw
    precondition(16 * (ic + oc) * chunkRows * tw + rowBuffers <= scratchCount, "Winograd backward: scratch too small")
    let wk = max(1, min(workers, (scratchCount - 16 * (ic + oc) * chunkRows * tw) / rowBuffers))
    let ob = blockLength(oc, pieces: 8, multiple: 8, minimum: 8)
    gradU.update(repeating: 0, count: 16 * plane)

    /// dM[xi][o][t] for output channels [o0, o1) of tile rows [r0, r1): rows [p, q], [p+r, q+s],
    /// [p-r, q-s], [-r, -s] of A dY, each row [a, b] becoming [a, a+b, a-b, -b]. dY outside the
    /// image (odd sizes) is 0.
    func gradTransform(_ rowbuf: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int, _ o0: Int, _ o1: Int) {
        let nc = (r1 - r0) * tw
        let xs = oc * nc
        let e0 = rowbuf, od0 = e0 + pw, e1 = od0 + pw, od1 = e1 + pw
        for o in o0..<o1 {
            for r in r0..<r1 {
                let img = r / th, ti = r - img * th
                let planeBase = dy + o * planeStride + img * hw
                for k in 0..<2 {
                    let e = k == 0 ? e0 : e1, od = k == 0 ? od0 : od1
                    e.update(repeating: 0, count: 2 * pw)
                    let y = 2 * ti + k
                    if y < h {
                        let src = planeBase + y * w
                        var x = 0
                        while x + 16 <= w {
                            let v = UnsafeRawPointer(src + x).loadUnaligned(as: SIMD16<Float>.self)
                            st8(e + x / 2, v.evenHalf); st8(od + x / 2, v.oddHalf)
                            x += 16
                        }
                        while x + 1 < w { e[x / 2] = src[x]; od[x / 2] = src[x + 1]; x += 2 }
                        if x < w { e[x / 2] = src[x] }
                    }
                }
                let d = dm + o * nc + (r - r0) * tw
                var j = 0
                while j + 8 <= tw {
                    let p = ld8(e0 + j), q = ld8(od0 + j), rr = ld8(e1 + j), ss = ld8(od1 + j)
                    let a1 = p + rr, b1 = q + ss, a2 = p - rr, b2 = q - ss
                    let dd = d + j
                    st8(dd, p); st8(dd + xs, p + q); st8(dd + 2 * xs, p - q); st8(dd + 3 * xs, -q)
                    st8(dd + 4 * xs, a1); st8(dd + 5 * xs, a1 + b1); st8(dd + 6 * xs, a1 - b1); st8(dd + 7 * xs, -b1)
                    st8(dd + 8 * xs, a2); st8(dd + 9 * xs, a2 + b2); st8(dd + 10 * xs, a2 - b2); st8(dd + 11 * xs, -b2)
                    st8(dd + 12 * xs, -rr); st8(dd + 13 * xs, -rr - ss); st8(dd + 14 * xs, ss - rr); st8(dd + 15 * xs, ss)
                    j += 8
                }
                while j < tw {
                    let p = e0[j], q = od0[j], rr = e1[j], ss = od1[j]
                    let a1 = p + rr, b1 = q + ss, a2 = p - rr, b2 = q - ss
                    let dd = d + j
                    dd[0] = p; dd[xs] = p + q; dd[2 * xs] = p - q; dd[3 * xs] = -q
                    dd[4 * xs] = a1; dd[5 * xs] = a1 + b1; dd[6 * xs] = a1 - b1; dd[7 * xs] = -b1
                    dd[8 * xs] = a2; dd[9 * xs] = a2 + b2; dd[10 * xs] = a2 - b2; dd[11 * xs] = -b2
                    dd[12 * xs] = -rr; dd[13 * xs] = -rr - ss; dd[14 * xs] = ss - rr; dd[15 * xs] = ss
                    j += 1
                }
            }
        }
    }

    var r0 = 0
    while r0 < tileRows {
        let r1 = min(tileRows, r0 + chunkRows)
        let nc = (r1 - r0) * tw
        parallelSlices(ic, workers: wk) { wi, cs in tiles.inputTransform(v, rowBase + wi * rowBuffers, r0, r1, cs.lowerBound, cs.upperBound) }
        parallelPieces((oc + ob - 1) / ob, workers: wk) { wi, b in
            let os = (b * ob)..<min(oc, (b + 1) * ob)
            gradTransform(rowBase + wi * rowBuffers, r0, r1, os.lowerBound, os.upperBound)
            for xi in 0..<16 {
                sgemm(transB: true, m: os.count, n: ic, k: nc,
                      a: dm + xi * oc * nc + os.lowerBound * nc, lda: nc,
                      b: v + xi * ic * nc, ldb: nc,
                      beta: 1, c: gradU + xi * plane + os.lowerBound * ic, ldc: ic)
            }
        }
        r0 = r1
    }

    // gradWeight[o][i] += G^T dU G: columns then rows of [x0, x1, x2, x3] -> [x0 + (x1+x2)/2, (x1-x2)/2, (x1+x2)/2 + x3]
    let box = UncheckedSendable((gradWeight, UnsafePointer(gradU)))
    parallelSlices(oc, workers: plane >= 4096 ? wk : 1) { _, os in
        let (gw, du) = box.value
        for o in os {
            for i in 0..<ic {
                let q = du + o * ic + i
                @inline(__always) func row(_ r: Int) -> SIMD4<Float> {
                    SIMD4(q[(r * 4) * plane], q[(r * 4 + 1) * plane], q[(r * 4 + 2) * plane], q[(r * 4 + 3) * plane])
                }
                let u0 = row(0), u1 = row(1), u2 = row(2), u3 = row(3)
                let out = gw + (o * ic + i) * 9
                @inline(__always) func put(_ k: Int, _ g: SIMD4<Float>) {
                    out[k * 3] += g[0] + (g[1] + g[2]) * 0.5
                    out[k * 3 + 1] += (g[1] - g[2]) * 0.5
                    out[k * 3 + 2] += (g[1] + g[2]) * 0.5 + g[3]
                }
                put(0, u0 + (u1 + u2) * 0.5)
                put(1, (u1 - u2) * 0.5)
                put(2, (u1 + u2) * 0.5 + u3)
            }
        }
    }
}

/// The tiling of a CNHW activation (`channels` planes of `batch` images, height x width) into the
/// 4x4 input patches of Winograd F(2x2, 3x3) with padding 1: tile row r = (image, ti) covers output
/// rows 2ti, 2ti+1; `tw` tiles per row.
struct WinogradTiles {
    let input: UnsafePointer<Float>
    let n: Int, ic: Int, h: Int, w: Int
    let th: Int, tw: Int, pw: Int, hw: Int, planeStride: Int
    init(input: UnsafePointer<Float>, batch n: Int, channels ic: Int, height h: Int, width w: Int) {
        self.input = input
        self.n = n; self.ic = ic; self.h = h; self.w = w
        th = (h + 1) / 2; tw = (w + 1) / 2
        pw = tw + 16
        hw = h * w; planeStride = n * h * w
    }

/// V[xi][c][t] (t = tile within the chunk) for channels [c0, c1) of tile rows [r0, r1).
/// Each of the 4 input rows of a tile row is zero-padded (x = -1 ..< 2*tw + 1) and split into
/// even and odd columns, so that tile j reads a = E[j], b = O[j], c = E[j+1], d = O[j+1]:
/// contiguous 8-wide loads.
func inputTransform(_ v: UnsafeMutablePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                    _ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int) {
    let nc = (r1 - r0) * tw
    let xs = ic * nc
    for c in c0..<c1 {
        for r in r0..<r1 {
            let img = r / th, ti = r - img * th
            let plane = input + c * planeStride + img * hw
            for k in 0..<4 {
                let e = rowbuf + 2 * k * pw, o = e + pw
                let y = 2 * ti - 1 + k
                e.update(repeating: 0, count: 2 * pw)
                if y >= 0 && y < h {
                    // padded x' = x + 1: even x' -> E[x'/2], odd x' -> O[x'/2]
                    splitPaddedRow(plane + y * w, count: w, even: e, odd: o)
                }
            }
            let e0 = UnsafePointer(rowbuf), o0 = e0 + pw, e1 = o0 + pw, o1 = e1 + pw
            let e2 = o1 + pw, o2 = e2 + pw, e3 = o2 + pw, o3 = e3 + pw
            let dst = v + c * nc + (r - r0) * tw
            var j = 0
            while j + 8 <= tw {
                let a0 = ld8(e0 + j), b0 = ld8(o0 + j), cc0 = ld8(e0 + j + 1), d0 = ld8(o0 + j + 1)
                let a1 = ld8(e1 + j), b1 = ld8(o1 + j), cc1 = ld8(e1 + j + 1), d1 = ld8(o1 + j + 1)
                let a2 = ld8(e2 + j), b2 = ld8(o2 + j), cc2 = ld8(e2 + j + 1), d2 = ld8(o2 + j + 1)
                let a3 = ld8(e3 + j), b3 = ld8(o3 + j), cc3 = ld8(e3 + j + 1), d3 = ld8(o3 + j + 1)
                let f00 = a0 - cc0, f01 = b0 + cc0, f02 = cc0 - b0, f03 = b0 - d0
                let f10 = a1 - cc1, f11 = b1 + cc1, f12 = cc1 - b1, f13 = b1 - d1
                let f20 = a2 - cc2, f21 = b2 + cc2, f22 = cc2 - b2, f23 = b2 - d2
                let f30 = a3 - cc3, f31 = b3 + cc3, f32 = cc3 - b3, f33 = b3 - d3
                let d = dst + j
                st8(d, f00 - f20); st8(d + xs, f01 - f21); st8(d + 2 * xs, f02 - f22); st8(d + 3 * xs, f03 - f23)
                st8(d + 4 * xs, f10 + f20); st8(d + 5 * xs, f11 + f21); st8(d + 6 * xs, f12 + f22); st8(d + 7 * xs, f13 + f23)
                st8(d + 8 * xs, f20 - f10); st8(d + 9 * xs, f21 - f11); st8(d + 10 * xs, f22 - f12); st8(d + 11 * xs, f23 - f13)
                st8(d + 12 * xs, f10 - f30); st8(d + 13 * xs, f11 - f31); st8(d + 14 * xs, f12 - f32); st8(d + 15 * xs, f13 - f33)
                j += 8
            }
            while j < tw {
                let f00 = e0[j] - e0[j + 1], f01 = o0[j] + e0[j + 1], f02 = e0[j + 1] - o0[j], f03 = o0[j] - o0[j + 1]
                let f10 = e1[j] - e1[j + 1], f11 = o1[j] + e1[j + 1], f12 = e1[j + 1] - o1[j], f13 = o1[j] - o1[j + 1]
                let f20 = e2[j] - e2[j + 1], f21 = o2[j] + e2[j + 1], f22 = e2[j + 1] - o2[j], f23 = o2[j] - o2[j + 1]
                let f30 = e3[j] - e3[j + 1], f31 = o3[j] + e3[j + 1], f32 = e3[j + 1] - o3[j], f33 = o3[j] - o3[j + 1]
                let d = dst + j
                d[0] = f00 - f20; d[xs] = f01 - f21; d[2 * xs] = f02 - f22; d[3 * xs] = f03 - f23
                d[4 * xs] = f10 + f20; d[5 * xs] = f11 + f21; d[6 * xs] = f12 + f22; d[7 * xs] = f13 + f23
                d[8 * xs] = f20 - f10; d[9 * xs] = f21 - f11; d[10 * xs] = f22 - f12; d[11 * xs] = f23 - f13
                d[12 * xs] = f10 - f30; d[13 * xs] = f11 - f31; d[14 * xs] = f12 - f32; d[15 * xs] = f13 - f33
                j += 1
            }
        }
    }
}
}

