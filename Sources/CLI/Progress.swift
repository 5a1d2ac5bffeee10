import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-line progress bar with rate and ETA on stderr; silent unless stderr is a terminal.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private var total: Int
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let lock = NSLock()

    init(_ label: String, total: Int, quiet: Bool) {
        self.label = label
        self.total = max(total, 0)
        self.enabled = !quiet && stderrIsTerminal
    }

    func update(_ done: Int, total newTotal: Int? = nil, unit: String = "img") {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        if let newTotal { total = newTotal }
        let now = Date()
        if done < total && now.timeIntervalSince(lastDraw) < 0.1 { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 28
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%@ %@ %d/%d  %.1f %@/s  ETA %@ ", label, bar, done, total, rate, unit,
                          formatDuration(eta))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
}

func formatDuration(_ seconds: Double) -> String {
    if !seconds.isFinite { return "--" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return String(format: "%ds", s)
}
