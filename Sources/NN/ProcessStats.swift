#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Resource usage of this process (all threads), for benchmarks.
private func selfUsage() -> rusage {
    var u = rusage()
    #if canImport(Glibc)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    #else
    getrusage(RUSAGE_SELF, &u)
    #endif
    return u
}

/// Peak resident memory of this process so far, in bytes (getrusage ru_maxrss).
public func peakResidentBytes() -> Int {
    let u = selfUsage()
    #if canImport(Darwin)
    return Int(u.ru_maxrss)
    #else
    return Int(u.ru_maxrss) * 1024
    #endif
}

/// CPU time (user + system) of this process so far, all threads, in seconds.
public func processCPUSeconds() -> Double {
    let u = selfUsage()
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}
