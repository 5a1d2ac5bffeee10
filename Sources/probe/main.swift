import CLI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// probe: transfer learning on the CPU. The commands live in module CLI (tested by Tests/CLITests).
exit(runProbe(Array(CommandLine.arguments.dropFirst())))
