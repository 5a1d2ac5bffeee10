import Foundation
import Testing
@testable import NN

// Kernel tests against naive loops written straight from PyTorch's definitions (NCHW).

/// Deterministic values in [-1, 1).
func values(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 0x9E3779B97F4A7C15 | 1
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(s >> 40) / Float(1 << 23) - 1
    }
}

/// Naive grouped convolution, NCHW in and out.
func naiveConv(_ x: [Float], n: Int, h: Int, w: Int, g: ConvGeometry, weight: [Float], bias: [Float]?) -> [Float] {
    let (oh, ow) = g.outputSize(height: h, width: w)
    let icg = g.inChannels / g.groups, ocg = g.outChannels / g.groups
    var y = [Float](repeating: 0, count: n * g.outChannels * oh * ow)
    for b in 0..<n { for oc in 0..<g.outChannels {
        let grp = oc / ocg
        for oy in 0..<oh { for ox in 0..<ow {
            var s = Double(bias?[oc] ?? 0)
            for ci in 0..<icg { for ky in 0..<g.kernelH { for kx in 0..<g.kernelW {
                let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                let xv = x[((b * g.inChannels + grp * icg + ci) * h + iy) * w + ix]
                s += Double(xv) * Double(weight[((oc * icg + ci) * g.kernelH + ky) * g.kernelW + kx])
            } } }
            y[((b * g.outChannels + oc) * oh + oy) * ow + ox] = Float(s)
        } }
    } }
    return y
}

/// NCHW <-> CNHW.
func toCNHW(_ x: [Float], n: Int, c: Int, hw: Int) -> [Float] {
    var y = x
    for b in 0..<n { for ch in 0..<c { for i in 0..<hw { y[(ch * n + b) * hw + i] = x[(b * c + ch) * hw + i] } } }
    return y
}
func toNCHW(_ x: [Float], n: Int, c: Int, hw: Int) -> [Float] {
    var y = x
    for b in 0..<n { for ch in 0..<c { for i in 0..<hw { y[(b * c + ch) * hw + i] = x[(ch * n + b) * hw + i] } } }
    return y
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

struct ConvCase: CustomStringConvertible, Sendable {
    var n, c, h, w, oc, k, s, p, groups: Int
    var cnhwInput: Bool
    var description: String { "n\(n) c\(c) \(h)x\(w) oc\(oc) k\(k) s\(s) p\(p) g\(groups) \(cnhwInput ? "CNHW" : "NCHW")" }
}

@Test(arguments: [
    ConvCase(n: 2, c: 4, h: 7, w: 6, oc: 6, k: 3, s: 2, p: 1, groups: 2, cnhwInput: false),
    ConvCase(n: 3, c: 3, h: 11, w: 9, oc: 5, k: 7, s: 2, p: 3, groups: 1, cnhwInput: false),
    ConvCase(n: 2, c: 8, h: 5, w: 5, oc: 7, k: 1, s: 1, p: 0, groups: 1, cnhwInput: true),   // direct sgemm
    ConvCase(n: 2, c: 8, h: 9, w: 7, oc: 4, k: 1, s: 2, p: 0, groups: 1, cnhwInput: true),   // 1x1 stride 2
    ConvCase(n: 2, c: 6, h: 8, w: 10, oc: 6, k: 3, s: 1, p: 1, groups: 6, cnhwInput: true),  // depthwise, generic path
    ConvCase(n: 1, c: 5, h: 6, w: 6, oc: 3, k: 3, s: 1, p: 2, groups: 1, cnhwInput: true),   // padding > kernel/2
    ConvCase(n: 2, c: 3, h: 13, w: 45, oc: 4, k: 7, s: 2, p: 3, groups: 1, cnhwInput: false), // stems: im2col's 8-wide
    ConvCase(n: 2, c: 3, h: 9, w: 40, oc: 5, k: 3, s: 2, p: 1, groups: 1, cnhwInput: false),  // stride-2 gather
])
func conv2dMatchesNaiveLoops(_ t: ConvCase) {
    let g = ConvGeometry(inChannels: t.c, outChannels: t.oc, kernel: t.k, stride: t.s, padding: t.p, groups: t.groups)
    let x = values(t.n * t.c * t.h * t.w, seed: 1)
    let wt = values(g.weightCount, seed: 2)
    let bias = values(t.oc, seed: 3)
    let ref = naiveConv(x, n: t.n, h: t.h, w: t.w, g: g, weight: wt, bias: bias)
    let (oh, ow) = g.outputSize(height: t.h, width: t.w)
    let input = t.cnhwInput ? toCNHW(x, n: t.n, c: t.c, hw: t.h * t.w) : x
    let layout: PlaneLayout = t.cnhwInput ? .cnhw(batch: t.n, height: t.h, width: t.w) : .nchw(channels: t.c, height: t.h, width: t.w)
    // every parallel mode: 1 worker, 2 workers splitting columns, 2 workers splitting channels; tiny chunks
    // (extra scratch lets pointwise convolutions stage their GEMM output in a cache-sized block)
    for (workers, minCols, scratchCols) in [(1, 256, 1000), (2, 1, 3), (2, 100_000, 5)] { for extra in [1, 2 * t.oc * 64] {
        var out = [Float](repeating: .nan, count: t.n * t.oc * oh * ow)
        var scratch = [Float](repeating: .nan, count: conv2dScratchCount(g, chunkColumns: scratchCols, workers: 2) + extra)
        let sc = scratch.count
        input.withUnsafeBufferPointer { xi in wt.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
            out.withUnsafeMutableBufferPointer { o in scratch.withUnsafeMutableBufferPointer { s in
                conv2dForward(output: o.baseAddress!, input: xi.baseAddress!, layout: layout, batch: t.n, height: t.h, width: t.w,
                              geometry: g, weight: wp.baseAddress!, bias: bp.baseAddress!,
                              scratch: s.baseAddress!, scratchCount: sc, workers: workers,
                              minColumnsPerWorker: minCols, outputChunkFloats: 3 * t.oc)
            } }
        } } }
        let got = toNCHW(out, n: t.n, c: t.oc, hw: oh * ow)
        #expect(maxAbsDiff(got, ref) < 1e-4, "\(t) workers \(workers) minCols \(minCols) extra scratch \(extra)")
    } }
}

@Test func convEpilogueAddsResidualThenActivation() {
    let g = ConvGeometry(inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1)
    let n = 2, h = 5, w = 4
    let x = values(n * 3 * h * w, seed: 5), wt = values(g.weightCount, seed: 6), b = values(4, seed: 7)
    let res = values(n * 4 * h * w, seed: 8).map { $0 * 9 }  // CNHW residual, large enough for relu6 to clip
    let conv = toCNHW(naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: b), n: n, c: 4, hw: h * w)
    for act in [Activation.none, .relu, .relu6] {
        var out = [Float](repeating: 0, count: res.count)
        var scratch = [Float](repeating: 0, count: 27 * 40 * 2)
        let sc = scratch.count
        conv2dForward(output: &out, input: x, layout: .nchw(channels: 3, height: h, width: w), batch: n, height: h, width: w,
                      geometry: g, weight: wt, bias: b, residual: res, activation: act, scratch: &scratch, scratchCount: sc)
        let expected = zip(conv, res).map { (c, r) -> Float in
            switch act { case .none: return c + r; case .relu: return max(c + r, 0); case .relu6: return min(max(c + r, 0), 6) }
        }
        #expect(maxAbsDiff(out, expected) < 1e-4, "\(act)")
        if act == .relu6 { #expect(out.contains(6) && out.contains(0)) }
    }
}

@Test(arguments: [(1, 13, 11), (2, 13, 11), (1, 16, 16), (2, 7, 9), (1, 1, 1), (2, 2, 3), (2, 40, 37), (2, 16, 16), (1, 30, 29)])
func depthwise3x3MatchesNaiveLoops(_ stride: Int, _ h: Int, _ w: Int) {
    let n = 3, c = 5
    let g = ConvGeometry(inChannels: c, outChannels: c, kernel: 3, stride: stride, padding: 1, groups: c)
    let x = values(n * c * h * w, seed: 11).map { $0 * 8 }  // large enough for relu6 to clip
    let wt = values(c * 9, seed: 12), b = values(c, seed: 13)
    let ref = naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: b).map { min(max($0, 0), 6) }
    let (oh, ow) = g.outputSize(height: h, width: w)
    for workers in [1, 2] {
        var out = [Float](repeating: .nan, count: n * c * oh * ow)
        var scratch = [Float](repeating: .nan, count: 2 * depthwiseScratchCount(height: h, width: w))
        depthwiseConv3x3Forward(output: &out, input: toCNHW(x, n: n, c: c, hw: h * w), channels: c, batch: n,
                                height: h, width: w, stride: stride, weight: wt, bias: b, activation: .relu6,
                                scratch: &scratch, workers: workers)
        #expect(maxAbsDiff(toNCHW(out, n: n, c: c, hw: oh * ow), ref) < 1e-4, "stride \(stride) \(h)x\(w) workers \(workers)")
    }
}

@Test func maxPoolKnownValues() {
    // 4x4 plane 0..15, 3x3 / 2 pad 1: windows end at rows/cols {0,1}, {1,2,3} -> [5, 7, 13, 15]
    let x = (0..<16).map(Float.init)
    var y = [Float](repeating: 0, count: 4)
    maxPool2dForward(output: &y, input: x, planes: 1, height: 4, width: 4)
    #expect(y == [5, 7, 13, 15])
    // padding never wins: all-negative input
    let neg = x.map { -$0 - 1 }
    maxPool2dForward(output: &y, input: neg, planes: 1, height: 4, width: 4)
    #expect(y == [-1, -2, -5, -6])
}

@Test(arguments: [(9, 7), (4, 6), (1, 2), (2, 3), (5, 1), (112, 112)])
func maxPoolMatchesNaiveLoops(_ h: Int, _ w: Int) {
    let planes = 3
    let x = values(planes * h * w, seed: 21)
    let oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1
    var y = [Float](repeating: 0, count: planes * oh * ow)
    maxPool2dForward(output: &y, input: x, planes: planes, height: h, width: w, workers: 2)
    for p in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
        var m = -Float.infinity
        for ky in 0..<3 { for kx in 0..<3 {
            let iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx
            if iy >= 0 && iy < h && ix >= 0 && ix < w { m = max(m, x[(p * h + iy) * w + ix]) }
        } }
        #expect(y[(p * oh + oy) * ow + ox] == m)
    } } }
}

@Test func globalAvgPoolGivesRowsPerImage() {
    // CNHW: 2 channels x 2 images x 3 pixels
    let x: [Float] = [1, 2, 3,  10, 20, 30,  -1, -1, -4,  0, 6, 0]
    var y = [Float](repeating: 0, count: 4)
    globalAvgPoolForward(output: &y, input: x, channels: 2, batch: 2, hw: 3)
    #expect(y == [2, -2, 20, 2])  // (image 0: c0, c1), (image 1: c0, c1)
}

@Test func linearMatchesDefinition() {
    let x: [Float] = [1, 2, 3, -1, 0, 1]         // 2 x 3
    let w: [Float] = [1, 0, 0, 0, 1, 1, 2, 2, 2, -1, 0, 1]  // 4 x 3
    let b: [Float] = [0.5, 0, 0, 1]
    var y = [Float](repeating: 0, count: 8)
    linearForward(output: &y, input: x, batch: 2, inFeatures: 3, outFeatures: 4, weight: w, bias: b)
    #expect(y == [1.5, 5, 12, 3, -0.5, 1, 0, 3])
}

@Test func foldedBatchNormEqualsConvThenBatchNorm() {
    let g = ConvGeometry(inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1)
    let n = 2, h = 5, w = 5
    let x = values(n * 3 * h * w, seed: 31), wt = values(g.weightCount, seed: 32)
    let gamma = values(4, seed: 33).map { $0 + 1.5 }, beta = values(4, seed: 34)
    let mean = values(4, seed: 35), variance = values(4, seed: 36).map { $0 * $0 + 0.1 }
    var conv = naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: nil)
    batchNormEvalForward(output: &conv, input: conv, planes: n * 4, hw: h * w, channelOf: { $0 % 4 },
                         mean: mean, variance: variance, gamma: gamma, beta: beta)
    let f = foldBatchNorm(weight: wt, bias: nil, outChannels: 4, gamma: gamma, beta: beta, mean: mean, variance: variance)
    let folded = naiveConv(x, n: n, h: h, w: w, g: g, weight: f.weight, bias: f.bias)
    #expect(maxAbsDiff(conv, folded) < 1e-4)
    // and BN by hand on one value
    let c = 2, v = conv[(1 * 4 + c) * 25 + 7]
    let raw = naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: nil)[(1 * 4 + c) * 25 + 7]
    #expect(abs(v - ((raw - mean[c]) / (variance[c] + 1e-5).squareRoot() * gamma[c] + beta[c])) < 1e-5)
}

@Test func activations() {
    var x: [Float] = [-2, -0.5, 0, 3, 6, 7.5]
    var y = x
    reluForward(&x, count: x.count)
    #expect(x == [0, 0, 0, 3, 6, 7.5])
    relu6Forward(&y, count: y.count)
    #expect(y == [0, 0, 0, 3, 6, 6])
}

@Test(arguments: [(1, 4, 4), (2, 7, 7), (3, 5, 6), (2, 1, 3), (1, 14, 9), (2, 19, 35), (1, 16, 16)])
func winogradMatchesNaiveConvolution(_ n: Int, _ h: Int, _ w: Int) {
    let ic = 5, oc = 7
    let g = ConvGeometry(inChannels: ic, outChannels: oc, kernel: 3, stride: 1, padding: 1)
    let x = values(n * ic * h * w, seed: 41), wt = values(g.weightCount, seed: 42), b = values(oc, seed: 43)
    let res = values(n * oc * h * w, seed: 44)  // CNHW
    let conv = toCNHW(naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: b), n: n, c: oc, hw: h * w)
    let expected = zip(conv, res).map { max($0 + $1, 0) }
    let u = winogradTransformWeights(wt, outChannels: oc, inChannels: ic)
    let xc = toCNHW(x, n: n, c: ic, hw: h * w)
    for (workers, minTiles, chunkTiles) in [(1, 64, 1000), (2, 1, 3), (2, 10_000, 2)] {
        var out = [Float](repeating: .nan, count: n * oc * h * w)
        var scratch = [Float](repeating: .nan, count: 2 * winogradScratchCount(inChannels: ic, outChannels: oc, tiles: max(chunkTiles, (w + 1) / 2)))
        let sc = scratch.count
        conv3x3WinogradForward(output: &out, input: xc, batch: n, inChannels: ic, outChannels: oc, height: h, width: w,
                               u: u, bias: b, residual: res, activation: .relu, scratch: &scratch, scratchCount: sc,
                               workers: workers, minTilesPerWorker: minTiles)
        #expect(maxAbsDiff(out, expected) < 1e-4, "n\(n) \(h)x\(w) workers \(workers) minTiles \(minTiles)")
    }
}

@Test(arguments: [(1, 4, 4), (2, 7, 7), (3, 5, 6), (2, 1, 3), (1, 14, 9), (2, 19, 35), (1, 16, 16), (2, 28, 28)])
func winograd4MatchesNaiveConvolution(_ n: Int, _ h: Int, _ w: Int) {
    let ic = 5, oc = 7
    let g = ConvGeometry(inChannels: ic, outChannels: oc, kernel: 3, stride: 1, padding: 1)
    let x = values(n * ic * h * w, seed: 71), wt = values(g.weightCount, seed: 72), b = values(oc, seed: 73)
    let res = values(n * oc * h * w, seed: 74)  // CNHW
    let conv = toCNHW(naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: b), n: n, c: oc, hw: h * w)
    let u = winograd4TransformWeights(wt, outChannels: oc, inChannels: ic)
    let xc = toCNHW(x, n: n, c: ic, hw: h * w)
    for act in [Activation.relu, .none] {
        let expected = zip(conv, res).map { act == .relu ? max($0 + $1, 0) : $0 + $1 }
        for (workers, minTiles, chunkTiles) in [(1, 64, 1000), (2, 1, 3), (2, 10_000, 2)] {
            var out = [Float](repeating: .nan, count: n * oc * h * w)
            var scratch = [Float](repeating: .nan, count: 2 * winograd4ScratchCount(inChannels: ic, outChannels: oc, tiles: max(chunkTiles, (w + 3) / 4)))
            let sc = scratch.count
            conv3x3Winograd4Forward(output: &out, input: xc, batch: n, inChannels: ic, outChannels: oc, height: h, width: w,
                                    u: u, bias: b, residual: res, activation: act, scratch: &scratch, scratchCount: sc,
                                    workers: workers, minTilesPerWorker: minTiles)
            #expect(maxAbsDiff(out, expected) < 1e-4, "n\(n) \(h)x\(w) workers \(workers) minTiles \(minTiles) \(act)")
        }
    }
}

/// The Winograd backward kernels against plain float64 loops (CNHW): the input gradient as a forward
/// call with the forward pass's U (`flippedTransposed`, accumulating through `residual`), and the weight
/// gradient (accumulated into what gradWeight held), with odd sizes and chunks smaller than the batch.
@Test(arguments: [(1, 4, 6), (2, 7, 7), (3, 5, 6), (2, 14, 9), (1, 1, 3)])
func winogradBackwardMatchesNaiveLoops(_ n: Int, _ h: Int, _ w: Int) {
    let ic = 5, oc = 6, hw = h * w
    let x = values(ic * n * hw, seed: 61), dy = values(oc * n * hw, seed: 62), wt = values(oc * ic * 9, seed: 63)
    let prior = values(ic * n * hw, seed: 64), priorW = values(oc * ic * 9, seed: 65)
    var dx = [Double](repeating: 0, count: ic * n * hw), dw = [Double](repeating: 0, count: oc * ic * 9)
    for b in 0..<n { for o in 0..<oc { for i in 0..<ic { for y in 0..<h { for xx in 0..<w {
        let g = Double(dy[(o * n + b) * hw + y * w + xx])
        for ky in 0..<3 { for kx in 0..<3 {
            let iy = y + ky - 1, ix = xx + kx - 1
            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
            dx[(i * n + b) * hw + iy * w + ix] += g * Double(wt[(o * ic + i) * 9 + ky * 3 + kx])
            dw[(o * ic + i) * 9 + ky * 3 + kx] += g * Double(x[(i * n + b) * hw + iy * w + ix])
        } }
    } } } } }
    let u = winogradTransformWeights(wt, outChannels: oc, inChannels: ic)
    for (workers, scratchTiles) in [(1, 1000), (2, 1), (2, 3)] {
        // input gradient: conv of dY (oc channels in) to ic channels out, added to `prior`
        var gx = prior
        var scratch = [Float](repeating: .nan, count: 2 * winogradScratchCount(inChannels: oc, outChannels: ic, tiles: max(scratchTiles, (w + 1) / 2)))
        let sc = scratch.count
        gx.withUnsafeMutableBufferPointer { g in
            conv3x3WinogradForward(output: g.baseAddress!, input: dy, batch: n, inChannels: oc, outChannels: ic, height: h, width: w,
                                   u: u, flippedTransposed: true, bias: nil, residual: UnsafePointer(g.baseAddress!), activation: .none,
                                   scratch: &scratch, scratchCount: sc, workers: workers, minTilesPerWorker: 1)
        }
        #expect(maxAbsDiff(gx, zip(prior, dx).map { Float(Double($0) + $1) }) < 1e-4, "dX n\(n) \(h)x\(w) workers \(workers)")
        var gw = priorW
        var gu = [Float](repeating: .nan, count: 16 * oc * ic)
        let tiles = max(scratchTiles, (w + 1) / 2)
        var scratchW = [Float](repeating: .nan, count: winogradBackwardWeightScratchCount(inChannels: ic, outChannels: oc, tiles: tiles, workers: workers))
        let scw = scratchW.count
        conv3x3WinogradBackwardWeight(gradWeight: &gw, gradOutput: dy, input: x, batch: n, inChannels: ic, outChannels: oc,
                                      height: h, width: w, gradU: &gu, scratch: &scratchW, scratchCount: scw, workers: workers)
        #expect(maxAbsDiff(gw, zip(priorW, dw).map { Float(Double($0) + $1) }) < 1e-4, "dW n\(n) \(h)x\(w) workers \(workers)")
    }
}

@Test func pointwiseStagedEpilogueAddsResidual() {
    let g = ConvGeometry(inChannels: 6, outChannels: 5, kernel: 1)
    let n = 3, h = 4, w = 5
    let x = values(n * 6 * h * w, seed: 51), wt = values(g.weightCount, seed: 52), b = values(5, seed: 53)
    let res = values(n * 5 * h * w, seed: 54).map { $0 * 9 }
    let conv = toCNHW(naiveConv(x, n: n, h: h, w: w, g: g, weight: wt, bias: b), n: n, c: 5, hw: h * w)
    let xc = toCNHW(x, n: n, c: 6, hw: h * w)
    for act in [Activation.none, .relu6] {
        for workers in [1, 2] {
            var out = [Float](repeating: .nan, count: res.count)
            var scratch = [Float](repeating: .nan, count: 4096)
            conv2dForward(output: &out, input: xc, layout: .cnhw(batch: n, height: h, width: w), batch: n, height: h, width: w,
                          geometry: g, weight: wt, bias: b, residual: res, activation: act, scratch: &scratch, scratchCount: 4096,
                          workers: workers, minColumnsPerWorker: 8, outputChunkFloats: 5 * 7)
            let expected = zip(conv, res).map { act == .none ? $0 + $1 : min(max($0 + $1, 0), 6) }
            #expect(maxAbsDiff(out, expected) < 1e-4, "\(act) workers \(workers)")
        }
    }
}
