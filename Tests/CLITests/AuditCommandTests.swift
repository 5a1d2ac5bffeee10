import Foundation
import Testing
@testable import CLI

@Suite("probe audit front end") struct AuditCommandTests {
    let missing = FileManager.default.temporaryDirectory.appendingPathComponent("probe-cli-missing-\(UUID().uuidString)/s.sqlite").path

    @Test func helpTeachesAndBadValuesAreUsageErrors() {
        let help = probe("audit", "--help")
        #expect(help.status == 0 && help.out.contains("EXAMPLES:") && help.out.contains("--threshold T") && help.out.contains("0.90"))
        let bench = probe("bench", "audit", "--help")
        #expect(bench.status == 0 && bench.out.contains("--count N"))
        var r = probe("audit", "--threshold", "2", "--store", missing)
        #expect(r.status == 64 && r.err.hasPrefix("probe audit: --threshold needs a number in"))
        r = probe("audit", "--folds", "1", "--store", missing)
        #expect(r.status == 64 && r.err.hasPrefix("probe audit: --folds needs a whole number in 2...1000"))
        r = probe("audit", "--store", missing)
        #expect(r.status == 64 && r.err.hasPrefix("probe audit: no store at \(missing)"))
        r = probe("audit", "extra")
        #expect(r.status == 64 && r.err.hasPrefix("probe audit: unexpected argument 'extra'"))
    }
}
