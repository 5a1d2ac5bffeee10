import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many worker threads probe's compute uses: by default the CPUs this process may use, else
/// `PROBE_THREADS`, else what a command's `--threads` sets (before any work starts). Results do not
/// depend on it: kernels split work into pieces whose size does not depend on the worker count.
public enum ThreadCount {
    private static let configured = Atomic<Int>(0)

    /// The worker count in force (at least 1).
    public static var workers: Int {
        let n = configured.load(ordering: .relaxed)
        if n > 0 { return n }
        let resolved = fromEnvironment ?? available
        // first reader wins; later readers see the same value
        _ = configured.compareExchange(expected: 0, desired: resolved, ordering: .relaxed)
        return configured.load(ordering: .relaxed)
    }

    /// The worker count in force for reports: "1 thread", "2 threads".
    public static var workersDescription: String {
        let n = workers
        return n == 1 ? "1 thread" : "\(n) threads"
    }

    /// Sets the worker count (a command's `--threads`) alone; NN's `ThreadCount.set` also sets BLAS's
    /// own thread count to match. Call before any parallel work: the worker pool keeps its first size
    /// and runs larger jobs on GCD instead.
    public static func setWorkers(_ n: Int) {
        precondition(n >= 1, "thread count must be at least 1")
        configured.store(n, ordering: .relaxed)
    }

    /// Image decoding threads beside `workers` compute workers (extraction, finetuning's loader): one
    /// per six, at least one. Decoding and transforming an image takes 1.5 ms on average here (`probe
    /// bench vision`, 397 images), the backbone 10-13 ms of one core per image for MobileNetV2 and about
    /// 40 ms for ResNet-18, so one decoder keeps up with six workers of the faster backbone.
    public static func decoders(workers: Int) -> Int {
        max(1, (workers + 5) / 6)
    }

    /// `PROBE_THREADS` when it is a positive integer (nil when absent; an invalid value is reported
    /// once on stderr and ignored).
    public static let fromEnvironment: Int? = {
        guard let s = ProcessInfo.processInfo.environment["PROBE_THREADS"], !s.isEmpty else { return nil }
        if let n = Int(s), n >= 1 { return n }
        FileHandle.standardError.write(Data("probe: ignoring PROBE_THREADS=\(s) (want a positive integer)\n".utf8))
        return nil
    }()

    /// The CPUs this process may use: its affinity mask (sched_getaffinity), lowered to the
    /// container's CPU quota (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us),
    /// rounded up; at least 1.
    public static let available: Int = {
        var n = affinityCount() ?? ProcessInfo.processInfo.activeProcessorCount
        if let quota = cgroupQuota() { n = min(n, quota) }
        return max(1, n)
    }()

    /// CPUs in the affinity mask (Linux: sched_getaffinity's mask as /proc/self/status shows it,
    /// since Glibc's module does not export sched_getaffinity), nil elsewhere or on failure.
    static func affinityCount(status: String = "/proc/self/status") -> Int? {
        guard let text = try? String(contentsOfFile: status, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return cpuCount(fromList: String(line.dropFirst("Cpus_allowed_list:".count)))
        }
        return nil
    }

    /// CPUs in a list such as "0-3,8,10-11" (nil when malformed or empty).
    public static func cpuCount(fromList s: String) -> Int? {
        let list = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !list.isEmpty else { return nil }
        var count = 0
        for part in list.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count == 1 || ends.count == 2, let lo = Int(ends[0]), let hi = Int(ends[ends.count - 1]),
                  lo >= 0, hi >= lo else { return nil }
            count += hi - lo + 1
        }
        return count > 0 ? count : nil
    }

    /// The CPU quota of this process's cgroup, rounded up to whole CPUs; nil when unlimited or unknown.
    static func cgroupQuota(root: String = "/sys/fs/cgroup", selfCgroup: String = "/proc/self/cgroup") -> Int? {
        #if os(Linux)
        // the process's own cgroup (v2: one line "0::/path"); its cpu.max, then its ancestors' (the tightest wins)
        var best: Int? = nil
        if let lines = try? String(contentsOfFile: selfCgroup, encoding: .utf8) {
            for line in lines.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard parts.count == 3 else { continue }
                let path = String(parts[2])
                if parts[0] == "0" {
                    var dir = path
                    while true {
                        if let q = parseCPUMax(root + dir + "/cpu.max") { best = min(best ?? q, q) }
                        if dir == "/" || dir.isEmpty { break }
                        dir = (dir as NSString).deletingLastPathComponent
                    }
                } else if parts[1].split(separator: ",").contains("cpu") {
                    for base in [root + "/cpu", root + "/cpu,cpuacct"] {
                        if let q = parseCFS(base + path) ?? parseCFS(base) { best = min(best ?? q, q) }
                    }
                }
            }
        }
        if best == nil, let q = parseCPUMax(root + "/cpu.max") { best = q }
        return best
        #else
        return nil
        #endif
    }

    /// "max 100000" -> nil, "150000 100000" -> 2.
    static func parseCPUMax(_ path: String) -> Int? {
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return quota(fromCPUMax: s)
    }

    /// Whole CPUs (rounded up) of a cgroup v2 `cpu.max` line; nil for "max" or malformed text.
    public static func quota(fromCPUMax s: String) -> Int? {
        let f = s.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count >= 1, let q = Double(f[0]), q > 0 else { return nil }
        let period = f.count >= 2 ? Double(f[1]) ?? 100_000 : 100_000
        guard period > 0 else { return nil }
        return max(1, Int((q / period).rounded(.up)))
    }

    static func parseCFS(_ dir: String) -> Int? {
        guard let qs = try? String(contentsOfFile: dir + "/cpu.cfs_quota_us", encoding: .utf8),
              let ps = try? String(contentsOfFile: dir + "/cpu.cfs_period_us", encoding: .utf8),
              let q = Double(qs.trimmingCharacters(in: .whitespacesAndNewlines)),
              let p = Double(ps.trimmingCharacters(in: .whitespacesAndNewlines)), q > 0, p > 0 else { return nil }
        return max(1, Int((q / p).rounded(.up)))
    }
}
