import Foundation
import Testing
import Vision
import Benchmarks

@Suite("Vision benchmark entry point")
struct VisionBenchmarkTests {
    @Test func benchmarkReportsEveryImageAndFailures() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("probe-bench-vision-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/cls", withIntermediateDirectories: true)
        var pixels = [UInt8](repeating: 0, count: 300 * 200 * 3)
        for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        let img = RGBImage(width: 300, height: 200, pixels: pixels)
        try PNGWriter.encode(img).write(to: URL(fileURLWithPath: root + "/cls/a.png"))
        try PNGWriter.encode(RGBImage(width: 200, height: 300, pixels: pixels)).write(to: URL(fileURLWithPath: root + "/cls/b.png"))
        FileManager.default.createFile(atPath: root + "/cls/c.jpg", contents: Data("junk".utf8))
        let report = runVisionBenchmark(root: root)
        #expect(report.contains("2 images"))
        #expect(report.contains("1 undecodable"))
        #expect(runVisionBenchmark(root: root + "/missing").contains("bench vision:"))
    }
}
