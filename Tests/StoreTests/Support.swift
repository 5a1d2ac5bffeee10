import Digest
import Foundation
@testable import Store


func sha(_ s: String) -> String { SHA256.hex(Array(s.utf8)) }

#if os(Linux)
/// Whether tests can re-run this test executable as a child process (on Linux the bundle is an executable).
let canSpawnTestChild = true
#else
let canSpawnTestChild = false
#endif

/// Starts this test executable again, running only the test `filter`, with `environment` added;
/// its standard output goes to `output` (default: discarded), and so does its standard error when `output` is a pipe.
func spawnTestChild(filter: String, environment: [String: String], output: Any = FileHandle.nullDevice) throws -> Process {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--testing-library", "swift-testing", "--filter", filter]
    child.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    child.standardOutput = output
    child.standardError = output is Pipe ? output : FileHandle.nullDevice
    try child.run()
    return child
}
