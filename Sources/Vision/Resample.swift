import Foundation
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel
#endif

/// Pillow's bilinear resampling (`Image.resize(size, BILINEAR)`, libImaging/Resample.c), reproduced
/// bit for bit: filter support scaled by the downscale factor (antialiasing), coefficients computed in
/// double, normalised to sum 1, converted to fixed point with `PRECISION_BITS = 22` (round half away
/// from zero), accumulation in 32-bit ints starting from `1 << 21`, results clipped to 0...255 after
/// `>> 22`. Two passes, horizontal first into a uint8 intermediate holding only the source rows the
/// vertical pass needs, then vertical. Every output pixel depends only on its own coefficients, so
/// computing a sub-rectangle of the output (a crop) gives the same values as resizing then cropping.
///
/// Both passes are vectorised with exact integer arithmetic: a weight `w` (0...2^22) is split as
/// `w = lo + hi << 7` with `lo`, `hi` in Int16 range, so `p * w == p * lo + (p << 7) * hi` for a pixel
/// `p <= 255` (`p << 7 <= 32640` fits Int16 too). Pairs of taps are multiplied and summed in 32-bit lanes by
/// `madd` (one `pmaddwd` on x86-64, part of baseline SSE2). Integer sums do not depend on their order, so
/// the results are the same as the scalar `&+`/`&*` accumulation, bit for bit.
enum PillowResample {
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
    /// and hands the output window (`winX`, `winY`, `winW`, `winH`) row by row to `emitRow(row, rgb)`
    /// (`winW*3` bytes, valid during the call). `srcCount` is the number of readable bytes at `src`.
    static func resize(src: UnsafePointer<UInt8>, srcCount: Int, srcStride: Int, srcX: Int, srcY: Int, srcW: Int, srcH: Int,
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
        // Rows rounded up to a multiple of 16 (the transposed horizontal pass writes whole 16-row blocks) and
        // one spare byte (the per-pixel horizontal pass stores 4 bytes per 3-byte pixel).
        let tmp = UnsafeMutablePointer<UInt8>.allocate(capacity: (tmpRows + 15) / 16 * 16 * rowLen + 1)
        defer { tmp.deallocate() }
        horizontalPass(src: src, srcCount: srcCount, srcStride: srcStride, srcX: srcX, srcY: srcY + yFirst, srcW: srcW,
                       coefficients: hc, rows: tmpRows, winW: winW, dst: tmp)
        verticalPass(tmp: tmp, rowLen: rowLen, yFirst: yFirst, coefficients: vc, winH: winH, emitRow: emitRow)
    }

    static let half = Int32(1 << (precisionBits - 1))

    /// True when every weight can be split for `madd` (bilinear weights are always in 0...2^22).
    static func splittable(_ w: UnsafeBufferPointer<Int32>) -> Bool {
        w.allSatisfy { $0 >= 0 && $0 <= 1 << precisionBits }
    }

    /// `w == lo + hi << 7` with both halves in Int16 range (for 0 <= w <= 2^22).
    @inline(__always)
    static func split(_ w: Int32) -> (lo: Int16, hi: Int16) {
        let hi = min(w >> 7, 32767)
        return (Int16(truncatingIfNeeded: w - hi << 7), Int16(truncatingIfNeeded: hi))
    }

    /// Weights of two taps for `madd`: (lo0, lo1) repeated in `lo`, (hi0, hi1) in `hi`.
    @inline(__always)
    static func weightPair(_ w0: Int32, _ w1: Int32) -> (lo: SIMD8<Int16>, hi: SIMD8<Int16>) {
        let a = split(w0), b = split(w1)
        return (SIMD8(a.lo, b.lo, a.lo, b.lo, a.lo, b.lo, a.lo, b.lo), SIMD8(a.hi, b.hi, a.hi, b.hi, a.hi, b.hi, a.hi, b.hi))
    }

    /// Pixels `a`, `b` of two taps interleaved as Int16 pairs (a0, b0, a1, b1, ...), and the same shifted
    /// left by 7 (exact: no value exceeds 255 << 7), for `madd` with the `lo` and `hi` weights.
    @inline(__always)
    static func tapPairs(_ a: SIMD4<UInt8>, _ b: SIMD4<UInt8>) -> (SIMD8<Int16>, SIMD8<Int16>) {
        let x = SIMD4<UInt32>(truncatingIfNeeded: a) | (SIMD4<UInt32>(truncatingIfNeeded: b) &<< 16)
        // Shifting the 32-bit lanes shifts both 16-bit halves: a << 7 never carries into the upper half.
        return (unsafeBitCast(x, to: SIMD8<Int16>.self), unsafeBitCast(x &<< 7, to: SIMD8<Int16>.self))
    }

    /// `a.even * b.even + a.odd * b.odd` in 32-bit lanes (exact).
    @inline(__always)
    static func madd(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD4<Int32> {
        #if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
        // pmaddwd: LLVM would also match the portable expression below, but not reliably once inlined.
        return unsafeBitCast(_mm_madd_epi16(unsafeBitCast(a, to: __m128i.self), unsafeBitCast(b, to: __m128i.self)),
                             to: SIMD4<Int32>.self)
        #else
        return SIMD4<Int32>(truncatingIfNeeded: a.evenHalf) &* SIMD4<Int32>(truncatingIfNeeded: b.evenHalf)
            &+ SIMD4<Int32>(truncatingIfNeeded: a.oddHalf) &* SIMD4<Int32>(truncatingIfNeeded: b.oddHalf)
        #endif
    }

    /// `clip8` of four accumulators.
    @inline(__always)
    static func clip8(_ v: SIMD4<Int32>) -> SIMD4<UInt8> {
        SIMD4<UInt8>(truncatingIfNeeded: (v &>> 22).clamped(lowerBound: SIMD4(repeating: 0), upperBound: SIMD4(repeating: 255)))
    }

    /// Horizontal pass: `rows` source rows from `srcY`, columns of the window, into `dst` (stride `winW*3`).
    static func horizontalPass(src: UnsafePointer<UInt8>, srcCount: Int, srcStride: Int, srcX: Int, srcY: Int, srcW: Int,
                               coefficients hc: Coefficients, rows: Int, winW: Int, dst: UnsafeMutablePointer<UInt8>) {
        let rowLen = winW * 3
        // Taps are re-based so that every output column reads exactly `taps` source pixels (the largest tap
        // count in the window rounded up to a pair; the extra weights are 0, so the integer sums are unchanged).
        var taps = 1
        for xo in 0..<winW { taps = max(taps, Int(hc.count[xo])) }
        taps += taps & 1
        let vectorised = srcW >= taps && hc.weights.withUnsafeBufferPointer(splittable)
        if !vectorised {
            for r in 0..<rows {
                horizontalRowScalar(src + (srcY + r) * srcStride + srcX * 3, dst + r * rowLen, hc, 0..<winW)
            }
            return
        }
        let pairs = taps / 2
        let tapStart = UnsafeMutablePointer<Int>.allocate(capacity: winW)
        defer { tapStart.deallocate() }
        let weights = UnsafeMutablePointer<SIMD8<Int16>>.allocate(capacity: winW * taps)
        defer { weights.deallocate() }
        var w = [Int32](repeating: 0, count: taps)
        for xo in 0..<winW {
            let xmin = Int(hc.start[xo]), n = Int(hc.count[xo])
            let base = min(xmin, srcW - taps)
            tapStart[xo] = base * 3
            for t in 0..<taps { w[t] = 0 }
            for t in 0..<n { w[xmin - base + t] = hc.weights[xo * hc.ksize + t] }
            for j in 0..<pairs {
                let (lo, hi) = weightPair(w[2 * j], w[2 * j + 1])
                weights[(xo * pairs + j) * 2] = lo
                weights[(xo * pairs + j) * 2 + 1] = hi
            }
        }
        if rows >= 16 && rowLen >= 16 && tapStart[winW - 1] + 3 * taps - tapStart[0] >= 16 {
            horizontalPassTransposed(src: src + srcY * srcStride + srcX * 3, srcStride: srcStride, rows: rows, winW: winW,
                                     tapStart: tapStart, pairs: pairs, weights: weights, dst: dst)
            return
        }
        for r in 0..<rows {
            let srow = src + (srcY + r) * srcStride + srcX * 3
            let drow = dst + r * rowLen
            // Each pair of taps is read with one 8-byte load (2 bytes past the pair): columns whose last load
            // would run past the end of the source buffer (last image row only) are done by the scalar code.
            let room = srcCount - (srow - src) - 2
            var safeW = winW
            while safeW > 0 && tapStart[safeW - 1] + 3 * taps > room { safeW -= 1 }
            var wp = UnsafePointer(weights)
            for xo in 0..<safeW {
                var p = srow + tapStart[xo]
                var acc = SIMD4<Int32>(repeating: half)
                for _ in 0..<pairs {
                    let q = UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)
                    // Pixels t (bytes 0-2) and t+1 (bytes 3-5); the fourth lane is 0 and ignored.
                    let a = unsafeBitCast(UInt32(truncatingIfNeeded: q) & 0xFF_FFFF, to: SIMD4<UInt8>.self)
                    let b = unsafeBitCast(UInt32(truncatingIfNeeded: q &>> 24) & 0xFF_FFFF, to: SIMD4<UInt8>.self)
                    let (x, x7) = tapPairs(a, b)
                    acc &+= madd(x, wp[0]) &+ madd(x7, wp[1])
                    p += 6
                    wp += 2
                }
                // Writes R, G, B and a 4th byte that the next column (or the spare byte) overwrites.
                UnsafeMutableRawPointer(drow + xo * 3).storeBytes(of: clip8(acc), as: SIMD4<UInt8>.self)
            }
            if safeW < winW { horizontalRowScalar(srow, drow, hc, safeW..<winW) }
        }
    }

    /// The horizontal pass on blocks of 16 rows, transposed so that it runs like the vertical pass: the
    /// block's source bytes are transposed into columns (16 rows in the 16 lanes of a vector), every output
    /// column is the weighted sum of whole source columns, and the output columns are transposed back
    /// into rows. `src` points at the first row's window origin; `tapStart` holds byte offsets from it,
    /// `weights` the `madd` weights of `pairs` tap pairs per output column. Writes whole 16-row blocks to
    /// `dst` (stride `winW*3`; up to 15 rows past `rows`, left undefined). Loads stay within the bytes
    /// `tapStart[0] ..< tapStart[winW-1] + 6*pairs` of each of the `rows` rows.
    static func horizontalPassTransposed(src: UnsafePointer<UInt8>, srcStride: Int, rows: Int, winW: Int,
                                         tapStart: UnsafePointer<Int>, pairs: Int, weights: UnsafePointer<SIMD8<Int16>>,
                                         dst: UnsafeMutablePointer<UInt8>) {
        let rowLen = winW * 3
        let colFirst = tapStart[0]
        let cols = tapStart[winW - 1] + 6 * pairs - colFirst
        let columns = UnsafeMutablePointer<SIMD16<UInt8>>.allocate(capacity: cols)  // source column j of the block
        defer { columns.deallocate() }
        let results = UnsafeMutablePointer<SIMD16<UInt8>>.allocate(capacity: rowLen)  // output column k of the block
        defer { results.deallocate() }
        let ptrs = UnsafeMutablePointer<UnsafePointer<UInt8>>.allocate(capacity: 16)
        defer { ptrs.deallocate() }
        var r0 = 0
        while r0 < rows {
            // Rows past the end repeat the last row (computed, never used).
            for i in 0..<16 { ptrs[i] = src + min(r0 + i, rows - 1) * srcStride + colFirst }
            // 16 columns at a time; a last partial group is redone overlapping the previous one.
            var j = 0
            while true {
                if j + 16 > cols { j = cols - 16 }
                transpose16(ptrs, offset: j, to: UnsafeMutableRawPointer(columns + j), stride: 16)
                j += 16
                if j >= cols { break }
            }
            var wp = weights
            for xo in 0..<winW {
                let c0 = UnsafePointer(columns) + (tapStart[xo] - colFirst)
                // The common 3- and 4-tap windows (2 pairs) get a loop with a constant trip count.
                if pairs == 2 {
                    results[xo * 3] = weightedColumns(c0, wp, pairs: 2)
                    results[xo * 3 + 1] = weightedColumns(c0 + 1, wp, pairs: 2)
                    results[xo * 3 + 2] = weightedColumns(c0 + 2, wp, pairs: 2)
                } else {
                    results[xo * 3] = weightedColumns(c0, wp, pairs: pairs)
                    results[xo * 3 + 1] = weightedColumns(c0 + 1, wp, pairs: pairs)
                    results[xo * 3 + 2] = weightedColumns(c0 + 2, wp, pairs: pairs)
                }
                wp += 2 * pairs
            }
            // Back to rows, 16 output bytes at a time (overlapping at the end as above).
            var k = 0
            while true {
                if k + 16 > rowLen { k = rowLen - 16 }
                for i in 0..<16 { ptrs[i] = UnsafeRawPointer(results + k + i).assumingMemoryBound(to: UInt8.self) }
                transpose16(ptrs, offset: 0, to: UnsafeMutableRawPointer(dst + r0 * rowLen + k), stride: rowLen)
                k += 16
                if k >= rowLen { break }
            }
            r0 += 16
        }
    }

    /// Sums for 16 output bytes, starting at the rounding half: `add` weighs two 16-byte vectors (two taps
    /// of 16 outputs) by their split weights (`lo`, `hi`: see `madd`).
    struct PairSums {
        var a0 = SIMD4<Int32>(repeating: half), a1 = SIMD4<Int32>(repeating: half)
        var a2 = SIMD4<Int32>(repeating: half), a3 = SIMD4<Int32>(repeating: half)

        @inline(__always)
        mutating func add(_ va: SIMD16<UInt8>, _ vb: SIMD16<UInt8>, _ lo: SIMD8<Int16>, _ hi: SIMD8<Int16>) {
            let (x0, y0) = tapPairs(va.lowHalf.lowHalf, vb.lowHalf.lowHalf)
            let (x1, y1) = tapPairs(va.lowHalf.highHalf, vb.lowHalf.highHalf)
            let (x2, y2) = tapPairs(va.highHalf.lowHalf, vb.highHalf.lowHalf)
            let (x3, y3) = tapPairs(va.highHalf.highHalf, vb.highHalf.highHalf)
            a0 &+= madd(x0, lo) &+ madd(y0, hi)
            a1 &+= madd(x1, lo) &+ madd(y1, hi)
            a2 &+= madd(x2, lo) &+ madd(y2, hi)
            a3 &+= madd(x3, lo) &+ madd(y3, hi)
        }

        /// The sums shifted back by the weights' precision and clipped to bytes.
        var clipped: SIMD16<UInt8> {
            SIMD16(lowHalf: SIMD8(lowHalf: clip8(a0), highHalf: clip8(a1)), highHalf: SIMD8(lowHalf: clip8(a2), highHalf: clip8(a3)))
        }
    }

    /// One output column of a transposed block: the sum over `pairs` tap pairs of source columns
    /// (`col[6j]`, `col[6j+3]`: consecutive pixels of one channel) weighted by `w[2j]`, `w[2j+1]`, clipped.
    @inline(__always)
    static func weightedColumns(_ col: UnsafePointer<SIMD16<UInt8>>, _ w: UnsafePointer<SIMD8<Int16>>, pairs: Int) -> SIMD16<UInt8> {
        var acc = PairSums()
        for j in 0..<pairs { acc.add(col[6 * j], col[6 * j + 3], w[2 * j], w[2 * j + 1]) }
        return acc.clipped
    }

    /// Transposes a 16x16 byte matrix: row `i` is read at `rows[i] + offset`, column `i` is written at
    /// `dst + i * stride`. Four rounds of byte interleaving (`punpcklbw`/`punpckhbw`).
    @inline(__always)
    static func transpose16(_ rows: UnsafePointer<UnsafePointer<UInt8>>, offset: Int, to dst: UnsafeMutableRawPointer, stride: Int) {
        @inline(__always) func load(_ i: Int) -> SIMD16<UInt8> { UnsafeRawPointer(rows[i] + offset).loadUnaligned(as: SIMD16<UInt8>.self) }
        @inline(__always) func lo(_ a: SIMD16<UInt8>, _ b: SIMD16<UInt8>) -> SIMD16<UInt8> {
            SIMD16(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
        }
        @inline(__always) func hi(_ a: SIMD16<UInt8>, _ b: SIMD16<UInt8>) -> SIMD16<UInt8> {
            SIMD16(a[8], b[8], a[9], b[9], a[10], b[10], a[11], b[11], a[12], b[12], a[13], b[13], a[14], b[14], a[15], b[15])
        }
        var v0 = load(0), v1 = load(1), v2 = load(2), v3 = load(3), v4 = load(4), v5 = load(5), v6 = load(6), v7 = load(7)
        var v8 = load(8), v9 = load(9), v10 = load(10), v11 = load(11), v12 = load(12), v13 = load(13), v14 = load(14), v15 = load(15)
        for _ in 0..<4 {
            (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15) =
                (lo(v0, v8), hi(v0, v8), lo(v1, v9), hi(v1, v9), lo(v2, v10), hi(v2, v10), lo(v3, v11), hi(v3, v11),
                 lo(v4, v12), hi(v4, v12), lo(v5, v13), hi(v5, v13), lo(v6, v14), hi(v6, v14), lo(v7, v15), hi(v7, v15))
        }
        dst.storeBytes(of: v0, toByteOffset: 0, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v1, toByteOffset: stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v2, toByteOffset: 2 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v3, toByteOffset: 3 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v4, toByteOffset: 4 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v5, toByteOffset: 5 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v6, toByteOffset: 6 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v7, toByteOffset: 7 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v8, toByteOffset: 8 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v9, toByteOffset: 9 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v10, toByteOffset: 10 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v11, toByteOffset: 11 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v12, toByteOffset: 12 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v13, toByteOffset: 13 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v14, toByteOffset: 14 * stride, as: SIMD16<UInt8>.self)
        dst.storeBytes(of: v15, toByteOffset: 15 * stride, as: SIMD16<UInt8>.self)
    }

    /// Pillow's horizontal convolution for the window columns `cols` of one row.
    static func horizontalRowScalar(_ srow: UnsafePointer<UInt8>, _ drow: UnsafeMutablePointer<UInt8>, _ hc: Coefficients, _ cols: Range<Int>) {
        hc.weights.withUnsafeBufferPointer { kw in
            for xo in cols {
                var p = srow + Int(hc.start[xo]) * 3
                let k = kw.baseAddress! + xo * hc.ksize
                var s0 = half, s1 = half, s2 = half
                for t in 0..<Int(hc.count[xo]) {
                    let kt = k[t]
                    s0 = s0 &+ Int32(p[0]) &* kt
                    s1 = s1 &+ Int32(p[1]) &* kt
                    s2 = s2 &+ Int32(p[2]) &* kt
                    p += 3
                }
                drow[xo * 3] = clip8(s0)
                drow[xo * 3 + 1] = clip8(s1)
                drow[xo * 3 + 2] = clip8(s2)
            }
        }
    }

    /// Vertical pass over the horizontally resampled rows in `tmp` (stride `rowLen`, first row `yFirst`).
    static func verticalPass(tmp: UnsafeMutablePointer<UInt8>, rowLen: Int, yFirst: Int, coefficients vc: Coefficients, winH: Int,
                             emitRow: (_ row: Int, _ rgb: UnsafePointer<UInt8>) -> Void) {
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: max(16, rowLen))
        defer { out.deallocate() }
        let pairCap = (vc.ksize + 1) / 2
        let rowPtrs = UnsafeMutablePointer<UnsafePointer<UInt8>>.allocate(capacity: 2 * pairCap)
        defer { rowPtrs.deallocate() }
        let weights = UnsafeMutablePointer<SIMD8<Int16>>.allocate(capacity: 2 * pairCap)
        defer { weights.deallocate() }
        let vectorised = rowLen >= 16 && vc.weights.withUnsafeBufferPointer(splittable)
        vc.weights.withUnsafeBufferPointer { vw in
            for yo in 0..<winH {
                let ymin = Int(vc.start[yo]) - yFirst, n = Int(vc.count[yo])
                let k = vw.baseAddress! + yo * vc.ksize
                let r0 = UnsafePointer(tmp + ymin * rowLen)
                if !vectorised || n == 0 {
                    for i in 0..<rowLen {
                        var s = half
                        for y in 0..<n { s = s &+ Int32(r0[y * rowLen + i]) &* k[y] }
                        out[i] = clip8(s)
                    }
                    emitRow(yo, UnsafePointer(out))
                    continue
                }
                // Taps in pairs; an odd last tap is paired with itself at weight 0.
                let pairs = (n + 1) / 2
                for j in 0..<pairs {
                    let y0 = 2 * j, y1 = min(2 * j + 1, n - 1)
                    rowPtrs[2 * j] = r0 + y0 * rowLen
                    rowPtrs[2 * j + 1] = r0 + y1 * rowLen
                    let (lo, hi) = weightPair(k[y0], y1 > y0 ? k[y1] : 0)
                    weights[2 * j] = lo
                    weights[2 * j + 1] = hi
                }
                // 16 bytes at a time; a last partial block is redone overlapping the previous one.
                var i = 0
                while true {
                    if i + 16 > rowLen { i = rowLen - 16 }
                    let v = pairs == 2 ? weightedRows(rowPtrs, i, weights, pairs: 2) : weightedRows(rowPtrs, i, weights, pairs: pairs)
                    UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: SIMD16<UInt8>.self)
                    i += 16
                    if i >= rowLen { break }
                }
                emitRow(yo, UnsafePointer(out))
            }
        }
    }

    /// 16 output bytes at `i` of the vertical pass: the sum over `pairs` row pairs (`rows[2j]`, `rows[2j+1]`)
    /// weighted by `w[2j]`, `w[2j+1]`, clipped.
    @inline(__always)
    static func weightedRows(_ rows: UnsafePointer<UnsafePointer<UInt8>>, _ i: Int, _ w: UnsafePointer<SIMD8<Int16>>, pairs: Int) -> SIMD16<UInt8> {
        var acc = PairSums()
        for j in 0..<pairs {
            acc.add(UnsafeRawPointer(rows[2 * j] + i).loadUnaligned(as: SIMD16<UInt8>.self),
                    UnsafeRawPointer(rows[2 * j + 1] + i).loadUnaligned(as: SIMD16<UInt8>.self), w[2 * j], w[2 * j + 1])
        }
        return acc.clipped
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> 22
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(truncatingIfNeeded: s))
    }
}
