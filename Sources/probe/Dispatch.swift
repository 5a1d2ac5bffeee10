import NN

let probeVersion = "0.1.0"

/// Every command of the tool, in the order `probe --help` lists them.
let allCommands: [Command] = [
    extractCommand, storeInfoCommand, exportCommand,
    trainCommand, headsCommand, headsExportCommand, predictCommand, evalCommand, queryCommand,
    finetuneCommand, demoCommand,
    previewCommand, weightsInspectCommand, weightsFetchCommand,
    benchForwardCommand, benchVisionCommand, benchQueryCommand, benchHeadsCommand, benchFinetuneCommand,
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

/// Finds the command named by the longest matching prefix of `words`, parses and runs it.
func runProbe(_ words: [String]) -> Int32 {
    let commands = allCommands
    if words.isEmpty || words == ["--help"] || words == ["-h"] || words == ["help"] {
        print(topLevelHelp(commands), terminator: "")
        return 0
    }
    if words == ["--version"] { print(probeVersion); return 0 }
    var rest = words
    if rest.first == "help" { rest.removeFirst(); rest.append("--help") }
    let match = commands
        .filter { rest.count >= $0.path.count && Array(rest.prefix($0.path.count)) == $0.path }
        .max { $0.path.count < $1.path.count }
    guard let command = match else {
        let groups = commands.filter { $0.path.first == rest.first }
        if !groups.isEmpty {
            let names = groups.map { "'probe \($0.name)'" }.joined(separator: ", ")
            printError("probe: '\(rest.prefix(2).joined(separator: " "))' is not a command; did you mean \(names)?")
        } else {
            printError("probe: unknown command '\(rest[0])' (see 'probe --help')")
        }
        return 64
    }
    let args = Array(rest.dropFirst(command.path.count))
    if args.contains("--help") || args.contains("-h") {
        print(command.helpText(), terminator: "")
        return 0
    }
    do {
        let parsed = try Arguments(command: command, words: args)
        try applyThreads(parsed)
        return try command.run(parsed)
    } catch let e as UsageError {
        printError(e.description)
        return 64
    } catch {
        printError("probe \(command.name): \(error)")
        return 1
    }
}
