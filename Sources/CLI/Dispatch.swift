import NN
import Parallelism

public let probeVersion = "0.1.0"

/// Every command of the tool, in the order `probe --help` lists them.
let allCommands: [Command] = [
    extractCommand, storeInfoCommand, storeMergeCommand, storeCompareCommand, exportCommand,
    trainCommand, headsCommand, headsExportCommand, predictCommand, evalCommand, queryCommand, auditCommand,
    finetuneCommand, demoCommand, reportCommand,
    previewCommand, weightsInspectCommand, weightsFetchCommand,
    benchForwardCommand, benchVisionCommand, benchQueryCommand, benchHeadsCommand, benchEvalCommand, benchFinetuneCommand, benchAuditCommand,
    benchStoreCommand,
]

func topLevelHelp(_ commands: [Command]) -> String {
    var s = """
    OVERVIEW: probe \(probeVersion): transfer learning on the CPU.

    A frozen ImageNet backbone (ResNet-18 or -34: 512-d, ResNet-50: 2048-d, MobileNetV2: 1280-d) turns every image into a
    feature vector once; the vectors live in a SQLite store; linear heads train over them in
    milliseconds, as often as you like. Full finetuning streams images through the whole network.

    USAGE: probe <command> [options]

    TYPICAL SESSION:
      probe extract data/hymenoptera_data          # features of every image, once
      probe train --name ants-bees                  # a head in milliseconds (again and again)
      probe predict photo.jpg --head ants-bees
      probe query photo.jpg --k 5                   # nearest neighbours among cached embeddings

    THREADS: compute commands use as many worker threads as the CPUs this process may use
    (affinity and cgroup CPU quota: \(ThreadCount.available) here); PROBE_THREADS=N or --threads N sets another count.

    COMMANDS:

    """
    let width = commands.map { $0.name.count }.max() ?? 0
    for c in commands {
        s += "  " + c.name + String(repeating: " ", count: width - c.name.count + 2) + c.summary + "\n"
    }
    s += "\nSee 'probe <command> --help' for a command's options.\n"
    return s
}

/// Where the front end writes help, version and usage errors (a command's own results go to
/// standard output / standard error directly).
public struct Console: Sendable {
    public var out: @Sendable (String) -> Void
    public var err: @Sendable (String) -> Void
    public init(out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void) {
        self.out = out; self.err = err
    }
    /// Standard output and standard error (an error message gets its line feed).
    public static let standard = Console(out: { print($0, terminator: "") }, err: { printError($0) })
}

/// The whole front end: finds the command named by the longest matching prefix of `words`
/// (the arguments after the program name), parses and runs it. Returns the exit status: 0 done,
/// 64 usage error (unknown command or option, missing or bad value), 1 the command failed.
public func runProbe(_ words: [String], console: Console = .standard) -> Int32 {
    let commands = allCommands
    if words.isEmpty || words == ["--help"] || words == ["-h"] || words == ["help"] {
        console.out(topLevelHelp(commands))
        return 0
    }
    if words == ["--version"] { console.out(probeVersion + "\n"); return 0 }
    var rest = words
    if rest.first == "help" { rest.removeFirst(); rest.append("--help") }
    let match = commands
        .filter { rest.count >= $0.path.count && Array(rest.prefix($0.path.count)) == $0.path }
        .max { $0.path.count < $1.path.count }
    guard let command = match else {
        let groups = commands.filter { $0.path.first == rest.first }
        if !groups.isEmpty {
            let names = groups.map { "'probe \($0.name)'" }.joined(separator: ", ")
            console.err("probe: '\(rest.prefix(2).joined(separator: " "))' is not a command; did you mean \(names)?")
        } else {
            console.err("probe: unknown command '\(rest[0])' (see 'probe --help')")
        }
        return 64
    }
    let args = Array(rest.dropFirst(command.path.count))
    if args.contains("--help") || args.contains("-h") {
        console.out(command.helpText())
        return 0
    }
    do {
        let parsed = try Arguments(command: command, words: args)
        try applyThreads(parsed)
        return try command.run(parsed)
    } catch let e as UsageError {
        console.err(e.description)
        return 64
    } catch {
        console.err("probe \(command.name): \(error)")
        return 1
    }
}
