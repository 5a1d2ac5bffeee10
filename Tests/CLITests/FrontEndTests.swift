import Foundation
import Testing
import Digest
import NN
import Store
import Backbones
@testable import CLI
import Parallelism
import TestSupport

/// The front end: help, dispatch, argument parsing, usage errors (status 64, one line naming the
/// command), failures (status 1), --threads. Runs `runProbe` in this process.
@Suite("CLI front end", .serialized)
struct FrontEndTests {
    /// A store path that does not exist: commands that need a store stop there, after parsing.
    let missing = FileManager.default.temporaryDirectory.appendingPathComponent("probe-cli-missing-\(UUID().uuidString)/s.sqlite").path

    @Test func topLevelHelpListsEveryCommand() {
        for words in [[], ["--help"], ["-h"], ["help"]] {
            let r = probe(words)
            #expect(r.status == 0 && r.err.isEmpty, "\(words)")
            #expect(r.out.hasPrefix("OVERVIEW: probe \(probeVersion): transfer learning on the CPU."))
            for c in allCommands {
                #expect(r.out.contains("\n  \(c.name) ") && r.out.contains(c.summary), "\(c.name) missing from probe --help")
            }
        }
        #expect(allCommands.count == 26)
        #expect(Set(allCommands.map(\.name)).count == allCommands.count)
    }

    @Test func version() {
        let r = probe("--version")
        #expect(r.status == 0 && r.out == "0.1.0\n" && r.err.isEmpty)
    }

    @Test func everyCommandsHelpListsItsOptions() {
        for c in allCommands {
            let r = probe(c.path + ["--help"])
            #expect(r.status == 0 && r.err.isEmpty, "\(c.name) --help")
            #expect(r.out.hasPrefix("OVERVIEW: \(c.summary)\n\nUSAGE: probe \(c.usage)\n"), "\(c.name) --help")
            let options = r.out.components(separatedBy: "\nOPTIONS:\n").last ?? ""
            for o in c.options + [Option("--help", nil, "")] {
                let left = "  " + o.name + (o.value.map { " " + $0 } ?? "")
                #expect(options.contains(left + " "), "\(c.name) --help does not list \(left)")
            }
            #expect(options.split(separator: "\n").count == c.options.count + 1, "\(c.name): one line per option")
            // -h and `probe help COMMAND` print the same
            #expect(probe(c.path + ["-h"]).out == r.out)
            #expect(probe(["help"] + c.path).out == r.out)
        }
        // Specific options where they belong.
        let train = probe("train", "--help").out
        for o in ["--solver S", "--epochs N", "--lr X", "--C X", "--threads N", "--store PATH", "--json"] {
            #expect(train.contains("  \(o) "), "train --help lacks \(o)")
        }
        #expect(!probe("store", "info", "--help").out.contains("--threads"))
        // --help wins over a bad option or value anywhere
        #expect(probe("train", "--epochs", "0", "--help").status == 0)
    }

    @Test func unknownCommandSuggests() {
        var r = probe("frobnicate")
        #expect(r.status == 64 && r.out.isEmpty)
        #expect(r.err == "probe: unknown command 'frobnicate' (see 'probe --help')")
        r = probe("store", "frob")
        #expect(r.status == 64 && r.err == "probe: 'store frob' is not a command; did you mean 'probe store info', 'probe store merge', 'probe store compare'?")
        r = probe("weights")
        #expect(r.status == 64 && r.err == "probe: 'weights' is not a command; did you mean 'probe weights inspect', 'probe weights fetch'?")
        r = probe("bench", "nope", "--count", "3")
        #expect(r.status == 64)
        #expect(r.err == "probe: 'bench nope' is not a command; did you mean 'probe bench forward', 'probe bench vision', "
            + "'probe bench query', 'probe bench heads', 'probe bench eval', 'probe bench finetune', 'probe bench audit', 'probe bench store'?")
    }

    @Test func unknownOptionAndMissingValue() {
        var r = probe("train", "--frob", "--store", missing)
        #expect(r.status == 64 && r.err == "probe train: unknown option '--frob' (see 'probe train --help')")
        r = probe("train", "--frob=3")
        #expect(r.status == 64 && r.err == "probe train: unknown option '--frob' (see 'probe train --help')")
        r = probe("train", "--store", missing, "--epochs")
        #expect(r.status == 64 && r.err == "probe train: option '--epochs' needs a value N")
        r = probe("export", "--out")
        #expect(r.status == 64 && r.err == "probe export: option '--out' needs a value PATH")
        r = probe("train", "--json=yes")
        #expect(r.status == 64 && r.err == "probe train: option '--json' takes no value")
        r = probe("store", "info", "--threads", "2")  // not a compute command
        #expect(r.status == 64 && r.err == "probe store info: unknown option '--threads' (see 'probe store info --help')")
        r = probe("train", "surplus", "--store", missing)
        #expect(r.status == 64 && r.err.hasPrefix("probe train: unexpected argument 'surplus' (usage: probe train [--name NAME]"))
        r = probe("export", "--store", missing)
        #expect(r.status == 64 && r.err == "probe export: --out PATH is required")
    }

    /// Values are checked before anything is opened: a bad value is reported even without a store.
    @Test func badNumbersAndChoices() {
        let cases: [([String], String)] = [
            (["--epochs", "0"], "probe train: --epochs needs a whole number in 1...100000, not '0'"),
            (["--epochs", "100001"], "probe train: --epochs needs a whole number in 1...100000, not '100001'"),
            (["--epochs", "2.5"], "probe train: --epochs needs a whole number in 1...100000, not '2.5'"),
            (["--epochs=abc"], "probe train: --epochs needs a whole number in 1...100000, not 'abc'"),
            (["--seed", "-1"], "probe train: --seed needs a whole number >= 0, not '-1'"),
            (["--lr", "-0.1"], "probe train: --lr needs a number in 0.0...100.0, not '-0.1'"),
            (["--lr", "nan"], "probe train: --lr needs a number in 0.0...100.0, not 'nan'"),
            (["--lr", "inf"], "probe train: --lr needs a number in 0.0...100.0, not 'inf'"),
            (["--momentum", "1.5"], "probe train: --momentum needs a number in 0.0...1.0, not '1.5'"),
            (["--solver", "adam"], "probe train: --solver must be one of sgd, lbfgs, not 'adam'"),
        ]
        for (words, message) in cases {
            let r = probe(["train", "--store", missing] + words)
            #expect(r.status == 64, "\(words)")
            #expect(r.err == message, "\(words)")
        }
        // The last value of a repeated option counts.
        let r = probe("train", "--store", missing, "--epochs", "0", "--epochs", "3")
        #expect(r.status == 64 && r.err.hasPrefix("probe train: no store at \(missing)"))
        let fmt = probe("export", "--out", "x", "--format", "parquet", "--store", missing)
        #expect(fmt.status == 64 && fmt.err == "probe export: --format must be one of npy, csv, not 'parquet'")
    }

    /// Choice options are declared once (`ChoiceOption`): the help lists the values, parsing gives
    /// the typed value, a value not among them is a usage error (64) listing them, before any work.
    @Test func choiceOptionsListTheirValues() throws {
        // What each command needs besides the option to get as far as parsing it.
        let needs: [String: [String]] = ["extract": ["DIR"], "heads export": ["NAME"], "export": ["--out", "x"], "finetune": ["DIR"],
                                      "bench store": ["OUT"]]
        var seen: [String] = []
        for c in allCommands {
            let help = probe(c.path + ["--help"]).out
            for o in c.options where !o.choices.isEmpty {
                seen.append("\(c.name) \(o.name)")
                let line = help.split(separator: "\n").first { $0.hasPrefix("  \(o.name) \(o.value ?? "")") }.map(String.init) ?? ""
                for v in o.choices { #expect(line.contains(v), "\(c.name) --help: \(o.name) does not list \(v)") }
                var words = c.path + (needs[c.name] ?? []) + [o.name, "bogus"]
                if c.options.contains(where: { $0.name == "--store" }) { words += ["--store", missing] }
                let r = probe(words)
                #expect(r.status == 64, "\(words)")
                #expect(r.err == "probe \(c.name): \(o.name) must be one of \(o.choices.joined(separator: ", ")), not 'bogus'", "\(words)")
            }
        }
        #expect(seen.sorted() == ["audit --rank", "bench finetune --backbone", "bench forward --only", "bench store --dtype", "demo --backbone",
                                  "eval --class-weight", "export --format", "extract --backbone", "extract --dtype", "extract --precision", "finetune --backbone",
                                  "heads export --format", "train --class-weight", "train --solver"])
        // The values come from the types: the registry's architectures, the enums' cases.
        let backbones = Architecture.all.map(\.name)
        #expect(backboneOption.names == backbones && backbones.contains("resnet50"))
        #expect(dtypeOption.names == VectorDType.allCases.map(\.rawValue))
        #expect(solverOption.names == ["sgd", "lbfgs"] && exportFormatOption.names == ["npy", "csv"]
                && headFormatOption.names == ["pth", "safetensors"])
        var r = probe("extract", "DIR", "--backbone", "vgg16")
        #expect(r.status == 64 && r.err == "probe extract: --backbone must be one of resnet18, resnet34, resnet50, mobilenet_v2, not 'vgg16'")
        r = probe("extract", "DIR", "--dtype=f64")
        #expect(r.status == 64 && r.err == "probe extract: --dtype must be one of f32, f16, not 'f64'")
        r = probe("heads", "export", "NAME", "--format", "onnx")
        #expect(r.status == 64 && r.err == "probe heads export: --format must be one of pth, safetensors, not 'onnx'")
        r = probe("bench", "forward", "--only", "vgg16")
        #expect(r.status == 64 && r.err == "probe bench forward: --only must be one of resnet18, resnet34, resnet50, mobilenet_v2, not 'vgg16'")
        // Help and usage generated from the declaration.
        let train = probe("train", "--help").out
        #expect(train.contains("USAGE: probe train [--name NAME] [--solver sgd|lbfgs]"))
        #expect(train.contains("  --solver S ") && train.contains("sgd (default) or lbfgs.\n"))
        #expect(probe("extract", "--help").out.contains("[--backbone resnet18|resnet34|resnet50|mobilenet_v2]"))
        #expect(probe("export", "--help").out.contains("npy (default) or csv.\n"))
        // Typed values: the default when absent, the last one given, the registry's aliases.
        let none = try Arguments(command: extractCommand, words: ["DIR"])
        #expect(try none.value(backboneOption) == .resnet18 && none.value(dtypeOption) == .f32)
        #expect(try none.given(backboneOption) == nil)
        let some = try Arguments(command: extractCommand, words: ["DIR", "--dtype", "f32", "--dtype=f16", "--backbone", "MobileNet-V2"])
        #expect(try some.value(dtypeOption) == .f16 && some.value(backboneOption) == .mobilenetV2)
    }

    @Test func missingStoreIsAUsageError() {
        let r = probe("store", "info", "--store", missing)
        #expect(r.status == 64)
        #expect(r.err == "probe store info: no store at \(missing) (run `probe extract DIR` first, or pass --store PATH)")
        #expect(!FileManager.default.fileExists(atPath: missing), "a read command created the store")
    }

    @Test func threadsOption() {
        let saved = ThreadCount.workers
        defer { ThreadCount.set(saved) }
        for bad in ["0", "-2", "1025", "two", "1.5", ""] {
            let r = probe("train", "--store", missing, "--threads", bad)
            #expect(r.status == 64, "--threads '\(bad)'")
            #expect(r.err == "probe train: --threads needs a positive whole number (at most 1024), not '\(bad)'")
        }
        #expect(ThreadCount.workers == saved, "a refused --threads changed the worker count")
        // A valid count is in force before the command runs (which then stops: no store).
        for (words, n) in [(["--threads", "3"], 3), (["--threads=1"], 1), (["--threads", "7"], 7)] {
            let r = probe(["query", "x.jpg", "--store", missing] + words)
            #expect(r.status == 64 && r.err.hasPrefix("probe query: no store at"))
            #expect(ThreadCount.workers == n, "\(words)")
        }
    }

    /// A command that fails after parsing exits 1 with one line naming the command.
    @Test func failureExitsOne() throws {
        let dir = try TempDir()
        let notWeights = dir.file("weights.pth")
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: notWeights))
        let r = probe("weights", "inspect", notWeights)
        #expect(r.status == 1)
        #expect(r.err.hasPrefix("probe weights inspect: "))
        #expect(!r.err.dropLast().contains("\n"), "one line")
        let none = probe("weights", "inspect")
        #expect(none.status == 64 && none.err.hasPrefix("probe weights inspect: missing "))
    }

    /// The whole path: parse, open a store, run, write a file.
    @Test func exportWritesTheStoresFeatures() throws {
        let dir = try TempDir()
        let path = dir.file("features.sqlite")
        do {
            let store = try FeatureStore(path: path)
            let b = try store.backbone(architecture: "resnet18", weightsSHA256: SHA256.hex(Array("w".utf8)), dimension: 3)
            var batch = Batch()
            for (i, (label, v)) in [("ants", [Float](arrayLiteral: 1, 0.5, -2)), ("bees", [0.25, 0, 3])].enumerated() {
                let h = SHA256.hex(Array("image \(i)".utf8))
                batch.images.append(ImageRecord(sha256: h, byteSize: 10))
                batch.samples.append(SampleRecord(path: "train/\(label)/\(i).jpg", sha256: h, label: label, split: "train"))
                batch.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: v))
            }
            try store.insertBatch(batch, backbone: b)
        }
        let out = dir.file("train.csv")
        let r = probe("export", "--store", path, "--out", out, "--format", "csv", "--split", "train")
        #expect(r.status == 0 && r.err.isEmpty)
        let csv = try String(contentsOfFile: out, encoding: .utf8)
        #expect(csv == "path,label,split,f0,f1,f2\ntrain/ants/0.jpg,ants,train,1.0,0.5,-2.0\ntrain/bees/1.jpg,bees,train,0.25,0.0,3.0\n")
        // Nothing in the split: status 1, no rows.
        let none = probe("export", "--store", path, "--out", dir.file("val.csv"), "--format", "csv", "--split", "val")
        #expect(none.status == 1)
        // The backbone must exist.
        let wrong = probe("export", "--store", path, "--out", dir.file("x.csv"), "--backbone", "mobilenet_v2")
        #expect(wrong.status != 0 && !wrong.err.isEmpty)
    }
}
