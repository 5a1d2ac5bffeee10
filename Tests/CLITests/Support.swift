import Foundation
@testable import CLI

/// What one run of the front end printed (help, version and usage errors) and its exit status.
struct Run {
    let status: Int32
    let out: String
    let err: String
}

private final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func append(_ s: String) { lock.lock(); text += s; lock.unlock() }
    var value: String { lock.lock(); defer { lock.unlock() }; return text }
}

/// Runs `probe WORDS...` in this process, capturing the front end's output.
func probe(_ words: String...) -> Run { probe(words) }

func probe(_ words: [String]) -> Run {
    let out = Lines(), err = Lines()
    let status = runProbe(words, console: Console(out: { out.append($0) }, err: { err.append($0) }))
    return Run(status: status, out: out.value, err: err.value)
}

