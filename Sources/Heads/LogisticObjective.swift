#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NN
import Parallelism

/// f(theta) = (1/N) sum_i s_i CE(W x_i + b, y_i) + lambda/2 ||W||^2 over theta = [W (classes x d),
/// b (classes)], in float64, for the first `activeRows` rows of a matrix it owns (N = activeRows;
/// s_i = the sample weight of row i, 1 without weights).
///
/// The rows are cut into blocks of `blockRows` (a constant): per block, one dgemm gives the logits,
/// the softmax turns them into dCE/dz, and a second dgemm gives the block's partial gradient while
/// the block is still in cache. The workers share the blocks (BLAS runs single-threaded meanwhile);
/// block sums are added in block order, so f and its gradient are the same bits for any worker count.
final class LogisticObjective: @unchecked Sendable {
    static let blockRows = 128
    /// Up to this many classes, per-row SIMD kernels (the row stays in L1 while every class uses it)
    /// beat dgemm, whose packing of the rows costs more than the few flops per element; above, dgemm.
    static let smallClasses = 32
    /// Columns per tile of the small-class kernels: the tile of W (classes x tile doubles) fills at
    /// most 16 KB, half of a typical L1 data cache; a multiple of 8.
    static func tileColumns(_ c: Int) -> Int { max(8, (2048 / max(c, 1)) & ~7) }
    let rows: Int, dimension: Int, classes: Int
    var lambda: Double
    /// Rows 0..<activeRows take part (a prefix: callers order the rows so that a subset is one).
    var activeRows: Int
    var workers: Int
    let x: UnsafeMutablePointer<Double>
    let labels: UnsafeMutablePointer<Int>
    /// Per-row weights, or nil (all 1).
    var sampleWeights: UnsafeMutablePointer<Double>?
    /// Per block: loss sum and gradient (classes * dimension + classes).
    private let partialGradients: UnsafeMutablePointer<Double>
    private let partialLosses: UnsafeMutablePointer<Double>
    private let scratch: UnsafeMutablePointer<Double>   // blockRows x classes per block
    private let blocks: Int
    /// Float32 mode (fewer than `smallClasses` classes only): rows, weights, logits and the blocks'
    /// gradients in float32 (twice the SIMD width, half the memory traffic); softmax, loss and the
    /// sums over blocks stay float64. For fits whose held-out accuracy is all that counts (the
    /// sweep of `linearProbe`); the objective is then exact to ~1e-6 relative only.
    var useFloat32 = false {
        didSet { if useFloat32 && x32 == nil { makeFloatCopy() } }
    }
    private var x32: UnsafeMutablePointer<Float>?
    private var w32: UnsafeMutablePointer<Float>
    private var scratch32: UnsafeMutablePointer<Float>
    private var gradients32: UnsafeMutablePointer<Float>

    init(x: [Double], labels: [Int], rows: Int, dimension: Int, classes: Int, lambda: Double,
         sampleWeights: [Double]? = nil, workers: Int = defaultWorkerCount) {
        self.rows = rows; self.dimension = dimension; self.classes = classes; self.lambda = lambda
        self.activeRows = rows; self.workers = workers
        let xp = UnsafeMutablePointer<Double>.allocate(capacity: max(1, rows * dimension))
        x.withUnsafeBufferPointer { xp.initialize(from: $0.baseAddress!, count: rows * dimension) }
        self.x = xp
        let lp = UnsafeMutablePointer<Int>.allocate(capacity: max(1, rows))
        labels.withUnsafeBufferPointer { lp.initialize(from: $0.baseAddress!, count: rows) }
        self.labels = lp
        if let sampleWeights {
            let w = UnsafeMutablePointer<Double>.allocate(capacity: max(1, rows))
            sampleWeights.withUnsafeBufferPointer { w.initialize(from: $0.baseAddress!, count: rows) }
            self.sampleWeights = w
        } else {
            self.sampleWeights = nil
        }
        blocks = (rows + Self.blockRows - 1) / Self.blockRows
        let p = classes * dimension + classes
        partialGradients = .allocate(capacity: max(1, blocks * p))
        partialLosses = .allocate(capacity: max(1, blocks))
        scratch = .allocate(capacity: max(1, blocks * Self.blockRows * classes))
        w32 = .allocate(capacity: max(1, classes * dimension + classes))
        scratch32 = .allocate(capacity: max(1, blocks * Self.blockRows * classes))
        gradients32 = .allocate(capacity: max(1, blocks * classes * dimension))
    }

    private func makeFloatCopy() {
        let n = rows * dimension
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
        for i in 0..<n { p[i] = Float(x[i]) }
        x32 = p
    }

    deinit {
        x.deallocate(); labels.deallocate(); sampleWeights?.deallocate()
        partialGradients.deallocate(); partialLosses.deallocate(); scratch.deallocate()
        x32?.deallocate(); w32.deallocate(); scratch32.deallocate(); gradients32.deallocate()
    }

    var parameterCount: Int { classes * dimension + classes }

    /// Replaces the sample weights (nil: all 1).
    func setSampleWeights(_ w: [Double]?) {
        sampleWeights?.deallocate()
        sampleWeights = nil
        if let w {
            let p = UnsafeMutablePointer<Double>.allocate(capacity: max(1, rows))
            w.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: rows) }
            sampleWeights = p
        }
    }

    /// Returns f and writes the gradient into `grad` (parameterCount values).
    func evaluate(_ theta: UnsafePointer<Double>, gradient grad: UnsafeMutablePointer<Double>) -> Double {
        let c = classes, d = dimension, n = activeRows, p = parameterCount
        let nb = (n + Self.blockRows - 1) / Self.blockRows
        let float = useFloat32 && c <= Self.smallClasses
        if float { for i in 0..<p { w32[i] = Float(theta[i]) } }
        let box = UncheckedSendable((theta, self))
        let saved = blasThreads()
        let w = max(1, min(workers, nb))
        if w > 1 { setBLASThreads(1) }
        parallelSlices(nb, workers: w) { _, slice in
            let (theta, me) = box.value
            for blk in slice { if float { me.evaluateBlock32(blk) } else { me.evaluateBlock(blk, theta) } }
        }
        if w > 1 { setBLASThreads(saved) }
        let invN = 1 / Double(n)
        var loss = 0.0
        for i in 0..<p { grad[i] = 0 }
        for blk in 0..<nb {
            loss += partialLosses[blk]
            let g = partialGradients + blk * p
            for i in 0..<p { grad[i] += g[i] }
        }
        var wsq = 0.0
        for i in 0..<(c * d) {
            grad[i] = grad[i] * invN + lambda * theta[i]
            wsq += theta[i] * theta[i]
        }
        for j in 0..<c { grad[c * d + j] *= invN }
        return loss * invN + 0.5 * lambda * wsq
    }

    /// `evaluateBlock` in float32 (rows, weights `w32`, logits, the block's gradient); softmax and loss in float64.
    private func evaluateBlock32(_ blk: Int) {
        let c = classes, d = dimension, p = parameterCount
        let r0 = blk * Self.blockRows, r1 = min(activeRows, r0 + Self.blockRows), m = r1 - r0
        let z = scratch32 + blk * Self.blockRows * c
        let xb = x32! + r0 * d
        let bias = w32 + c * d
        let tile = Self.tileColumns(c) * 2
        for r in 0..<m { for j in 0..<c { z[r * c + j] = bias[j] } }
        var i0 = 0
        while i0 < d {
            let w = min(tile, d - i0)
            var r = 0
            while r + 4 <= m { fourRowLogits32(xb + r * d + i0, d, w32 + i0, z + r * c, c, w, d); r += 4 }
            while r < m { rowLogits32(xb + r * d + i0, w32 + i0, z + r * c, c, w, d); r += 1 }
            i0 += w
        }
        var loss = 0.0
        let g = partialGradients + blk * p
        for j in 0..<c { g[c * d + j] = 0 }
        for r in 0..<m {
            let zr = z + r * c
            var mx = Double(zr[0])
            for j in 1..<max(c, 1) where Double(zr[j]) > mx { mx = Double(zr[j]) }
            let y = labels[r0 + r]
            let zy = Double(zr[y]) - mx
            let e = scratch + blk * Self.blockRows * c
            var s = 0.0
            for j in 0..<c { e[j] = exp(Double(zr[j]) - mx); s += e[j] }
            let sw = sampleWeights.map { $0[r0 + r] } ?? 1
            loss += sw * (log(s) - zy)
            let inv = sw / s
            for j in 0..<c {
                let a = e[j] * inv - (j == y ? sw : 0)
                zr[j] = Float(a)
                g[c * d + j] += a
            }
        }
        let g32 = gradients32 + blk * c * d
        for i in 0..<(c * d) { g32[i] = 0 }
        i0 = 0
        while i0 < d {
            let w = min(tile, d - i0)
            var r = 0
            while r + 4 <= m { fourRowGradient32(xb + r * d + i0, d, z + r * c, g32 + i0, c, w, d); r += 4 }
            while r < m { rowGradient32(xb + r * d + i0, z + r * c, g32 + i0, c, w, d); r += 1 }
            i0 += w
        }
        for i in 0..<(c * d) { g[i] = Double(g32[i]) }
        partialLosses[blk] = loss
    }

    /// Loss sum and gradient sum (not divided by N, no penalty) of one block of rows.
    private func evaluateBlock(_ blk: Int, _ theta: UnsafePointer<Double>) {
        let c = classes, d = dimension, p = parameterCount
        let r0 = blk * Self.blockRows, r1 = min(activeRows, r0 + Self.blockRows), m = r1 - r0
        let z = scratch + blk * Self.blockRows * c
        let xb = x + r0 * d
        let bias = theta + c * d
        let small = c <= Self.smallClasses
        if small {
            // Column tiles small enough that the tile of W stays in L1 while every row uses it.
            let tile = Self.tileColumns(c)
            for r in 0..<m { for j in 0..<c { z[r * c + j] = bias[j] } }
            var i0 = 0
            while i0 < d {
                let w = min(tile, d - i0)
                var r = 0
                while r + 4 <= m { fourRowLogits(xb + r * d + i0, d, theta + i0, z + r * c, c, w, d); r += 4 }
                while r < m { rowLogits(xb + r * d + i0, theta + i0, z + r * c, c, w, d); r += 1 }
                i0 += w
            }
        } else {
            for r in 0..<m { for j in 0..<c { z[r * c + j] = bias[j] } }
            dgemm(transA: false, transB: true, m: m, n: c, k: d, a: xb, lda: d, b: theta, ldb: d, beta: 1, c: z, ldc: c)
        }
        var loss = 0.0
        let g = partialGradients + blk * p
        for j in 0..<c { g[c * d + j] = 0 }
        for r in 0..<m {
            let zr = z + r * c
            var mx = zr[0]
            for j in 1..<max(c, 1) where zr[j] > mx { mx = zr[j] }
            let y = labels[r0 + r]
            let zy = zr[y] - mx
            var s = 0.0
            for j in 0..<c { let e = exp(zr[j] - mx); zr[j] = e; s += e }
            let sw = sampleWeights.map { $0[r0 + r] } ?? 1
            loss += sw * (log(s) - zy)
            let inv = sw / s
            for j in 0..<c { zr[j] *= inv; g[c * d + j] += zr[j] }
            zr[y] -= sw
            g[c * d + y] -= sw
        }
        // Gradient block: dZ^T (c x m) * X_block (m x d).
        if small {
            for i in 0..<(c * d) { g[i] = 0 }
            let tile = Self.tileColumns(c)
            var i0 = 0
            while i0 < d {
                let w = min(tile, d - i0)
                var r = 0
                while r + 4 <= m { fourRowGradient(xb + r * d + i0, d, z + r * c, g + i0, c, w, d); r += 4 }
                while r < m { rowGradient(xb + r * d + i0, z + r * c, g + i0, c, w, d); r += 1 }
                i0 += w
            }
        } else {
            dgemm(transA: true, transB: false, m: c, n: d, k: m, a: z, lda: c, b: xb, ldb: d, beta: 0, c: g, ldc: d)
        }
        partialLosses[blk] = loss
    }
}

/// z[j] += W[j, 0..<d] . x[0..<d] for j < c (W's rows `ld` apart), classes four at a time so that
/// each chunk of x is loaded once per four classes.
@inline(__always)
private func rowLogits(_ x: UnsafePointer<Double>, _ w: UnsafePointer<Double>,
                       _ z: UnsafeMutablePointer<Double>, _ c: Int, _ d: Int, _ ld: Int) {
    let rx = UnsafeRawPointer(x)
    let d8 = d & ~7
    var j = 0
    while j + 4 <= c {
        let w0 = UnsafeRawPointer(w + j * ld), w1 = UnsafeRawPointer(w + (j + 1) * ld)
        let w2 = UnsafeRawPointer(w + (j + 2) * ld), w3 = UnsafeRawPointer(w + (j + 3) * ld)
        var a0 = SIMD8<Double>(), a1 = SIMD8<Double>(), a2 = SIMD8<Double>(), a3 = SIMD8<Double>()
        var i = 0
        while i < d8 {
            let xv = rx.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
            a0 += xv * w0.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
            a1 += xv * w1.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
            a2 += xv * w2.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
            a3 += xv * w3.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
            i += 8
        }
        var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
        while i < d {
            s0 += x[i] * w[j * ld + i]; s1 += x[i] * w[(j + 1) * ld + i]
            s2 += x[i] * w[(j + 2) * ld + i]; s3 += x[i] * w[(j + 3) * ld + i]
            i += 1
        }
        z[j] += s0; z[j + 1] += s1; z[j + 2] += s2; z[j + 3] += s3
        j += 4
    }
    while j < c {
        z[j] += dotDouble(w + j * ld, x, d)
        j += 1
    }
}

/// g[j, 0..<d] += a[j] * x[0..<d] for j < c (g's rows `ld` apart), four classes per pass over x.
@inline(__always)
private func rowGradient(_ x: UnsafePointer<Double>, _ a: UnsafePointer<Double>, _ g: UnsafeMutablePointer<Double>,
                         _ c: Int, _ d: Int, _ ld: Int) {
    let rx = UnsafeRawPointer(x)
    let d8 = d & ~7
    var j = 0
    while j + 4 <= c {
        let g0 = UnsafeMutableRawPointer(g + j * ld), g1 = UnsafeMutableRawPointer(g + (j + 1) * ld)
        let g2 = UnsafeMutableRawPointer(g + (j + 2) * ld), g3 = UnsafeMutableRawPointer(g + (j + 3) * ld)
        let b0 = SIMD8<Double>(repeating: a[j]), b1 = SIMD8<Double>(repeating: a[j + 1])
        let b2 = SIMD8<Double>(repeating: a[j + 2]), b3 = SIMD8<Double>(repeating: a[j + 3])
        var i = 0
        while i < d8 {
            let o = i * 8
            let xv = rx.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            g0.storeBytes(of: g0.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self) + b0 * xv, toByteOffset: o, as: SIMD8<Double>.self)
            g1.storeBytes(of: g1.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self) + b1 * xv, toByteOffset: o, as: SIMD8<Double>.self)
            g2.storeBytes(of: g2.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self) + b2 * xv, toByteOffset: o, as: SIMD8<Double>.self)
            g3.storeBytes(of: g3.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self) + b3 * xv, toByteOffset: o, as: SIMD8<Double>.self)
            i += 8
        }
        while i < d {
            g[j * ld + i] += a[j] * x[i]; g[(j + 1) * ld + i] += a[j + 1] * x[i]
            g[(j + 2) * ld + i] += a[j + 2] * x[i]; g[(j + 3) * ld + i] += a[j + 3] * x[i]
            i += 1
        }
        j += 4
    }
    while j < c {
        axpyDouble(a[j], x, g + j * ld, d)
        j += 1
    }
}

/// `rowLogits` for four rows (`ldx` apart) at once: each chunk of a class's weights is loaded once
/// for the four rows (16 accumulators: four rows x four classes).
@inline(__always)
private func fourRowLogits(_ x: UnsafePointer<Double>, _ ldx: Int, _ w: UnsafePointer<Double>,
                           _ z: UnsafeMutablePointer<Double>, _ c: Int, _ d: Int, _ ld: Int) {
    let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
    let d8 = d & ~7
    var j = 0
    while j + 4 <= c {
        let w0 = UnsafeRawPointer(w + j * ld), w1 = UnsafeRawPointer(w + (j + 1) * ld)
        let w2 = UnsafeRawPointer(w + (j + 2) * ld), w3 = UnsafeRawPointer(w + (j + 3) * ld)
        var a00 = SIMD8<Double>(), a01 = SIMD8<Double>(), a02 = SIMD8<Double>(), a03 = SIMD8<Double>()
        var a10 = SIMD8<Double>(), a11 = SIMD8<Double>(), a12 = SIMD8<Double>(), a13 = SIMD8<Double>()
        var a20 = SIMD8<Double>(), a21 = SIMD8<Double>(), a22 = SIMD8<Double>(), a23 = SIMD8<Double>()
        var a30 = SIMD8<Double>(), a31 = SIMD8<Double>(), a32 = SIMD8<Double>(), a33 = SIMD8<Double>()
        var i = 0
        while i < d8 {
            let o = i * 8
            let v0 = w0.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self), v1 = w1.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            let v2 = w2.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self), v3 = w3.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            var xv = x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            a00 += xv * v0; a01 += xv * v1; a02 += xv * v2; a03 += xv * v3
            xv = x1.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            a10 += xv * v0; a11 += xv * v1; a12 += xv * v2; a13 += xv * v3
            xv = x2.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            a20 += xv * v0; a21 += xv * v1; a22 += xv * v2; a23 += xv * v3
            xv = x3.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            a30 += xv * v0; a31 += xv * v1; a32 += xv * v2; a33 += xv * v3
            i += 8
        }
        let z0 = z + j, z1 = z + c + j, z2 = z + 2 * c + j, z3 = z + 3 * c + j
        z0[0] += a00.sum(); z0[1] += a01.sum(); z0[2] += a02.sum(); z0[3] += a03.sum()
        z1[0] += a10.sum(); z1[1] += a11.sum(); z1[2] += a12.sum(); z1[3] += a13.sum()
        z2[0] += a20.sum(); z2[1] += a21.sum(); z2[2] += a22.sum(); z2[3] += a23.sum()
        z3[0] += a30.sum(); z3[1] += a31.sum(); z3[2] += a32.sum(); z3[3] += a33.sum()
        while i < d {
            for r in 0..<4 {
                let xi = x[r * ldx + i]
                for q in 0..<4 { z[r * c + j + q] += xi * w[(j + q) * ld + i] }
            }
            i += 1
        }
        j += 4
    }
    while j < c {
        for r in 0..<4 { z[r * c + j] += dotDouble(w + j * ld, x + r * ldx, d) }
        j += 1
    }
}

/// `rowGradient` for four rows (`ldx` apart; their dz rows `c` apart): g[j] += sum_r a[r, j] x_r,
/// each chunk of g loaded and stored once for the four rows.
@inline(__always)
private func fourRowGradient(_ x: UnsafePointer<Double>, _ ldx: Int, _ a: UnsafePointer<Double>, _ g: UnsafeMutablePointer<Double>,
                             _ c: Int, _ d: Int, _ ld: Int) {
    let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
    let d8 = d & ~7
    for j in 0..<c {
        let gj = UnsafeMutableRawPointer(g + j * ld)
        let b0 = SIMD8<Double>(repeating: a[j]), b1 = SIMD8<Double>(repeating: a[c + j])
        let b2 = SIMD8<Double>(repeating: a[2 * c + j]), b3 = SIMD8<Double>(repeating: a[3 * c + j])
        var i = 0
        while i < d8 {
            let o = i * 8
            var acc = gj.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            acc += b0 * x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            acc += b1 * x1.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            acc += b2 * x2.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            acc += b3 * x3.loadUnaligned(fromByteOffset: o, as: SIMD8<Double>.self)
            gj.storeBytes(of: acc, toByteOffset: o, as: SIMD8<Double>.self)
            i += 8
        }
        while i < d {
            g[j * ld + i] += a[j] * x[i] + a[c + j] * x[ldx + i] + a[2 * c + j] * x[2 * ldx + i] + a[3 * c + j] * x[3 * ldx + i]
            i += 1
        }
    }
}

// Float32 twins of the kernels above (the sweep's fits; see `LogisticObjective.useFloat32`).

/// z[j] += W[j, 0..<d] . x[0..<d] for j < c (W's rows `ld` apart), classes four at a time so that
/// each chunk of x is loaded once per four classes.
@inline(__always)
private func rowLogits32(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                       _ z: UnsafeMutablePointer<Float>, _ c: Int, _ d: Int, _ ld: Int) {
    let rx = UnsafeRawPointer(x)
    let d8 = d & ~15
    var j = 0
    while j + 4 <= c {
        let w0 = UnsafeRawPointer(w + j * ld), w1 = UnsafeRawPointer(w + (j + 1) * ld)
        let w2 = UnsafeRawPointer(w + (j + 2) * ld), w3 = UnsafeRawPointer(w + (j + 3) * ld)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var i = 0
        while i < d8 {
            let xv = rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            a0 += xv * w0.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            a1 += xv * w1.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            a2 += xv * w2.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            a3 += xv * w3.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
        while i < d {
            s0 += x[i] * w[j * ld + i]; s1 += x[i] * w[(j + 1) * ld + i]
            s2 += x[i] * w[(j + 2) * ld + i]; s3 += x[i] * w[(j + 3) * ld + i]
            i += 1
        }
        z[j] += s0; z[j + 1] += s1; z[j + 2] += s2; z[j + 3] += s3
        j += 4
    }
    while j < c {
        z[j] += dotFloat(w + j * ld, x, d)
        j += 1
    }
}

/// g[j, 0..<d] += a[j] * x[0..<d] for j < c (g's rows `ld` apart), four classes per pass over x.
@inline(__always)
private func rowGradient32(_ x: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                         _ c: Int, _ d: Int, _ ld: Int) {
    let rx = UnsafeRawPointer(x)
    let d8 = d & ~15
    var j = 0
    while j + 4 <= c {
        let g0 = UnsafeMutableRawPointer(g + j * ld), g1 = UnsafeMutableRawPointer(g + (j + 1) * ld)
        let g2 = UnsafeMutableRawPointer(g + (j + 2) * ld), g3 = UnsafeMutableRawPointer(g + (j + 3) * ld)
        let b0 = SIMD16<Float>(repeating: a[j]), b1 = SIMD16<Float>(repeating: a[j + 1])
        let b2 = SIMD16<Float>(repeating: a[j + 2]), b3 = SIMD16<Float>(repeating: a[j + 3])
        var i = 0
        while i < d8 {
            let o = i * 4
            let xv = rx.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            g0.storeBytes(of: g0.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + b0 * xv, toByteOffset: o, as: SIMD16<Float>.self)
            g1.storeBytes(of: g1.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + b1 * xv, toByteOffset: o, as: SIMD16<Float>.self)
            g2.storeBytes(of: g2.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + b2 * xv, toByteOffset: o, as: SIMD16<Float>.self)
            g3.storeBytes(of: g3.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + b3 * xv, toByteOffset: o, as: SIMD16<Float>.self)
            i += 16
        }
        while i < d {
            g[j * ld + i] += a[j] * x[i]; g[(j + 1) * ld + i] += a[j + 1] * x[i]
            g[(j + 2) * ld + i] += a[j + 2] * x[i]; g[(j + 3) * ld + i] += a[j + 3] * x[i]
            i += 1
        }
        j += 4
    }
    while j < c {
        axpyFloat(a[j], x, g + j * ld, d)
        j += 1
    }
}

/// `rowLogits` for four rows (`ldx` apart) at once: each chunk of a class's weights is loaded once
/// for the four rows (16 accumulators: four rows x four classes).
@inline(__always)
private func fourRowLogits32(_ x: UnsafePointer<Float>, _ ldx: Int, _ w: UnsafePointer<Float>,
                           _ z: UnsafeMutablePointer<Float>, _ c: Int, _ d: Int, _ ld: Int) {
    let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
    let d8 = d & ~15
    var j = 0
    while j + 4 <= c {
        let w0 = UnsafeRawPointer(w + j * ld), w1 = UnsafeRawPointer(w + (j + 1) * ld)
        let w2 = UnsafeRawPointer(w + (j + 2) * ld), w3 = UnsafeRawPointer(w + (j + 3) * ld)
        var a00 = SIMD16<Float>(), a01 = SIMD16<Float>(), a02 = SIMD16<Float>(), a03 = SIMD16<Float>()
        var a10 = SIMD16<Float>(), a11 = SIMD16<Float>(), a12 = SIMD16<Float>(), a13 = SIMD16<Float>()
        var a20 = SIMD16<Float>(), a21 = SIMD16<Float>(), a22 = SIMD16<Float>(), a23 = SIMD16<Float>()
        var a30 = SIMD16<Float>(), a31 = SIMD16<Float>(), a32 = SIMD16<Float>(), a33 = SIMD16<Float>()
        var i = 0
        while i < d8 {
            let o = i * 4
            let v0 = w0.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self), v1 = w1.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            let v2 = w2.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self), v3 = w3.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            var xv = x0.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            a00 += xv * v0; a01 += xv * v1; a02 += xv * v2; a03 += xv * v3
            xv = x1.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            a10 += xv * v0; a11 += xv * v1; a12 += xv * v2; a13 += xv * v3
            xv = x2.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            a20 += xv * v0; a21 += xv * v1; a22 += xv * v2; a23 += xv * v3
            xv = x3.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            a30 += xv * v0; a31 += xv * v1; a32 += xv * v2; a33 += xv * v3
            i += 16
        }
        let z0 = z + j, z1 = z + c + j, z2 = z + 2 * c + j, z3 = z + 3 * c + j
        z0[0] += a00.sum(); z0[1] += a01.sum(); z0[2] += a02.sum(); z0[3] += a03.sum()
        z1[0] += a10.sum(); z1[1] += a11.sum(); z1[2] += a12.sum(); z1[3] += a13.sum()
        z2[0] += a20.sum(); z2[1] += a21.sum(); z2[2] += a22.sum(); z2[3] += a23.sum()
        z3[0] += a30.sum(); z3[1] += a31.sum(); z3[2] += a32.sum(); z3[3] += a33.sum()
        while i < d {
            for r in 0..<4 {
                let xi = x[r * ldx + i]
                for q in 0..<4 { z[r * c + j + q] += xi * w[(j + q) * ld + i] }
            }
            i += 1
        }
        j += 4
    }
    while j < c {
        for r in 0..<4 { z[r * c + j] += dotFloat(w + j * ld, x + r * ldx, d) }
        j += 1
    }
}

/// `rowGradient` for four rows (`ldx` apart; their dz rows `c` apart): g[j] += sum_r a[r, j] x_r,
/// each chunk of g loaded and stored once for the four rows.
@inline(__always)
private func fourRowGradient32(_ x: UnsafePointer<Float>, _ ldx: Int, _ a: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                             _ c: Int, _ d: Int, _ ld: Int) {
    let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
    let d8 = d & ~15
    for j in 0..<c {
        let gj = UnsafeMutableRawPointer(g + j * ld)
        let b0 = SIMD16<Float>(repeating: a[j]), b1 = SIMD16<Float>(repeating: a[c + j])
        let b2 = SIMD16<Float>(repeating: a[2 * c + j]), b3 = SIMD16<Float>(repeating: a[3 * c + j])
        var i = 0
        while i < d8 {
            let o = i * 4
            var acc = gj.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            acc += b0 * x0.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            acc += b1 * x1.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            acc += b2 * x2.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            acc += b3 * x3.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            gj.storeBytes(of: acc, toByteOffset: o, as: SIMD16<Float>.self)
            i += 16
        }
        while i < d {
            g[j * ld + i] += a[j] * x[i] + a[c + j] * x[ldx + i] + a[2 * c + j] * x[2 * ldx + i] + a[3 * c + j] * x[3 * ldx + i]
            i += 1
        }
    }
}

@inline(__always)
private func dotFloat(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        i += 16
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

@inline(__always)
private func axpyFloat(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    let av = SIMD16<Float>(repeating: alpha)
    var i = 0
    while i + 16 <= n {
        let o = i * 4
        ry.storeBytes(of: ry.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self) + av * rx.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self),
                      toByteOffset: o, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}
