import NN
import Parallelism

/// `--threads N`, declared once: the worker count of a compute command. Commands that list it get
/// it applied by `runProbe` (`applyThreads`) before they run.
let threadsOption = Option("--threads", "N",
                           "Worker threads (default: the CPUs this process may use, \(ThreadCount.available) here; or PROBE_THREADS).")

/// The largest --threads accepted (the kernels size scratch memory per worker).
let maxThreads = 1024

/// For a command that lists `--threads`: sets the worker count in force (and BLAS's) to --threads N,
/// else to the default (PROBE_THREADS, else the CPUs this process may use), before any work.
/// A value that is not a whole number in 1...maxThreads is a usage error.
func applyThreads(_ args: Arguments) throws {
    guard args.command.options.contains(where: { $0.name == threadsOption.name }) else { return }
    var n = ThreadCount.workers
    if let s = args.string(threadsOption.name) {
        guard let v = Int(s), (1...maxThreads).contains(v) else {
            throw UsageError("probe \(args.command.name): --threads needs a positive whole number (at most \(maxThreads)), not '\(s)'")
        }
        n = v
    }
    ThreadCount.set(n)
}
