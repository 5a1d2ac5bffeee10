import Foundation
import Testing
import Benchmarks

let benchEnabled = ProcessInfo.processInfo.environment["PROBE_BENCH_QUERY"] != nil

/// Not a test: the 1M-vector benchmark, run by hand in release mode:
/// PROBE_BENCH_QUERY=1000000 swift test -c release --filter queryBenchmark
@Test(.enabled(if: benchEnabled, "benchmark: set PROBE_BENCH_QUERY=<count> (and PROBE_BENCH_STORE=<path> to keep the store)"))
func queryBenchmark() throws {
    let env = ProcessInfo.processInfo.environment
    let count = Int(env["PROBE_BENCH_QUERY"] ?? "") ?? 1_000_000
    let report = try runQueryBenchmark(count: count, dimension: 512, path: env["PROBE_BENCH_STORE"]) { print($0) }
    print(report)
}
