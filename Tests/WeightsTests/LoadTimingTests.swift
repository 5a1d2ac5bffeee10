import Testing
import Foundation
@testable import Weights

/// Prints load times. A benchmark, not a test: runs only with PROBE_BENCH=1, in release:
///   PROBE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter LoadTiming
/// Asserts nothing about time.
@Suite(.enabled(if: sharedAvailable, "needs ../shared weight files"),
       .enabled(if: ProcessInfo.processInfo.environment["PROBE_BENCH"] == "1", "benchmark: set PROBE_BENCH=1 (use -c release)"))
struct LoadTiming {
    @Test func printLoadTimes() throws {
        for path in [resnetPath, mobilenetPath] {
            var best = Double.infinity
            var count = 0
            for _ in 0..<3 {
                let t0 = Date()
                let sd = try loadStateDict(path: path)
                best = min(best, Date().timeIntervalSince(t0))
                count = sd.tensors.count
            }
            let t0 = Date()
            _ = try fileSHA256(path: path)
            let sha = Date().timeIntervalSince(t0)
            // Parsing alone (read + zip/pickle + materialise), without the hash.
            var parse = Double.infinity
            for _ in 0..<3 {
                let t1 = Date()
                let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
                let n = try data.withUnsafeBytes { try parseTensors($0, format: sniffFormat($0)).0.count }
                parse = min(parse, Date().timeIntervalSince(t1))
                #expect(n == count)
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            print(String(format: "load %@: %d tensors, %.1f MB, loadStateDict best of 3 %.1f ms; parse alone %.1f ms; sha256 alone %.1f ms (hashed in parallel with parsing)",
                         (path as NSString).lastPathComponent, count, Double(size) / 1e6, best * 1000, parse * 1000, sha * 1000))
            #expect(count > 0)
        }
    }
}
