#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// probe: transfer learning on the CPU. This file only dispatches; each command lives in its own file.
exit(runProbe(Array(CommandLine.arguments.dropFirst())))
