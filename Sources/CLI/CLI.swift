import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A usage error: reported as one line on stderr with exit status 64 (EX_USAGE).
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// One option a command accepts. `value == nil` means a flag without a value.
struct Option: Sendable {
    let name: String          // "--store"
    let value: String?        // "PATH"
    let help: String
    /// The accepted values of a choice option (see `ChoiceOption`), else empty.
    var choices: [String] = []
    init(_ name: String, _ value: String? = nil, _ help: String) {
        self.name = name; self.value = value; self.help = help
    }
}

/// An option whose value is one of a fixed set of names, declared once: its help lists the names
/// (and the default), `Arguments.value` returns the typed value, and a name not among them is a
/// usage error that lists them.
struct ChoiceOption<Value: Sendable>: Sendable {
    private(set) var option: Option
    /// The accepted names, as the help and the error list them.
    let names: [String]
    let defaultValue: Value
    /// The value of a name (may accept more spellings than `names`), nil for an unknown one.
    let parse: @Sendable (String) -> Value?

    /// "--format npy|csv", for a command's usage line.
    var usage: String { option.name + " " + names.joined(separator: "|") }

    init(_ name: String, _ value: String, help: String, names: [String], default d: Value,
         parse: @escaping @Sendable (String) -> Value?) {
        option = Option(name, value, help)
        option.choices = names
        self.names = names; defaultValue = d; self.parse = parse
    }
}

extension ChoiceOption where Value: CaseIterable & RawRepresentable, Value.RawValue == String {
    /// A choice among the cases of an enum, by raw value. The help is "a (default), b or c." followed by `note`.
    init(_ name: String, _ value: String, default d: Value, note: String = "") {
        let names = Value.allCases.map(\.rawValue)
        let listed = names.map { $0 == d.rawValue ? $0 + " (default)" : $0 }
        var help = listed.joined(separator: ", ")
        if listed.count > 1, let last = listed.last { help = listed.dropLast().joined(separator: ", ") + " or " + last }
        help += "."
        self.init(name, value, help: note.isEmpty ? help : help + " " + note, names: names, default: d,
                  parse: { Value(rawValue: $0) })
    }
}

/// A command of the tool: its words ("weights inspect"), its help and how to run it.
struct Command: Sendable {
    let path: [String]
    let summary: String
    let usage: String
    let discussion: String
    let options: [Option]
    let run: @Sendable (Arguments) throws -> Int32

    var name: String { path.joined(separator: " ") }

    func helpText() -> String {
        var s = "OVERVIEW: \(summary)\n\nUSAGE: probe \(usage)\n"
        if !discussion.isEmpty { s += "\n" + discussion + "\n" }
        let all = options + [Option("--help", nil, "Show this help.")]
        s += "\nOPTIONS:\n"
        let width = all.map { $0.name.count + ($0.value.map { $0.count + 1 } ?? 0) }.max() ?? 0
        for o in all {
            let left = o.name + (o.value.map { " " + $0 } ?? "")
            s += "  " + left + String(repeating: " ", count: width - left.count + 2) + o.help + "\n"
        }
        return s
    }
}

/// Parsed command-line arguments of one command: positionals, options with values, flags.
struct Arguments {
    let command: Command
    private(set) var positionals: [String] = []
    private var values: [String: [String]] = [:]
    private var flags: Set<String> = []

    init(command: Command, words: [String]) throws {
        self.command = command
        var i = 0
        var onlyPositionals = false
        while i < words.count {
            let w = words[i]
            i += 1
            if onlyPositionals || !w.hasPrefix("-") || w == "-" { positionals.append(w); continue }
            if w == "--" { onlyPositionals = true; continue }
            var name = w
            var inline: String? = nil
            if let eq = w.firstIndex(of: "=") {
                name = String(w[..<eq]); inline = String(w[w.index(after: eq)...])
            }
            guard let opt = command.options.first(where: { $0.name == name }) else {
                throw UsageError("probe \(command.name): unknown option '\(name)' (see 'probe \(command.name) --help')")
            }
            if opt.value == nil {
                if inline != nil { throw UsageError("probe \(command.name): option '\(name)' takes no value") }
                flags.insert(name)
            } else {
                let v: String
                if let inline { v = inline } else {
                    guard i < words.count else {
                        throw UsageError("probe \(command.name): option '\(name)' needs a value \(opt.value!)")
                    }
                    v = words[i]; i += 1
                }
                values[name, default: []].append(v)
            }
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }
    func string(_ name: String) -> String? { values[name]?.last }
    func strings(_ name: String) -> [String] { values[name] ?? [] }

    func int(_ name: String, default d: Int, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let s = string(name) else { return d }
        guard let v = Int(s), range.contains(v) else {
            throw UsageError("probe \(command.name): \(name) needs a whole number\(describe(range)), not '\(s)'")
        }
        return v
    }

    func double(_ name: String, default d: Double, range: ClosedRange<Double> = -Double.infinity...Double.infinity) throws -> Double {
        guard let s = string(name) else { return d }
        guard let v = Double(s), v.isFinite, range.contains(v) else {
            throw UsageError("probe \(command.name): \(name) needs a number in \(range.lowerBound)...\(range.upperBound), not '\(s)'")
        }
        return v
    }

    /// The value of a choice option: the default when not given; a name that is not among the
    /// choices is a usage error that lists them.
    func value<Value>(_ o: ChoiceOption<Value>) throws -> Value {
        try given(o) ?? o.defaultValue
    }

    /// The value of a choice option when it is given, else nil (for a default that depends on more).
    func given<Value>(_ o: ChoiceOption<Value>) throws -> Value? {
        assert(command.options.contains { $0.name == o.option.name }, "probe \(command.name) does not declare \(o.option.name)")
        guard let s = string(o.option.name) else { return nil }
        guard let v = o.parse(s) else {
            throw UsageError("probe \(command.name): \(o.option.name) must be one of \(o.names.joined(separator: ", ")), not '\(s)'")
        }
        return v
    }

    /// The positionals, checked against the number the command takes.
    func positionals(min: Int, max: Int, what: String) throws -> [String] {
        if positionals.count < min {
            throw UsageError("probe \(command.name): missing \(what) (usage: probe \(command.usage))")
        }
        if positionals.count > max {
            throw UsageError("probe \(command.name): unexpected argument '\(positionals[max])' (usage: probe \(command.usage))")
        }
        return positionals
    }

    private func describe(_ r: ClosedRange<Int>) -> String {
        if r.lowerBound == Int.min && r.upperBound == Int.max { return "" }
        if r.upperBound == Int.max { return " >= \(r.lowerBound)" }
        return " in \(r.lowerBound)...\(r.upperBound)"
    }
}

/// Writes a line to standard error.
func printError(_ s: String) {
    var line = s
    if !line.hasSuffix("\n") { line += "\n" }
    FileHandle.standardError.write(Data(line.utf8))
}

/// True when standard error is a terminal (progress bars go there).
var stderrIsTerminal: Bool { isatty(2) != 0 }
