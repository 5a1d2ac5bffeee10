import Foundation
import Vision

/// Times decode + validation transform (Resize 256, CenterCrop 224, ToTensor, Normalize into a float
/// buffer) for every accepted image under `root` (train/ and val/ when split), on the calling thread.
/// One warm-up pass, then three timed passes; per image the fastest of the three is kept, and the median
/// and mean over images are reported, of the wall-clock time and of the thread's CPU time
/// (`CLOCK_THREAD_CPUTIME_ID`; both robust to other processes sharing the cores).
/// Compare with `tools/bench_vision_pil.py` (PIL + torchvision, one thread). Build with `-c release`.
public func runVisionBenchmark(root: String) -> String {
    let folders: [ImageFolder]
    do {
        switch try DatasetLayout.detect(root: root) {
        case .split(let t, let v): folders = [t, v]
        case .single(let f): folders = [f]
        }
    } catch {
        return "bench vision: \(error)"
    }
    let paths = folders.flatMap { $0.samples.map(\.path) }
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 3 * 224 * 224)
    defer { buffer.deallocate() }
    var failures: [String] = []
    // Per image: the minimum over `passes` timed passes (after one warm-up pass), which filters out
    // interference from other processes; then median and mean over images.
    let passes = 3
    var times = [Double](repeating: .infinity, count: paths.count)
    var cpuTimes = [Double](repeating: .infinity, count: paths.count)
    var decodeTimes = [Double](repeating: .infinity, count: paths.count)
    var ok = [Bool](repeating: true, count: paths.count)
    func cpuNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
    var checksum: Double = 0
    for pass in 0...passes {
        for (k, p) in paths.enumerated() where ok[k] {
            let c0 = cpuNow()
            let t0 = DispatchTime.now().uptimeNanoseconds
            do {
                let img = try ImageDecoder.decode(path: p)
                let tm = DispatchTime.now().uptimeNanoseconds
                if pass > 0 { decodeTimes[k] = min(decodeTimes[k], Double(tm - t0) / 1e6) }
                Transforms.validation(img, into: buffer)
            } catch {
                failures.append(error.description)
                ok[k] = false
                continue
            }
            let t1 = DispatchTime.now().uptimeNanoseconds
            let c1 = cpuNow()
            checksum += Double(buffer[1000])
            if pass > 0 {
                times[k] = min(times[k], Double(t1 - t0) / 1e6)
                cpuTimes[k] = min(cpuTimes[k], Double(c1 - c0) / 1e6)
            }
        }
    }
    times = zip(times, ok).filter(\.1).map(\.0)
    cpuTimes = zip(cpuTimes, ok).filter(\.1).map(\.0)
    decodeTimes = zip(decodeTimes, ok).filter(\.1).map(\.0)
    guard !times.isEmpty else { return "bench vision: no decodable image under \(root)" }
    func medianOf(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    let median = medianOf(times)
    let total = times.reduce(0, +)
    let cpuTotal = cpuTimes.reduce(0, +)
    var s = "probe (Swift, 1 thread): \(times.count) images, decode+validation transform per image: "
    s += String(format: "CPU median %.3f ms, mean %.3f ms; wall median %.3f ms, mean %.3f ms, total %.1f ms, %.0f images/s",
                medianOf(cpuTimes), cpuTotal / Double(cpuTimes.count), median, total / Double(times.count), total, Double(times.count) / (total / 1000))
    s += String(format: "\n  of which decode (wall): median %.3f ms, mean %.3f ms", medianOf(decodeTimes), decodeTimes.reduce(0, +) / Double(decodeTimes.count))
    if !failures.isEmpty { s += "\n\(failures.count) undecodable: " + failures.joined(separator: "; ") }
    _ = checksum
    return s
}
