// Pooling: max pooling (forward for inference; forward recording the argmax, and backward, for
// training) and global average pooling, forward and backward.

import Parallelism

// MARK: - Max pooling

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

// MARK: - Global average pooling

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
