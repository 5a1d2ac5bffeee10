// Depthwise 3x3 convolution (groups == channels, padding 1, stride 1 or 2), CNHW: forward with
// fused bias and activation, and backward (weight and input gradients).

import Parallelism

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

// MARK: - Backward

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
