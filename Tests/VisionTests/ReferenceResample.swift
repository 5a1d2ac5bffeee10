import Foundation
@testable import Vision

/// The scalar implementation of `PillowResample` as it was when it was checked against Pillow (100% of
/// `val_uint8.npy` equal), kept unchanged as the reference for the vectorised one.
/// Pillow's bilinear resampling (`Image.resize(size, BILINEAR)`, libImaging/Resample.c), reproduced
/// bit for bit: filter support scaled by the downscale factor (antialiasing), coefficients computed in
/// double, normalised to sum 1, converted to fixed point with `PRECISION_BITS = 22` (round half away
/// from zero), accumulation in 32-bit ints starting from `1 << 21`, results clipped to 0...255 after
/// `>> 22`. Two passes, horizontal first into a uint8 intermediate holding only the source rows the
/// vertical pass needs, then vertical. Every output pixel depends only on its own coefficients, so
/// computing a sub-rectangle of the output (a crop) gives the same values as resizing then cropping.
enum ReferenceResample {
    static let precisionBits = 22

    /// Per-output-index taps: `start[i]`, `count[i]`, and `ksize` fixed-point weights at `weights[i*ksize]`.
    struct Coefficients {
        var ksize: Int
        var start: [Int32]
        var count: [Int32]
        var weights: [Int32]
    }

    /// Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter (support 1),
    /// for the output indices `first..<first+outCount` only (stored from index 0).
    static func coefficients(inSize: Int, in0: Float, in1: Float, outSize: Int, first: Int, outCount: Int) -> Coefficients {
        let scale = Double(in1 - in0) / Double(outSize)
        let filterscale = scale < 1.0 ? 1.0 : scale
        let support = 1.0 * filterscale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var start = [Int32](repeating: 0, count: outCount)
        var count = [Int32](repeating: 0, count: outCount)
        var weights = [Int32](repeating: 0, count: outCount * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterscale
        let one = Double(1 << precisionBits)
        for i in 0..<outCount {
            let xx = first + i
            let center = Double(in0) + (Double(xx) + 0.5) * scale
            var ww = 0.0
            var xmin = Int(center - support + 0.5)
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            if xmax > ksize { xmax = ksize }  // cannot happen; keeps the buffers safe
            if xmax < 0 { xmax = 0 }
            for x in 0..<xmax {
                var t = (Double(x + xmin) - center + 0.5) * ss
                if t < 0 { t = -t }
                let w = t < 1.0 ? 1.0 - t : 0.0
                k[x] = w
                ww += w
            }
            for x in 0..<ksize {
                var v = x < xmax ? k[x] : 0.0
                if x < xmax && ww != 0.0 { v /= ww }
                weights[i * ksize + x] = v < 0 ? Int32(-0.5 + v * one) : Int32(0.5 + v * one)
            }
            start[i] = Int32(xmin)
            count[i] = Int32(xmax)
        }
        return Coefficients(ksize: ksize, start: start, count: count, weights: weights)
    }

    /// Resizes the source rectangle (`srcX`, `srcY`, `srcW`, `srcH`) of an RGB image with row stride
    /// `srcStride` bytes to `outW` x `outH` exactly as Pillow does for `img.crop(rect).resize((outW, outH))`,
    /// and writes only the output window (`winX`, `winY`, `winW`, `winH`) to `dst` (RGB, stride `winW*3`).
    /// `emit(row, values)` can be used instead of `dst` for fused consumers.
    static func resize(src: UnsafePointer<UInt8>, srcStride: Int, srcX: Int, srcY: Int, srcW: Int, srcH: Int,
                       outW: Int, outH: Int, winX: Int, winY: Int, winW: Int, winH: Int,
                       emitRow: (_ row: Int, _ rgb: UnsafePointer<UInt8>) -> Void) {
        guard winW > 0, winH > 0 else { return }
        // Filter lengths grow with the downscale factor; refuse absurd ones (a 1-pixel-wide output of a
        // huge image) instead of allocating gigabytes: black output.
        let kh = Int((Double(srcW) / Double(outW)).rounded(.up)) * 2 + 1
        let kv = Int((Double(srcH) / Double(outH)).rounded(.up)) * 2 + 1
        if kh * winW > 1 << 26 || kv * winH > 1 << 26 {
            let black = [UInt8](repeating: 0, count: winW * 3)
            black.withUnsafeBufferPointer { b in for r in 0..<winH { emitRow(r, b.baseAddress!) } }
            return
        }
        let hc = coefficients(inSize: srcW, in0: 0, in1: Float(srcW), outSize: outW, first: winX, outCount: winW)
        let vc = coefficients(inSize: srcH, in0: 0, in1: Float(srcH), outSize: outH, first: winY, outCount: winH)
        // Source rows needed by the output rows of the window.
        let yFirst = Int(vc.start[0])
        let yLast = Int(vc.start[winH - 1] + vc.count[winH - 1])
        let tmpRows = max(0, yLast - yFirst)
        let rowLen = winW * 3
        let tmp = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, tmpRows * rowLen))
        defer { tmp.deallocate() }
        let half = Int32(1 << (precisionBits - 1))

        // Horizontal pass over the needed rows and the window's columns. Taps are re-based so that
        // every output column reads exactly `taps` source pixels (the largest tap count in the window;
        // the extra weights are 0, so the integer sums are unchanged) and the loop has a fixed trip count.
        var taps = 1
        for xo in 0..<winW { taps = max(taps, Int(hc.count[xo])) }
        let fixed = srcW >= taps
        if !fixed { taps = hc.ksize }
        var tapStart = [Int](repeating: 0, count: winW)
        var tapWeights = [Int32](repeating: 0, count: winW * taps)
        for xo in 0..<winW {
            let xmin = Int(hc.start[xo]), n = Int(hc.count[xo])
            let base = fixed ? min(xmin, srcW - taps) : xmin
            tapStart[xo] = base
            for t in 0..<n where xmin - base + t < taps {
                tapWeights[xo * taps + (xmin - base + t)] = hc.weights[xo * hc.ksize + t]
            }
        }
        tapStart.withUnsafeBufferPointer { ts in
        tapWeights.withUnsafeBufferPointer { tw in
            let ts = ts.baseAddress!, tw = tw.baseAddress!
            var r = 0
            // Two rows at a time for the common 3- and 4-tap cases: weights and offsets are loaded once.
            while fixed && (taps == 3 || taps == 4) && r + 1 < tmpRows {
                let sa = src + (srcY + yFirst + r) * srcStride + srcX * 3, sb = sa + srcStride
                let da = tmp + r * rowLen, db = da + rowLen
                if taps == 3 {
                    for xo in 0..<winW {
                        let o = ts[xo] * 3, k = tw + xo * 3
                        let k0 = k[0], k1 = k[1], k2 = k[2]
                        let p = sa + o, q = sb + o
                        da[xo * 3] = clip8(half &+ Int32(p[0]) &* k0 &+ Int32(p[3]) &* k1 &+ Int32(p[6]) &* k2)
                        da[xo * 3 + 1] = clip8(half &+ Int32(p[1]) &* k0 &+ Int32(p[4]) &* k1 &+ Int32(p[7]) &* k2)
                        da[xo * 3 + 2] = clip8(half &+ Int32(p[2]) &* k0 &+ Int32(p[5]) &* k1 &+ Int32(p[8]) &* k2)
                        db[xo * 3] = clip8(half &+ Int32(q[0]) &* k0 &+ Int32(q[3]) &* k1 &+ Int32(q[6]) &* k2)
                        db[xo * 3 + 1] = clip8(half &+ Int32(q[1]) &* k0 &+ Int32(q[4]) &* k1 &+ Int32(q[7]) &* k2)
                        db[xo * 3 + 2] = clip8(half &+ Int32(q[2]) &* k0 &+ Int32(q[5]) &* k1 &+ Int32(q[8]) &* k2)
                    }
                } else {
                    for xo in 0..<winW {
                        let o = ts[xo] * 3, k = tw + xo * 4
                        let k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3]
                        let p = sa + o, q = sb + o
                        da[xo * 3] = clip8(half &+ Int32(p[0]) &* k0 &+ Int32(p[3]) &* k1 &+ Int32(p[6]) &* k2 &+ Int32(p[9]) &* k3)
                        da[xo * 3 + 1] = clip8(half &+ Int32(p[1]) &* k0 &+ Int32(p[4]) &* k1 &+ Int32(p[7]) &* k2 &+ Int32(p[10]) &* k3)
                        da[xo * 3 + 2] = clip8(half &+ Int32(p[2]) &* k0 &+ Int32(p[5]) &* k1 &+ Int32(p[8]) &* k2 &+ Int32(p[11]) &* k3)
                        db[xo * 3] = clip8(half &+ Int32(q[0]) &* k0 &+ Int32(q[3]) &* k1 &+ Int32(q[6]) &* k2 &+ Int32(q[9]) &* k3)
                        db[xo * 3 + 1] = clip8(half &+ Int32(q[1]) &* k0 &+ Int32(q[4]) &* k1 &+ Int32(q[7]) &* k2 &+ Int32(q[10]) &* k3)
                        db[xo * 3 + 2] = clip8(half &+ Int32(q[2]) &* k0 &+ Int32(q[5]) &* k1 &+ Int32(q[8]) &* k2 &+ Int32(q[11]) &* k3)
                    }
                }
                r += 2
            }
            while r < tmpRows {
                defer { r += 1 }
                let srow = src + (srcY + yFirst + r) * srcStride + srcX * 3
                let drow = tmp + r * rowLen
                if fixed && taps == 3 {
                    for xo in 0..<winW {
                        let p = srow + ts[xo] * 3, k = tw + xo * 3
                        let k0 = k[0], k1 = k[1], k2 = k[2]
                        drow[xo * 3] = clip8(half &+ Int32(p[0]) &* k0 &+ Int32(p[3]) &* k1 &+ Int32(p[6]) &* k2)
                        drow[xo * 3 + 1] = clip8(half &+ Int32(p[1]) &* k0 &+ Int32(p[4]) &* k1 &+ Int32(p[7]) &* k2)
                        drow[xo * 3 + 2] = clip8(half &+ Int32(p[2]) &* k0 &+ Int32(p[5]) &* k1 &+ Int32(p[8]) &* k2)
                    }
                } else if fixed && taps == 4 {
                    for xo in 0..<winW {
                        let p = srow + ts[xo] * 3, k = tw + xo * 4
                        let k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3]
                        drow[xo * 3] = clip8(half &+ Int32(p[0]) &* k0 &+ Int32(p[3]) &* k1 &+ Int32(p[6]) &* k2 &+ Int32(p[9]) &* k3)
                        drow[xo * 3 + 1] = clip8(half &+ Int32(p[1]) &* k0 &+ Int32(p[4]) &* k1 &+ Int32(p[7]) &* k2 &+ Int32(p[10]) &* k3)
                        drow[xo * 3 + 2] = clip8(half &+ Int32(p[2]) &* k0 &+ Int32(p[5]) &* k1 &+ Int32(p[8]) &* k2 &+ Int32(p[11]) &* k3)
                    }
                } else if fixed && taps == 5 {
                    for xo in 0..<winW {
                        let p = srow + ts[xo] * 3, k = tw + xo * 5
                        let k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4]
                        var s0 = half &+ Int32(p[0]) &* k0 &+ Int32(p[3]) &* k1 &+ Int32(p[6]) &* k2
                        s0 = s0 &+ Int32(p[9]) &* k3 &+ Int32(p[12]) &* k4
                        var s1 = half &+ Int32(p[1]) &* k0 &+ Int32(p[4]) &* k1 &+ Int32(p[7]) &* k2
                        s1 = s1 &+ Int32(p[10]) &* k3 &+ Int32(p[13]) &* k4
                        var s2 = half &+ Int32(p[2]) &* k0 &+ Int32(p[5]) &* k1 &+ Int32(p[8]) &* k2
                        s2 = s2 &+ Int32(p[11]) &* k3 &+ Int32(p[14]) &* k4
                        drow[xo * 3] = clip8(s0)
                        drow[xo * 3 + 1] = clip8(s1)
                        drow[xo * 3 + 2] = clip8(s2)
                    }
                } else {
                    for xo in 0..<winW {
                        var p = srow + ts[xo] * 3
                        let k = tw + xo * taps
                        let n = fixed ? taps : min(taps, srcW - ts[xo])
                        var s0 = half, s1 = half, s2 = half
                        for t in 0..<n {
                            let kw = k[t]
                            s0 = s0 &+ Int32(p[0]) &* kw
                            s1 = s1 &+ Int32(p[1]) &* kw
                            s2 = s2 &+ Int32(p[2]) &* kw
                            p += 3
                        }
                        drow[xo * 3] = clip8(s0)
                        drow[xo * 3 + 1] = clip8(s1)
                        drow[xo * 3 + 2] = clip8(s2)
                    }
                }
            }
        }}

        // Vertical pass: accumulate whole rows (integer sums are exact, order does not matter).
        let acc = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, rowLen))
        defer { acc.deallocate() }
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, rowLen))
        defer { out.deallocate() }
        vc.weights.withUnsafeBufferPointer { vw in
            let ksize = vc.ksize
            for yo in 0..<winH {
                let ymin = Int(vc.start[yo]) - yFirst, n = Int(vc.count[yo])
                let k = vw.baseAddress! + yo * ksize
                let r0 = tmp + ymin * rowLen
                if n == 3 {
                    let k0 = k[0], k1 = k[1], k2 = k[2]
                    let r1 = r0 + rowLen, r2 = r1 + rowLen
                    for i in 0..<rowLen {
                        out[i] = clip8(half &+ Int32(r0[i]) &* k0 &+ Int32(r1[i]) &* k1 &+ Int32(r2[i]) &* k2)
                    }
                } else if n == 4 {
                    let k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3]
                    let r1 = r0 + rowLen, r2 = r1 + rowLen, r3 = r2 + rowLen
                    for i in 0..<rowLen {
                        out[i] = clip8(half &+ Int32(r0[i]) &* k0 &+ Int32(r1[i]) &* k1 &+ Int32(r2[i]) &* k2 &+ Int32(r3[i]) &* k3)
                    }
                } else {
                    acc.update(repeating: half, count: rowLen)
                    for y in 0..<n {
                        let kw = k[y]
                        let trow = r0 + y * rowLen
                        for i in 0..<rowLen { acc[i] = acc[i] &+ Int32(trow[i]) &* kw }
                    }
                    for i in 0..<rowLen { out[i] = clip8(acc[i]) }
                }
                emitRow(yo, UnsafePointer(out))
            }
        }
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> 22
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(truncatingIfNeeded: s))
    }
}
