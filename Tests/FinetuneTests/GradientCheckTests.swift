import Foundation
import Testing
import NN

// Gradient checks of every layer backward against central finite differences of a float64
// reference forward (written here, independently of the kernels). Each check uses the scalar
// loss L = sum(R * layer(inputs)) with a fixed random R, so dL/d(output) = R is what the backward
// receives. The float32 analytic gradients must match to a relative L2 error of 1e-4.

struct LCG {
    var s: UInt64
    mutating func next() -> Double {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Double(s >> 11) * 0x1p-53
    }
    mutating func normal() -> Double { (next() + next() + next() + next() - 2) * 1.7 }
    mutating func array(_ n: Int) -> [Double] { (0..<n).map { _ in normal() } }
}

func f32(_ a: [Double]) -> [Float] { a.map(Float.init) }

/// Central differences of `loss` with respect to every element of `x` (float64).
func numericGradient(_ x: [Double], h: Double = 1e-5, _ loss: ([Double]) -> Double) -> [Double] {
    var g = [Double](repeating: 0, count: x.count)
    var xp = x
    for i in 0..<x.count {
        xp[i] = x[i] + h; let a = loss(xp)
        xp[i] = x[i] - h; let b = loss(xp)
        xp[i] = x[i]
        g[i] = (a - b) / (2 * h)
    }
    return g
}

func relErr(_ a: [Float], _ b: [Double]) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - b[i]; num += d * d; den += b[i] * b[i] }
    return (num / max(den, 1e-300)).squareRoot()
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

// MARK: float64 references

/// Convolution (any groups, stride, padding) of x with plane (n, c) at n*imageStride + c*channelStride;
/// output CNHW.
func convRef(_ x: [Double], _ w: [Double], n: Int, h: Int, wd: Int, g: ConvGeometry, layout: PlaneLayout) -> [Double] {
    let (oh, ow) = g.outputSize(height: h, width: wd)
    let icg = g.inChannels / g.groups, ocg = g.outChannels / g.groups
    var y = [Double](repeating: 0, count: g.outChannels * n * oh * ow)
    for oc in 0..<g.outChannels {
        let grp = oc / ocg
        for img in 0..<n { for oy in 0..<oh { for ox in 0..<ow {
            var s = 0.0
            for ci in 0..<icg { for ky in 0..<g.kernelH { for kx in 0..<g.kernelW {
                let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                let c = grp * icg + ci
                s += w[((oc * icg + ci) * g.kernelH + ky) * g.kernelW + kx] * x[img * layout.imageStride + c * layout.channelStride + iy * wd + ix]
            } } }
            y[((oc * n + img) * oh + oy) * ow + ox] = s
        } } }
    }
    return y
}

func actRef(_ v: Double, _ a: Activation) -> Double {
    switch a { case .none: return v; case .relu: return max(v, 0); case .relu6: return min(max(v, 0), 6) }
}

/// Training BatchNorm over CNHW (channel rows of m), + residual, activation.
func bnRef(_ x: [Double], gamma: [Double], beta: [Double], residual: [Double]?, c: Int, m: Int, act: Activation, eps: Double = 1e-5) -> [Double] {
    var y = x
    for ch in 0..<c {
        let row = x[(ch * m)..<((ch + 1) * m)]
        let mean = row.reduce(0, +) / Double(m)
        let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(m)
        for i in 0..<m {
            let k = ch * m + i
            y[k] = actRef((x[k] - mean) / (v + eps).squareRoot() * gamma[ch] + beta[ch] + (residual?[k] ?? 0), act)
        }
    }
    return y
}

@Suite struct GradientCheckTests {
    func checkConv(_ g: ConvGeometry, n: Int, h: Int, w: Int, nchwInput: Bool, seed: UInt64) {
        var rng = LCG(s: seed)
        let layout: PlaneLayout = nchwInput ? .nchw(channels: g.inChannels, height: h, width: w) : .cnhw(batch: n, height: h, width: w)
        let x = rng.array(n * g.inChannels * h * w)
        let wt = rng.array(g.weightCount)
        let (oh, ow) = g.outputSize(height: h, width: w)
        let r = rng.array(g.outChannels * n * oh * ow)
        // forward parity
        var y = [Float](repeating: 0, count: r.count)
        let xf = f32(x), wf = f32(wt), rf = f32(r)
        var scratch = [Float](repeating: 0, count: 1 << 16)
        let yRef = convRef(x, wt, n: n, h: h, wd: w, g: g, layout: layout)
        var gw = [Float](repeating: 0, count: wt.count), gx = [Float](repeating: 0, count: x.count)
        xf.withUnsafeBufferPointer { xp in wf.withUnsafeBufferPointer { wp in rf.withUnsafeBufferPointer { rp in
            y.withUnsafeMutableBufferPointer { yp in scratch.withUnsafeMutableBufferPointer { sp in
                gw.withUnsafeMutableBufferPointer { gwp in gx.withUnsafeMutableBufferPointer { gxp in
                    let depthwise = g.groups > 1
                    if depthwise {
                        depthwiseConv3x3Forward(output: yp.baseAddress!, input: xp.baseAddress!, channels: g.inChannels, batch: n, height: h, width: w,
                                                stride: g.stride, weight: wp.baseAddress!, bias: nil, activation: .none, scratch: sp.baseAddress!, workers: 2)
                        depthwiseConv3x3Backward(gradOutput: rp.baseAddress!, input: xp.baseAddress!, channels: g.inChannels, batch: n, height: h, width: w,
                                                 stride: g.stride, weight: wp.baseAddress!, gradWeight: gwp.baseAddress!, gradInput: gxp.baseAddress!,
                                                 scratch: sp.baseAddress!, workers: 2)
                    } else {
                        conv2dForward(output: yp.baseAddress!, input: xp.baseAddress!, layout: layout, batch: n, height: h, width: w, geometry: g,
                                      weight: wp.baseAddress!, bias: nil, scratch: sp.baseAddress!, scratchCount: sp.count, workers: 1)
                        // a small scratch forces several column chunks (two workers, chunks of 5 columns)
                        conv2dBackward(gradOutput: rp.baseAddress!, input: xp.baseAddress!, layout: layout, batch: n, height: h, width: w, geometry: g,
                                       weight: wp.baseAddress!, gradWeight: gwp.baseAddress!, gradInput: gxp.baseAddress!,
                                       scratch: sp.baseAddress!, scratchCount: g.weightCount + 2 * g.groupK * 5, workers: 2)
                    }
                } }
            } }
        } } }
        #expect(relErr(y, yRef) < 1e-5, "forward \(g)")
        let ngw = numericGradient(wt) { dot(r, convRef(x, $0, n: n, h: h, wd: w, g: g, layout: layout)) }
        let ngx = numericGradient(x) { dot(r, convRef($0, wt, n: n, h: h, wd: w, g: g, layout: layout)) }
        #expect(relErr(gw, ngw) < 1e-4, "grad weight \(g): \(relErr(gw, ngw))")
        #expect(relErr(gx, ngx) < 1e-4, "grad input \(g): \(relErr(gx, ngx))")
        if canBackpropInputByForward(g) && !nchwInput {
            // the input gradient as a forward convolution with flipped, transposed weights, written
            // directly and accumulated onto existing values
            var direct = [Float](repeating: 7, count: x.count), acc = [Float](repeating: 0.5, count: x.count)
            var wT = [Float](repeating: 0, count: wt.count), temp = [Float](repeating: 0, count: x.count)
            for accumulate in [false, true] {
                var out = accumulate ? acc : direct
                out.withUnsafeMutableBufferPointer { op in
                    conv2dBackwardInputByForward(gradOutput: rf, batch: n, height: h, width: w, geometry: g, weight: wf, weightT: &wT,
                                                 gradInput: op.baseAddress!, accumulate: accumulate, temp: &temp,
                                                 scratch: &scratch, scratchCount: scratch.count, workers: 2)
                }
                if accumulate { acc = out } else { direct = out }
            }
            #expect(relErr(direct, ngx) < 1e-4, "grad input by forward \(g)")
            #expect(relErr(acc, ngx.map { $0 + 0.5 }) < 1e-4, "accumulated grad input by forward \(g)")
        }
    }

    @Test func convolution3x3Padded() { checkConv(ConvGeometry(inChannels: 3, outChannels: 4, kernel: 3, stride: 1, padding: 1), n: 2, h: 6, w: 5, nchwInput: false, seed: 1) }
    @Test func convolutionStrided7x7NCHW() { checkConv(ConvGeometry(inChannels: 3, outChannels: 4, kernel: 7, stride: 2, padding: 3), n: 2, h: 9, w: 8, nchwInput: true, seed: 2) }
    @Test func convolution3x3Stride2() { checkConv(ConvGeometry(inChannels: 4, outChannels: 5, kernel: 3, stride: 2, padding: 1), n: 3, h: 7, w: 6, nchwInput: false, seed: 3) }
    /// Few columns for many weights: the whole-batch im2col path of the weight gradient.
    @Test func convolutionLateLayerShape() { checkConv(ConvGeometry(inChannels: 8, outChannels: 16, kernel: 3, stride: 2, padding: 1), n: 1, h: 4, w: 4, nchwInput: false, seed: 9) }
    @Test func convolution5x5Padded() { checkConv(ConvGeometry(inChannels: 2, outChannels: 3, kernel: 5, stride: 1, padding: 2), n: 2, h: 6, w: 7, nchwInput: false, seed: 8) }
    @Test func convolutionPointwise() { checkConv(ConvGeometry(inChannels: 6, outChannels: 5, kernel: 1), n: 2, h: 4, w: 3, nchwInput: false, seed: 4) }
    @Test func convolutionPointwiseStride2() { checkConv(ConvGeometry(inChannels: 6, outChannels: 5, kernel: 1, stride: 2), n: 2, h: 5, w: 5, nchwInput: false, seed: 5) }
    @Test func depthwiseStride1() { checkConv(ConvGeometry(inChannels: 5, outChannels: 5, kernel: 3, stride: 1, padding: 1, groups: 5), n: 2, h: 6, w: 11, nchwInput: false, seed: 6) }
    @Test func depthwiseStride2() { checkConv(ConvGeometry(inChannels: 4, outChannels: 4, kernel: 3, stride: 2, padding: 1, groups: 4), n: 3, h: 7, w: 9, nchwInput: false, seed: 7) }
    @Test func depthwiseStride2Wide() { checkConv(ConvGeometry(inChannels: 3, outChannels: 3, kernel: 3, stride: 2, padding: 1, groups: 3), n: 2, h: 10, w: 20, nchwInput: false, seed: 10) }

    func checkBN(_ act: Activation, residual: Bool, seed: UInt64) {
        var rng = LCG(s: seed)
        let c = 3, m = 2 * 5 * 4
        let x = rng.array(c * m).map { $0 * 1.5 + 0.7 }
        let gamma = rng.array(c).map { 1 + 0.3 * $0 }, beta = rng.array(c).map { 1.5 + $0 }
        let res = residual ? rng.array(c * m) : nil
        let r = rng.array(c * m)
        var y = [Float](repeating: 0, count: c * m), mean = [Float](repeating: 0, count: c), inv = [Float](repeating: 0, count: c)
        var rm: [Float] = [0.1, -0.2, 0.3], rv: [Float] = [1, 2, 0.5]
        var gx = [Float](repeating: 0, count: c * m), gr = [Float](repeating: 0, count: c * m)
        var gg = [Float](repeating: 0, count: c), gb = [Float](repeating: 0, count: c)
        let xf = f32(x), gf = f32(gamma), bf = f32(beta), resf = res.map(f32), rf = f32(r)
        batchNormTrainForward(output: &y, input: xf, channels: c, count: m, gamma: gf, beta: bf, residual: resf,
                              activation: act, saveMean: &mean, saveInvStd: &inv, runningMean: &rm, runningVar: &rv, workers: 2)
        let yRef = bnRef(x, gamma: gamma, beta: beta, residual: res, c: c, m: m, act: act)
        #expect(relErr(y, yRef) < 1e-5)
        // running statistics: momentum 0.1, unbiased variance
        for ch in 0..<c {
            let row = x[(ch * m)..<((ch + 1) * m)]
            let mu = row.reduce(0, +) / Double(m)
            let v = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(m - 1)
            let wantM = 0.9 * [0.1, -0.2, 0.3][ch] + 0.1 * mu, wantV = 0.9 * [1, 2, 0.5][ch] + 0.1 * v
            #expect(abs(Double(rm[ch]) - wantM) < 1e-6 && abs(Double(rv[ch]) - wantV) < 1e-5, "running stats channel \(ch)")
        }
        gr.withUnsafeMutableBufferPointer { grp in
            batchNormTrainBackward(gradOutput: rf, output: y, input: xf, channels: c, count: m, gamma: gf, saveMean: mean, saveInvStd: inv,
                                   activation: act, gradInput: &gx, gradResidual: residual ? grp.baseAddress! : nil,
                                   gradGamma: &gg, gradBeta: &gb, workers: 2)
        }
        if !residual {
            // the activation mask recomputed from x (beta given) is the one read from y, bit for bit
            var gx2 = [Float](repeating: .nan, count: c * m), gg2 = [Float](repeating: 0, count: c), gb2 = gg2
            batchNormTrainBackward(gradOutput: rf, output: [Float](repeating: .nan, count: c * m), input: xf, channels: c, count: m,
                                   gamma: gf, beta: bf, saveMean: mean, saveInvStd: inv, activation: act, gradInput: &gx2,
                                   gradResidual: nil, gradGamma: &gg2, gradBeta: &gb2, accumulateInput: false, workers: 2)
            #expect(gx2 == gx && gg2 == gg && gb2 == gb, "mask recomputed from x")
        }
        let h = 1e-6
        #expect(relErr(gx, numericGradient(x, h: h) { dot(r, bnRef($0, gamma: gamma, beta: beta, residual: res, c: c, m: m, act: act)) }) < 1e-4)
        #expect(relErr(gg, numericGradient(gamma, h: h) { dot(r, bnRef(x, gamma: $0, beta: beta, residual: res, c: c, m: m, act: act)) }) < 1e-4)
        #expect(relErr(gb, numericGradient(beta, h: h) { dot(r, bnRef(x, gamma: gamma, beta: $0, residual: res, c: c, m: m, act: act)) }) < 1e-4)
        if let res {
            #expect(relErr(gr, numericGradient(res, h: h) { dot(r, bnRef(x, gamma: gamma, beta: beta, residual: $0, c: c, m: m, act: act)) }) < 1e-4)
        }
    }

    /// The backward's activation mask recomputed from x equals the one read from y, bit for bit, with
    /// both clamps hit and a tail that is not a multiple of 8.
    @Test(arguments: [Activation.relu, .relu6]) func batchNormMaskFromInput(_ act: Activation) {
        var rng = LCG(s: 31)
        let c = 3, m = 45
        let x = f32(rng.array(c * m)), gamma = f32(rng.array(c).map { 3 + $0 }), beta = f32(rng.array(c).map { 3 + $0 })
        let dy = f32(rng.array(c * m))
        var y = [Float](repeating: 0, count: c * m), mean = [Float](repeating: 0, count: c), inv = mean
        batchNormTrainForward(output: &y, input: x, channels: c, count: m, gamma: gamma, beta: beta, activation: act,
                              saveMean: &mean, saveInvStd: &inv, runningMean: nil, runningVar: nil, workers: 2)
        #expect(y.contains(0) && (act == .relu || y.contains(6)) && y.contains { $0 > 0 && $0 < 6 })
        var gA = [Float](repeating: 0, count: c * m), gB = [Float](repeating: .nan, count: c * m)
        var ggA = [Float](repeating: 0, count: c), gbA = ggA, ggB = ggA, gbB = ggA
        batchNormTrainBackward(gradOutput: dy, output: y, input: x, channels: c, count: m, gamma: gamma, saveMean: mean, saveInvStd: inv,
                               activation: act, gradInput: &gA, gradResidual: nil, gradGamma: &ggA, gradBeta: &gbA, workers: 2)
        batchNormTrainBackward(gradOutput: dy, output: [Float](repeating: .nan, count: c * m), input: x, channels: c, count: m,
                               gamma: gamma, beta: beta, saveMean: mean, saveInvStd: inv, activation: act, gradInput: &gB,
                               gradResidual: nil, gradGamma: &ggB, gradBeta: &gbB, accumulateInput: false, workers: 2)
        #expect(gA == gB && ggA == ggB && gbA == gbB)
    }

    @Test func batchNormTraining() { checkBN(.none, residual: false, seed: 11) }
    @Test func batchNormReLUResidual() { checkBN(.relu, residual: true, seed: 12) }
    @Test func batchNormReLU6() { checkBN(.relu6, residual: false, seed: 13) }

    @Test func reluAndRelu6() {
        var rng = LCG(s: 21)
        let x = rng.array(50).map { $0 * 4 }, r = rng.array(50)
        for (six, f) in [(false, { (v: Double) in max(v, 0) }), (true, { (v: Double) in min(max(v, 0), 6) })] {
            var y = f32(x)
            six ? relu6Forward(&y, count: 50) : reluForward(&y, count: 50)
            var g = [Float](repeating: 0, count: 50)
            if six { relu6Backward(gradInput: &g, gradOutput: f32(r), output: y, count: 50) }
            else { reluBackward(gradInput: &g, gradOutput: f32(r), output: y, count: 50) }
            #expect(relErr(g, numericGradient(x, h: 1e-6) { dot(r, $0.map(f)) }) < 1e-6)
        }
    }

    @Test func maxPool() {
        var rng = LCG(s: 31)
        let planes = 3, h = 7, w = 6
        let oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1
        let x = rng.array(planes * h * w), r = rng.array(planes * oh * ow)
        func ref(_ x: [Double]) -> [Double] {
            var y = [Double](repeating: -.infinity, count: planes * oh * ow)
            for p in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
                for iy in max(0, oy * 2 - 1)..<min(h, oy * 2 + 2) { for ix in max(0, ox * 2 - 1)..<min(w, ox * 2 + 2) {
                    y[(p * oh + oy) * ow + ox] = max(y[(p * oh + oy) * ow + ox], x[(p * h + iy) * w + ix])
                } }
            } } }
            return y
        }
        var y = [Float](repeating: 0, count: r.count), am = [Int32](repeating: 0, count: r.count)
        maxPool2dTrainForward(output: &y, argmax: &am, input: f32(x), planes: planes, height: h, width: w, workers: 2)
        #expect(relErr(y, ref(x)) < 1e-7)
        var g = [Float](repeating: 0, count: x.count)
        maxPool2dBackward(gradInput: &g, gradOutput: f32(r), argmax: am, planes: planes, inputHW: h * w, outputHW: oh * ow, workers: 2)
        #expect(relErr(g, numericGradient(x, h: 1e-6) { dot(r, ref($0)) }) < 1e-6)
    }

    /// `accumulate...: false` overwrites: the same gradient as accumulating into zeros, whatever the
    /// memory held before (NaN here).
    @Test func firstWriterOverwrites() {
        var rng = LCG(s: 91)
        let n = 2, c = 3, h = 9, w = 10
        let x = f32(rng.array(n * c * h * w)), wt = f32(rng.array(c * 9))
        var scratch = [Float](repeating: 0, count: 2 * depthwiseBackwardScratchCount(height: h, width: w))
        for stride in [1, 2] {
            let oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1
            let dy = f32(rng.array(n * c * oh * ow))
            var gwA = [Float](repeating: 0, count: c * 9), gwB = gwA
            var zeros = [Float](repeating: 0, count: x.count), nans = [Float](repeating: .nan, count: x.count)
            depthwiseConv3x3Backward(gradOutput: dy, input: x, channels: c, batch: n, height: h, width: w, stride: stride, weight: wt,
                                     gradWeight: &gwA, gradInput: &zeros, scratch: &scratch, workers: 2)
            depthwiseConv3x3Backward(gradOutput: dy, input: x, channels: c, batch: n, height: h, width: w, stride: stride, weight: wt,
                                     gradWeight: &gwB, gradInput: &nans, accumulateInput: false, scratch: &scratch, workers: 2)
            #expect(zeros == nans && gwA == gwB, "depthwise stride \(stride)")
        }
        let m = n * h * w
        let dy = f32(rng.array(c * m)), y = f32(rng.array(c * m)), gamma = f32(rng.array(c))
        let mean = [Float](repeating: 0.1, count: c), invstd = [Float](repeating: 1.3, count: c)
        var gi = [Float](repeating: 0, count: c * m), gr = gi, gi2 = [Float](repeating: .nan, count: c * m), gr2 = gi2
        var gg = [Float](repeating: 0, count: c), gb = gg, gg2 = gg, gb2 = gg
        batchNormTrainBackward(gradOutput: dy, output: y, input: x, channels: c, count: m, gamma: gamma, saveMean: mean, saveInvStd: invstd,
                               activation: .relu, gradInput: &gi, gradResidual: &gr, gradGamma: &gg, gradBeta: &gb, workers: 2)
        batchNormTrainBackward(gradOutput: dy, output: y, input: x, channels: c, count: m, gamma: gamma, saveMean: mean, saveInvStd: invstd,
                               activation: .relu, gradInput: &gi2, gradResidual: &gr2, gradGamma: &gg2, gradBeta: &gb2,
                               accumulateInput: false, accumulateResidual: false, workers: 2)
        #expect(gi == gi2 && gr == gr2 && gg == gg2 && gb == gb2)
        for g in [ConvGeometry(inChannels: c, outChannels: 4, kernel: 1), ConvGeometry(inChannels: c, outChannels: 4, kernel: 3, stride: 2, padding: 1)] {
            let (oh, ow) = g.outputSize(height: h, width: w)
            let dyc = f32(rng.array(4 * n * oh * ow)), wc = f32(rng.array(g.weightCount))
            var a = [Float](repeating: 0, count: x.count), b = [Float](repeating: .nan, count: x.count)
            var sc = [Float](repeating: 0, count: 1 << 14)
            let layout = PlaneLayout.cnhw(batch: n, height: h, width: w)
            conv2dBackwardInput(gradOutput: dyc, layout: layout, batch: n, height: h, width: w, geometry: g, weight: wc, gradInput: &a,
                                scratch: &sc, scratchCount: sc.count, workers: 2)
            conv2dBackwardInput(gradOutput: dyc, layout: layout, batch: n, height: h, width: w, geometry: g, weight: wc, gradInput: &b,
                                accumulate: false, scratch: &sc, scratchCount: sc.count, workers: 2)
            #expect(a == b, "\(g)")
        }
    }

    /// Ties (ReLU zeros, repeated values) and NaNs: the argmax is PyTorch's scan (`v > max || isnan(v)`,
    /// first maximum wins, the last NaN wins), and a window with a NaN gives NaN.
    @Test func maxPoolArgmaxTiesAndNaN() {
        var rng = LCG(s: 7)
        for (h, w) in [(7, 6), (12, 12), (5, 9), (20, 34)] {
            let planes = 4
            let oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1
            var x = rng.array(planes * h * w).map { Float(max(0, ($0 * 4).rounded()) / 4) }  // many ties
            x[3] = .nan; x[4] = .nan; x[h * w + 2 * w + 1] = .nan
            var y = [Float](repeating: 0, count: planes * oh * ow), am = [Int32](repeating: -1, count: y.count)
            maxPool2dTrainForward(output: &y, argmax: &am, input: x, planes: planes, height: h, width: w, workers: 2)
            var mismatches = 0
            for p in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
                var m = -Float.infinity, best = -1
                for iy in max(0, oy * 2 - 1)..<min(h, oy * 2 + 2) { for ix in max(0, ox * 2 - 1)..<min(w, ox * 2 + 2) {
                    let v = x[(p * h + iy) * w + ix]
                    if v > m || v.isNaN { m = v; best = iy * w + ix }
                } }
                let o = (p * oh + oy) * ow + ox
                if Int(am[o]) != best || !(y[o] == m || (y[o].isNaN && m.isNaN)) { mismatches += 1 }
            } } }
            #expect(mismatches == 0, "\(h)x\(w)")
        }
    }

    @Test func globalAveragePool() {
        var rng = LCG(s: 41)
        let c = 3, n = 2, hw = 5
        let x = rng.array(c * n * hw), r = rng.array(n * c)
        func ref(_ x: [Double]) -> [Double] {
            var y = [Double](repeating: 0, count: n * c)
            for ch in 0..<c { for i in 0..<n { y[i * c + ch] = x[((ch * n + i) * hw)..<((ch * n + i + 1) * hw)].reduce(0, +) / Double(hw) } }
            return y
        }
        var g = [Float](repeating: 0, count: x.count)
        globalAvgPoolBackward(gradInput: &g, gradOutput: f32(r), channels: c, batch: n, hw: hw)
        #expect(relErr(g, numericGradient(x) { dot(r, ref($0)) }) < 1e-6)
    }

    @Test func linearAndCrossEntropy() {
        var rng = LCG(s: 51)
        let n = 4, i = 6, o = 3
        let x = rng.array(n * i), w = rng.array(o * i), b = rng.array(o)
        let labels = [0, 2, 1, 2]
        func logits(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            var z = [Double](repeating: 0, count: n * o)
            for r in 0..<n { for j in 0..<o { z[r * o + j] = b[j] + (0..<i).reduce(0) { $0 + x[r * i + $1] * w[j * i + $1] } } }
            return z
        }
        func ce(_ z: [Double]) -> Double {
            var l = 0.0
            for r in 0..<n {
                let row = z[(r * o)..<((r + 1) * o)]
                let mx = row.max()!
                l += log(row.reduce(0) { $0 + exp($1 - mx) }) + mx - z[r * o + labels[r]]
            }
            return l / Double(n)
        }
        var z = [Float](repeating: 0, count: n * o)
        linearForward(output: &z, input: f32(x), batch: n, inFeatures: i, outFeatures: o, weight: f32(w), bias: f32(b))
        #expect(relErr(z, logits(x, w, b)) < 1e-6)
        var gz = [Float](repeating: 0, count: n * o)
        let loss = softmaxCrossEntropy(logits: z, labels: labels, batch: n, classes: o, gradLogits: &gz)
        #expect(abs(loss - ce(logits(x, w, b))) < 1e-6)
        var gw = [Float](repeating: 0, count: w.count), gb = [Float](repeating: 0, count: o), gx = [Float](repeating: 0, count: x.count)
        linearBackward(gradOutput: gz, input: f32(x), weight: f32(w), batch: n, inFeatures: i, outFeatures: o,
                       gradWeight: &gw, gradBias: &gb, gradInput: &gx)
        #expect(relErr(gw, numericGradient(w) { ce(logits(x, $0, b)) }) < 1e-5)
        #expect(relErr(gb, numericGradient(b) { ce(logits(x, w, $0)) }) < 1e-5)
        #expect(relErr(gx, numericGradient(x) { ce(logits($0, w, b)) }) < 1e-5)
    }

    @Test func dropoutScalesAndMasks() {
        var rng = LCG(s: 61)
        let x = f32(rng.array(1000))
        var y = [Float](repeating: 0, count: 1000), mask = [Float](repeating: 0, count: 1000)
        var u = LCG(s: 62)
        dropoutForward(output: &y, mask: &mask, input: x, count: 1000, p: 0.2) { Float(u.next()) }
        let dropped = mask.filter { $0 == 0 }.count
        #expect(dropped > 150 && dropped < 250)
        #expect(mask.allSatisfy { $0 == 0 || $0 == 1.25 })
        var g = [Float](repeating: 0, count: 1000)
        dropoutBackward(gradInput: &g, gradOutput: [Float](repeating: 1, count: 1000), mask: mask, count: 1000)
        #expect(g == mask)
    }

    @Test func sgdMatchesPyTorchFormula() {
        // two steps with weight decay and momentum, against the formula in float64
        var p: [Float] = [1, -2, 0.5], g1: [Float] = [0.1, 0.2, -0.3], g2: [Float] = [-0.05, 0.4, 0.1]
        var sgd = SGDOptimizer(parameterCount: 3, momentum: 0.9, weightDecay: 0.01)
        sgd.step(params: &p, grads: g1, count: 3, lr: 0.1)
        sgd.step(params: &p, grads: g2, count: 3, lr: 0.1)
        for k in 0..<3 {
            var q = [1.0, -2, 0.5][k]
            var d = Double(g1[k]) + 0.01 * q
            var buf = d
            q -= 0.1 * buf
            d = Double(g2[k]) + 0.01 * q
            buf = 0.9 * buf + d
            q -= 0.1 * buf
            #expect(abs(Double(p[k]) - q) < 1e-6)
        }
        let s = StepLR(baseLR: 0.001, stepSize: 7, gamma: 0.1)
        #expect(s.learningRate(epoch: 6) == 0.001)
        #expect(abs(s.learningRate(epoch: 7) / 0.0001 - 1) < 1e-6)
        #expect(abs(s.learningRate(epoch: 14) / 0.00001 - 1) < 1e-6)
        #expect(abs(s.learningRate(epoch: 24) / 0.000001 - 1) < 1e-6)
    }
}
