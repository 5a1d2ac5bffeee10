import Foundation
import NN
import Weights
import Backbones
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Parallelism

/// `probe bench forward`: loads the weight files when given (synthetic weights otherwise; the
/// cost is the same) and returns the benchmark table (see the other overload).
public func runForwardBenchmark(batches: [Int], iterations: Int, resnetWeights: String?, mobilenetWeights: String?,
                                log: (String) -> Void = { _ in }) throws -> String {
    let r: TensorSource? = try resnetWeights.map { try loadStateDict(path: $0) }
    let m: TensorSource? = try mobilenetWeights.map { try loadStateDict(path: $0) }
    let header = forwardBenchmarkHeader(iterations: iterations, resnetWeights: resnetWeights, mobilenetWeights: mobilenetWeights)
    return header + "\n" + (try runForwardBenchmark(batches: batches, iterations: iterations, resnet: r, mobilenet: m, log: log))
}

/// The first line of the forward benchmark's report: settings, the worker count in force
/// (`ThreadCount.workers`, which the models' `ForwardOptions` take) and the weight files (nil: synthetic).
public func forwardBenchmarkHeader(iterations: Int, resnetWeights: String?, mobilenetWeights: String?) -> String {
    "forward pass, eval mode, release build, \(ThreadCount.workersDescription), median of \(iterations) runs; " +
        "weights: resnet18 \(resnetWeights ?? "synthetic"), mobilenet_v2 \(mobilenetWeights ?? "synthetic")"
}

/// Times `features` of both backbones at each batch size (after one warm-up run) and returns a
/// table: median images/s over `iterations` runs, and the process's peak RSS after each row.
/// `resnet`/`mobilenet` nil: synthetic weights of the right shapes (same cost).
public func runForwardBenchmark(batches: [Int], iterations: Int,
                                resnet: TensorSource?, mobilenet: TensorSource?,
                                options: ((String, Int) -> ForwardOptions)? = nil,
                                only: String? = nil,  // an architecture's name to time that one only
                                precisions: [Precision] = [.float32],
                                int8Winograd: Bool = true,
                                log: (String) -> Void = { _ in }) throws -> String {
    var lines = ["model         batch   median ms   images/s   CPU ms/image   peak RSS MB   precision"]
    // by default the two backbones with weights in ../shared; --only names any registered one
    for arch in Architecture.all where only == arch.name || (only == nil && [.resnet18, .mobilenetV2].contains(arch)) {
        let which = arch.name
        for b in batches {
          for precision in precisions {
            let o = options?(which, b) ?? ForwardOptions()
            let weights = arch == .resnet18 ? resnet : arch == .mobilenetV2 ? mobilenet : nil
            let folded = try FoldedNetwork(arch, weights: weights ?? SeededWeights(), options: o)
            var input = [Float](repeating: 0, count: b * 3 * 224 * 224)
            var s: UInt32 = 12345
            for i in 0..<input.count { s = s &* 1664525 &+ 1013904223; input[i] = Float(s >> 8) / Float(1 << 24) * 4 - 2 }
            // int8: calibrated on (up to 8 of) the same random images; the cost does not depend on it
            let model: any Backbone = precision == .float32 ? folded : try QuantizedNetwork(folded, calibration: input.withUnsafeBufferPointer {
                folded.calibrateInt8(images: $0.baseAddress!, count: min(b, 8), height: 224, width: 224,
                                     imageSHA256: (0..<min(b, 8)).map { "random image \($0)" }, winograd: int8Winograd)
            })
            _ = model.features(input)  // warm-up: allocates the workspace
            var times: [Double] = []
            let cpu0 = processCPUSeconds()
            for _ in 0..<max(1, iterations) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = model.features(input)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            let cpuPerImage = (processCPUSeconds() - cpu0) * 1000 / Double(max(1, iterations) * b)
            times.sort()
            let med = times[times.count / 2]
            let line = String(format: "%-13@ %5d   %9.1f   %8.1f   %12.1f   %11.0f   %@", which as NSString, b, med, Double(b) * 1000 / med, cpuPerImage,
                              Double(peakResidentBytes()) / 1048576,
                              (precision == .int8 ? "int8 (\(int8KernelName)\(int8Winograd ? "" : ", direct"))" : "float32") as NSString)
            log(line)
            lines.append(line)
          }
        }
    }
    return lines.joined(separator: "\n")
}
