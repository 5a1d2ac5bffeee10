import Testing
@testable import NN

@Test func sgemmMatchesNaiveProduct() {
    let m = 3, n = 4, k = 5
    let a = (0..<(m * k)).map { Float($0) * 0.5 - 2 }
    let b = (0..<(k * n)).map { Float($0 % 7) - 3 }
    var c = [Float](repeating: 0, count: m * n)
    sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n)
    for i in 0..<m {
        for j in 0..<n {
            var s: Float = 0
            for p in 0..<k { s += a[i * k + p] * b[p * n + j] }
            #expect(abs(c[i * n + j] - s) < 1e-4)
        }
    }
}
