// Winograd F(2x2, 3x3) convolution forward for 3x3, stride 1, padding 1, ungrouped convolutions
// (most of ResNet-18's work): 16 multiplies per 2x2 output tile and channel pair instead of 36.
//   U = G g G^T (weights, once at load), V = B^T d B (4x4 input patches), M = U . V per position
//   (16 GEMMs: M[xi] (OC x tiles) = U[xi] (OC x IC) * V[xi] (IC x tiles)), Y = A^T M A (2x2).
// Activations are CNHW (see Layers.swift). Tiles are processed in cache-sized chunks, the bias/
// residual/activation epilogue fused into the output transform. Round-off stays at float32 level
// (the transforms only add, subtract and halve).

/// Transformed weights [16][OC][IC] from PyTorch's [OC][IC][3][3].
public func winogradTransformWeights(_ g: UnsafePointer<Float>, outChannels oc: Int, inChannels ic: Int) -> [Float] {
    var u = [Float](repeating: 0, count: 16 * oc * ic)
    for o in 0..<oc {
        for i in 0..<ic {
            let k = g + (o * ic + i) * 9
            // Gg: 4x3, rows [g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2] (g rows)
            var gg = [Float](repeating: 0, count: 12)
            for c in 0..<3 {
                let g0 = k[c], g1 = k[3 + c], g2 = k[6 + c]
                gg[c] = g0
                gg[3 + c] = (g0 + g1 + g2) * 0.5
                gg[6 + c] = (g0 - g1 + g2) * 0.5
                gg[9 + c] = g2
            }
            for r in 0..<4 {
                let a = gg[r * 3], b = gg[r * 3 + 1], c = gg[r * 3 + 2]
                let row = [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c]
                for col in 0..<4 { u[((r * 4 + col) * oc + o) * ic + i] = row[col] }
            }
        }
    }
    return u
}

/// Scratch floats per worker for a chunk of `tiles` tiles (plus row buffers).
public func winogradScratchCount(inChannels ic: Int, outChannels oc: Int, tiles: Int) -> Int {
    16 * (ic + oc) * tiles + 8 * (2 * tiles + 4)
}

/// 3x3 / stride 1 / padding 1 convolution of a CNHW activation by Winograd F(2x2, 3x3), output
/// CNHW: out = act(conv(x) + bias + residual). `u` from `winogradTransformWeights`.
/// Tiles are taken a tile row (one image, two output rows) at a time; a chunk of tile rows is
/// transformed into V, multiplied into M by 16 GEMMs and transformed back with the epilogue.
/// With many tile rows the workers split them; with few, the workers split channels.
/// `scratch` holds `scratchCount` floats (at least `workers * winogradScratchCount(tiles: width/2+1)`).
public func conv3x3WinogradForward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    batch n: Int, inChannels ic: Int, outChannels oc: Int, height h: Int, width w: Int,
    u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation,
    scratch: UnsafeMutablePointer<Float>, scratchCount: Int, workers: Int = 1, minTilesPerWorker: Int = 64
) {
    let th = (h + 1) / 2, tw = (w + 1) / 2
    let tileRows = n * th
    guard tileRows > 0 else { return }
    let splitRows = workers > 1 && tileRows >= workers && tileRows * tw >= workers * minTilesPerWorker
    let wk = splitRows ? workers : 1
    let pw = 2 * tw + 4                       // padded input row: x = -1 ..< 2*tw + 3
    let rowBuffers = 8 * pw                   // 4 input rows (or 2 output rows)
    let perWorker = scratchCount / wk
    let chunkRows = max(1, min(tileRows, (perWorker - rowBuffers) / max(1, 16 * (ic + oc) * tw)))
    let hw = h * w, planeStride = n * hw

    /// V[xi][c][t] (t = tile within the chunk) for channels [c0, c1) of tile rows [r0, r1).
    func inputTransform(_ v: UnsafeMutablePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                        _ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int) {
        let nc = (r1 - r0) * tw
        let xiStride = ic * nc
        for c in c0..<c1 {
            for r in r0..<r1 {
                let img = r / th, ti = r - img * th
                let plane = input + c * planeStride + img * hw
                for k in 0..<4 {
                    let p = rowbuf + k * pw
                    let y = 2 * ti - 1 + k
                    if y < 0 || y >= h {
                        p.update(repeating: 0, count: pw)
                    } else {
                        p[0] = 0
                        (p + 1).update(from: plane + y * w, count: w)
                        (p + 1 + w).update(repeating: 0, count: pw - 1 - w)
                    }
                }
                let p0 = UnsafePointer(rowbuf), p1 = p0 + pw, p2 = p1 + pw, p3 = p2 + pw
                let dst = v + c * nc + (r - r0) * tw
                for j in 0..<tw {
                    let x = 2 * j
                    // columns: (a - c, b + c, c - b, b - d) of each row
                    let e00 = p0[x] - p0[x + 2], e01 = p0[x + 1] + p0[x + 2], e02 = p0[x + 2] - p0[x + 1], e03 = p0[x + 1] - p0[x + 3]
                    let e10 = p1[x] - p1[x + 2], e11 = p1[x + 1] + p1[x + 2], e12 = p1[x + 2] - p1[x + 1], e13 = p1[x + 1] - p1[x + 3]
                    let e20 = p2[x] - p2[x + 2], e21 = p2[x + 1] + p2[x + 2], e22 = p2[x + 2] - p2[x + 1], e23 = p2[x + 1] - p2[x + 3]
                    let e30 = p3[x] - p3[x + 2], e31 = p3[x + 1] + p3[x + 2], e32 = p3[x + 2] - p3[x + 1], e33 = p3[x + 1] - p3[x + 3]
                    let d = dst + j
                    // rows: (r0 - r2, r1 + r2, r2 - r1, r1 - r3)
                    d[0] = e00 - e20; d[xiStride] = e01 - e21; d[2 * xiStride] = e02 - e22; d[3 * xiStride] = e03 - e23
                    d[4 * xiStride] = e10 + e20; d[5 * xiStride] = e11 + e21; d[6 * xiStride] = e12 + e22; d[7 * xiStride] = e13 + e23
                    d[8 * xiStride] = e20 - e10; d[9 * xiStride] = e21 - e11; d[10 * xiStride] = e22 - e12; d[11 * xiStride] = e23 - e13
                    d[12 * xiStride] = e10 - e30; d[13 * xiStride] = e11 - e31; d[14 * xiStride] = e12 - e32; d[15 * xiStride] = e13 - e33
                }
            }
        }
    }

    /// Output channels [o0, o1) of tile rows [r0, r1) from M[xi][o][t], with the epilogue.
    func outputTransform(_ m: UnsafePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                         _ r0: Int, _ r1: Int, _ o0: Int, _ o1: Int) {
        let nc = (r1 - r0) * tw
        let xs = oc * nc
        let y0 = rowbuf, y1 = rowbuf + pw
        for o in o0..<o1 {
            let b = bias?[o] ?? 0
            for r in r0..<r1 {
                let img = r / th, ti = r - img * th
                let s = m + o * nc + (r - r0) * tw
                for j in 0..<tw {
                    let q = s + j
                    let a0 = q[0] + q[4 * xs] + q[8 * xs], c0 = q[4 * xs] - q[8 * xs] - q[12 * xs]
                    let a1 = q[xs] + q[5 * xs] + q[9 * xs], c1 = q[5 * xs] - q[9 * xs] - q[13 * xs]
                    let a2 = q[2 * xs] + q[6 * xs] + q[10 * xs], c2 = q[6 * xs] - q[10 * xs] - q[14 * xs]
                    let a3 = q[3 * xs] + q[7 * xs] + q[11 * xs], c3 = q[7 * xs] - q[11 * xs] - q[15 * xs]
                    y0[2 * j] = a0 + a1 + a2
                    y0[2 * j + 1] = a1 - a2 - a3
                    y1[2 * j] = c0 + c1 + c2
                    y1[2 * j + 1] = c1 - c2 - c3
                }
                let oy = 2 * ti
                for k in 0..<min(2, h - oy) {
                    let yrow = k == 0 ? y0 : y1
                    let off = o * planeStride + img * hw + (oy + k) * w
                    let dst = output + off
                    if let residual {
                        let res = residual + off
                        switch activation {
                        case .none: for x in 0..<w { dst[x] = yrow[x] + b + res[x] }
                        case .relu: for x in 0..<w { dst[x] = max(yrow[x] + b + res[x], 0) }
                        case .relu6: for x in 0..<w { dst[x] = min(max(yrow[x] + b + res[x], 0), 6) }
                        }
                    } else {
                        switch activation {
                        case .none: for x in 0..<w { dst[x] = yrow[x] + b }
                        case .relu: for x in 0..<w { dst[x] = max(yrow[x] + b, 0) }
                        case .relu6: for x in 0..<w { dst[x] = min(max(yrow[x] + b, 0), 6) }
                        }
                    }
                }
            }
        }
    }

    func gemms(_ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ nc: Int, _ o0: Int, _ o1: Int) {
        for xi in 0..<16 {
            sgemm(m: o1 - o0, n: nc, k: ic,
                  a: u + (xi * oc + o0) * ic, lda: ic,
                  b: v + xi * ic * nc, ldb: nc,
                  c: m + xi * oc * nc + o0 * nc, ldc: nc)
        }
    }

    let chunkTiles = chunkRows * tw
    if wk > 1 || workers <= 1 {
        parallelSlices(tileRows, workers: wk) { worker, slice in
            let v = scratch + worker * perWorker
            let m = v + 16 * ic * chunkTiles
            let rowbuf = m + 16 * oc * chunkTiles
            var r0 = slice.lowerBound
            while r0 < slice.upperBound {
                let r1 = min(slice.upperBound, r0 + chunkRows)
                inputTransform(v, rowbuf, r0, r1, 0, ic)
                gemms(v, m, (r1 - r0) * tw, 0, oc)
                outputTransform(m, rowbuf, r0, r1, 0, oc)
                r0 = r1
            }
        }
    } else {
        // few tiles: workers split input channels (transform) and output channels (GEMM + back)
        let chunkR = max(1, min(tileRows, (scratchCount - workers * rowBuffers) / max(1, 16 * (ic + oc) * tw)))
        let v = scratch, m = scratch + 16 * ic * chunkR * tw
        let rowBase = scratch + 16 * (ic + oc) * chunkR * tw
        var r0 = 0
        while r0 < tileRows {
            let r1 = min(tileRows, r0 + chunkR)
            parallelSlices(ic, workers: workers) { wi, cs in inputTransform(v, rowBase + wi * rowBuffers, r0, r1, cs.lowerBound, cs.upperBound) }
            parallelSlices(oc, workers: workers) { wi, os in
                gemms(v, m, (r1 - r0) * tw, os.lowerBound, os.upperBound)
                outputTransform(m, rowBase + wi * rowBuffers, r0, r1, os.lowerBound, os.upperBound)
            }
            r0 = r1
        }
    }
}
