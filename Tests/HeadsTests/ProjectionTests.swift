import Foundation
import Testing
@testable import Heads

/// PCA against the definition: each direction is a unit eigenvector of the sample covariance
/// (computed here in float64, separately), the variances are its eigenvalues, in decreasing order,
/// and the projections are the centred rows times the directions.
@Suite struct ProjectionTests {
    /// Rows spread along two planted orthogonal directions (standard deviations 5 and 2) plus small
    /// isotropic noise, in 12 dimensions, with an offset mean.
    func planted(rows n: Int, d: Int) -> ([Float], [Double], [Double]) {
        var state: UInt64 = 42
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        func gaussian() -> Double { (-2 * log(uniform() + 1e-300)).squareRoot() * cos(2 * Double.pi * uniform()) }
        var u1 = (0..<d).map { _ in gaussian() }, u2 = (0..<d).map { _ in gaussian() }
        let n1 = u1.map { $0 * $0 }.reduce(0, +).squareRoot(); u1 = u1.map { $0 / n1 }
        let p = zip(u1, u2).map { $0 * $1 }.reduce(0, +); u2 = zip(u2, u1).map { $0 - p * $1 }
        let n2 = u2.map { $0 * $0 }.reduce(0, +).squareRoot(); u2 = u2.map { $0 / n2 }
        var x: [Float] = []
        for _ in 0..<n {
            let a = 5 * gaussian(), b = 2 * gaussian()
            for j in 0..<d { x.append(Float(3 + a * u1[j] + b * u2[j] + 0.1 * gaussian())) }
        }
        return (x, u1, u2)
    }

    @Test func directionsAreTheCovariancesLeadingEigenvectors() throws {
        let n = 400, d = 12
        let (x, u1, u2) = planted(rows: n, d: d)
        let pca = try principalComponents(x, rows: n, dimension: d, components: 2)
        // Sample covariance in float64.
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(x[i * d + j]) / Double(n) } }
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<n {
            for a in 0..<d { for b in 0..<d { cov[a * d + b] += (Double(x[i * d + a]) - mean[a]) * (Double(x[i * d + b]) - mean[b]) / Double(n - 1) } }
        }
        var trace = 0.0
        for a in 0..<d { trace += cov[a * d + a] }
        #expect(abs(pca.totalVariance - trace) <= 1e-9 * trace)
        for c in 0..<2 {
            let v = Array(pca.directions[(c * d)..<((c + 1) * d)])
            #expect(abs(v.map { $0 * $0 }.reduce(0, +) - 1) < 1e-12)
            // C v = lambda v
            var residual = 0.0
            for a in 0..<d {
                var s = 0.0
                for b in 0..<d { s += cov[a * d + b] * v[b] }
                residual = max(residual, abs(s - pca.variances[c] * v[a]))
            }
            #expect(residual < 1e-6 * pca.variances[0], "component \(c): |Cv - lambda v| = \(residual)")
        }
        #expect(pca.variances[0] > pca.variances[1] && pca.variances[1] > 0.01 * pca.variances[0])
        // The planted directions (up to sign), near 25 and 4 in variance.
        let dot1 = abs(zip(pca.directions[0..<d], u1).map { $0 * $1 }.reduce(0, +))
        let dot2 = abs(zip(pca.directions[d..<(2 * d)], u2).map { $0 * $1 }.reduce(0, +))
        #expect(dot1 > 0.999 && dot2 > 0.99)
        #expect(abs(pca.variances[0] / 25 - 1) < 0.2 && abs(pca.variances[1] / 4 - 1) < 0.2)
        // Projections: centred rows times directions.
        for i in [0, 17, 399] {
            for c in 0..<2 {
                var s = 0.0
                for j in 0..<d { s += (Double(x[i * d + j]) - mean[j]) * pca.directions[c * d + j] }
                #expect(abs(pca.projections[i * 2 + c] - s) < 1e-9)
            }
        }
    }

    @Test func badShapesAreErrors() {
        #expect(throws: HeadsError.self) { try principalComponents([1, 2, 3], rows: 1, dimension: 3) }
        #expect(throws: HeadsError.self) { try principalComponents([1, 2, 3, 4], rows: 2, dimension: 3) }
        #expect(throws: HeadsError.self) { try principalComponents([1, 2, 3, 4], rows: 2, dimension: 2, components: 3) }
        #expect(throws: HeadsError.self) { try principalComponents([1, .nan, 3, 4], rows: 2, dimension: 2) }
    }
}
