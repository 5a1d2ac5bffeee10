// Winograd F(4x4, 3x3) convolution forward for 3x3, stride 1, padding 1, ungrouped convolutions of
// CNHW activations: 36 multiplies per 4x4 output tile and channel pair instead of 144 (F(2x2, 3x3)
// needs 64), with interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray):
//   U = G g G^T (6x6, weights, once at load, computed in double), V = B^T d B (6x6 input patches),
//   M = U . V per position (36 GEMMs: M[xi] (OC x tiles) = U[xi] (OC x IC) * V[xi] (IC x tiles)),
//   Y = A^T M A (4x4).
// The transforms multiply by up to 8 and U holds thirds and twenty-fourths, so round-off is a few
// times that of F(2x2, 3x3): ResNet-18's features stay within ~1e-6 relative L2 of PyTorch's.
// Worth it where maps are large; on 7x7 maps 4x4 tiles waste 30% (ResNet-18's layer4 keeps F(2x2, 3x3)).

/// Transformed weights [36][OC][IC] from PyTorch's [OC][IC][3][3].
public func winograd4TransformWeights(_ g: UnsafePointer<Float>, outChannels oc: Int, inChannels ic: Int) -> [Float] {
    let G: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                         [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
    let plane = oc * ic
    var u = [Float](repeating: 0, count: 36 * plane)
    u.withUnsafeMutableBufferPointer { ub in
        let u = ub.baseAddress!
        var gg = [Double](repeating: 0, count: 18)  // G g: 6x3
        for o in 0..<oc {
            for i in 0..<ic {
                let k = g + (o * ic + i) * 9
                for a in 0..<6 {
                    for l in 0..<3 {
                        gg[a * 3 + l] = G[a][0] * Double(k[l]) + G[a][1] * Double(k[3 + l]) + G[a][2] * Double(k[6 + l])
                    }
                }
                for a in 0..<6 {
                    for b in 0..<6 {
                        let v = gg[a * 3] * G[b][0] + gg[a * 3 + 1] * G[b][1] + gg[a * 3 + 2] * G[b][2]
                        u[(a * 6 + b) * plane + o * ic + i] = Float(v)
                    }
                }
            }
        }
    }
    return u
}

/// Scratch floats per worker for a chunk of `tiles` tiles (plus row buffers).
public func winograd4ScratchCount(inChannels ic: Int, outChannels oc: Int, tiles: Int) -> Int {
    36 * (ic + oc) * tiles + 24 * (tiles + 24) + 37 * 8
}

/// 3x3 / stride 1 / padding 1 convolution of a CNHW activation by Winograd F(4x4, 3x3), output CNHW:
/// out = act(conv(x) + bias + residual). `u` from `winograd4TransformWeights`. Same chunking and
/// worker split as `conv3x3WinogradForward`: tile rows (one image, four output rows) in chunks; the
/// workers split tile rows when there are many, else channels.
public func conv3x3Winograd4Forward(
    output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    batch n: Int, inChannels ic: Int, outChannels oc: Int, height h: Int, width w: Int,
    u: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation,
    scratch: UnsafeMutablePointer<Float>, scratchCount: Int, workers: Int = 1, minTilesPerWorker: Int = 32
) {
    let th = (h + 3) / 4, tw = (w + 3) / 4
    let tileRows = n * th
    guard tileRows > 0 else { return }
    let pw = tw + 24                          // one phase of a row (+ room for 8-wide loads at j + 1)
    let rowBuffers = 24 * pw + 37 * 8         // 6 input rows x 4 phases (or 4 output rows x 4), + T, + staging
    let hw = h * w, planeStride = n * hw

    /// V[xi][c][t] for channels [c0, c1) of tile rows [r0, r1). Row y of a patch is split into its 4
    /// phases P_q[j] = x[4j - 1 + q] (zero outside), so tile j's columns are P0..P3[j], P0[j+1], P1[j+1].
    func inputTransform(_ v: UnsafeMutablePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                        _ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int) {
        let nc = (r1 - r0) * tw
        let xs = ic * nc
        let tb = rowbuf + 24 * pw   // T: 36 SIMD8
        for c in c0..<c1 {
            for r in r0..<r1 {
                let img = r / th, ti = r - img * th
                let plane = input + c * planeStride + img * hw
                rowbuf.update(repeating: 0, count: 24 * pw)
                for k in 0..<6 {
                    let y = 4 * ti - 1 + k
                    guard y >= 0 && y < h else { continue }
                    let src = plane + y * w
                    let ph = rowbuf + 4 * k * pw
                    // phase q holds x = 4j - 1 + q: phase 0 starts at x = 3 (j = 1), phases 1-3 at x = q - 1
                    for q in 0..<4 {
                        let dstq = ph + q * pw
                        var j = q == 0 ? 1 : 0, x = 4 * j - 1 + q
                        while x < w { dstq[j] = src[x]; j += 1; x += 4 }
                    }
                }
                let dst = v + c * nc + (r - r0) * tw
                var j = 0
                while j < tw {
                    for k in 0..<6 {
                        let ph = rowbuf + 4 * k * pw + j
                        let d0 = ld8(ph), d1 = ld8(ph + pw), d2 = ld8(ph + 2 * pw), d3 = ld8(ph + 3 * pw)
                        let d4 = ld8(ph + 1), d5 = ld8(ph + pw + 1)
                        let t = tb + k * 48
                        let a = d4 - 4 * d2, b = d3 - 4 * d1, e = d4 - d2, f = 2 * (d3 - d1)
                        st8(t, 4 * d0 - 5 * d2 + d4)
                        st8(t + 8, a + b)
                        st8(t + 16, a - b)
                        st8(t + 24, e + f)
                        st8(t + 32, e - f)
                        st8(t + 40, 4 * d1 - 5 * d3 + d5)
                    }
                    let lanes = min(8, tw - j)
                    for col in 0..<6 {
                        let d0 = ld8(tb + col * 8), d1 = ld8(tb + 48 + col * 8), d2 = ld8(tb + 96 + col * 8)
                        let d3 = ld8(tb + 144 + col * 8), d4 = ld8(tb + 192 + col * 8), d5 = ld8(tb + 240 + col * 8)
                        let a = d4 - 4 * d2, b = d3 - 4 * d1, e = d4 - d2, f = 2 * (d3 - d1)
                        let rows = (4 * d0 - 5 * d2 + d4, a + b, a - b, e + f, e - f, 4 * d1 - 5 * d3 + d5)
                        let o = dst + j + col * xs
                        if lanes == 8 {
                            st8(o, rows.0); st8(o + 6 * xs, rows.1); st8(o + 12 * xs, rows.2)
                            st8(o + 18 * xs, rows.3); st8(o + 24 * xs, rows.4); st8(o + 30 * xs, rows.5)
                        } else {
                            // a partial block: through a staging row (8 floats past T), `lanes` floats each
                            let stage = tb + 288
                            @inline(__always) func put(_ row: SIMD8<Float>, _ d: UnsafeMutablePointer<Float>) {
                                st8(stage, row)
                                for l in 0..<lanes { d[l] = stage[l] }
                            }
                            put(rows.0, o); put(rows.1, o + 6 * xs); put(rows.2, o + 12 * xs)
                            put(rows.3, o + 18 * xs); put(rows.4, o + 24 * xs); put(rows.5, o + 30 * xs)
                        }
                    }
                    j += 8
                }
            }
        }
    }

    /// Output channels [o0, o1) of tile rows [r0, r1) from M[xi][o][t], with the epilogue. Rows of
    /// A^T: [1 1 1 1 1 0], [0 1 -1 2 -2 0], [0 1 1 4 4 0], [0 1 -1 8 -8 1].
    func outputTransform(_ m: UnsafePointer<Float>, _ rowbuf: UnsafeMutablePointer<Float>,
                         _ r0: Int, _ r1: Int, _ o0: Int, _ o1: Int) {
        let nc = (r1 - r0) * tw
        let xs = oc * nc
        let sb = rowbuf + 24 * pw   // S = A^T M: 4 rows x 6 SIMD8
        for o in o0..<o1 {
            let bv = SIMD8<Float>(repeating: bias?[o] ?? 0)
            for r in r0..<r1 {
                let img = r / th, ti = r - img * th
                let s = m + o * nc + (r - r0) * tw
                var j = 0
                while j < tw {
                    for col in 0..<6 {
                        let q = s + j + col * xs
                        let m0 = ld8(q), m1 = ld8(q + 6 * xs), m2 = ld8(q + 12 * xs)
                        let m3 = ld8(q + 18 * xs), m4 = ld8(q + 24 * xs), m5 = ld8(q + 30 * xs)
                        let p = m1 + m2, mi = m1 - m2, p2 = m3 + m4, mi2 = m3 - m4
                        st8(sb + col * 8, m0 + p + p2)
                        st8(sb + 48 + col * 8, mi + 2 * mi2)
                        st8(sb + 96 + col * 8, p + 4 * p2)
                        st8(sb + 144 + col * 8, mi + 8 * mi2 + m5)
                    }
                    for rr in 0..<4 {
                        let t = sb + rr * 48
                        let m0 = ld8(t), m1 = ld8(t + 8), m2 = ld8(t + 16), m3 = ld8(t + 24), m4 = ld8(t + 32), m5 = ld8(t + 40)
                        let p = m1 + m2, mi = m1 - m2, p2 = m3 + m4, mi2 = m3 - m4
                        let ph = rowbuf + rr * 4 * pw + j
                        st8(ph, m0 + p + p2 + bv)
                        st8(ph + pw, mi + 2 * mi2 + bv)
                        st8(ph + 2 * pw, p + 4 * p2 + bv)
                        st8(ph + 3 * pw, mi + 8 * mi2 + m5 + bv)
                    }
                    j += 8
                }
                let oy = 4 * ti
                for rr in 0..<min(4, h - oy) {
                    let ph = rowbuf + rr * 4 * pw
                    let off = o * planeStride + img * hw + (oy + rr) * w
                    let dst = output + off
                    // interleave the 4 phases into the row, then residual and activation 8 at a time
                    for c in 0..<4 {
                        let src = ph + c * pw
                        var j = 0, x = c
                        while x < w { dst[x] = src[j]; j += 1; x += 4 }
                    }
                    epilogue(dst, residual.map { $0 + off }, w, activation)
                }
            }
        }
    }

    func gemms(_ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ nc: Int, _ o0: Int, _ o1: Int) {
        winogradGemms(positions: 36, u: u, inChannels: ic, outChannels: oc, v: v, m: m, tiles: nc, o0, o1)
    }

    winogradSchedule(positions: 36, tileRows: tileRows, tilesPerRow: tw, inChannels: ic, outChannels: oc,
                     rowBuffers: rowBuffers, minTiles: minTilesPerWorker,
                     workers: workers, scratch: scratch, scratchCount: scratchCount,
                     input: inputTransform, gemms: gemms, output: outputTransform)
}

/// y = act(y + residual) over a row of `count` floats.
@inline(__always) private func epilogue(_ y: UnsafeMutablePointer<Float>, _ residual: UnsafePointer<Float>?, _ count: Int,
                                        _ activation: Activation) {
    switch activation {
    case .none: if let residual { epilogue(IdentityActivation.self, y, residual, count) }
    case .relu: epilogue(ReLUActivation.self, y, residual, count)
    case .relu6: epilogue(ReLU6Activation.self, y, residual, count)
    }
}

@inline(__always) private func epilogue<A: ActivationKind>(_: A.Type, _ y: UnsafeMutablePointer<Float>,
                                                           _ residual: UnsafePointer<Float>?, _ count: Int) {
    var x = 0
    while x + 8 <= count {
        var v = ld8(y + x)
        if let residual { v += ld8(residual + x) }
        st8(y + x, A.apply(v))
        x += 8
    }
    while x < count {
        var t = y[x]
        if let residual { t += residual[x] }
        y[x] = A.apply(t)
        x += 1
    }
}

