import Foundation
import Store

let storeOption = Option("--store", "PATH", "The feature store (default: \(FeatureStore.defaultPath)).")
let jsonOption = Option("--json", nil, "Print machine-readable JSON.")

func storePath(_ args: Arguments) -> String { args.string("--store") ?? FeatureStore.defaultPath }

/// Opens the store of --store, which must exist (only `probe extract` and `probe demo` create one).
func openStore(_ args: Arguments, readOnly: Bool = false) throws -> FeatureStore {
    let path = storePath(args)
    guard FileManager.default.fileExists(atPath: path) else {
        throw UsageError("probe \(args.command.name): no store at \(path) (run `probe extract DIR` first, or pass --store PATH)")
    }
    return try FeatureStore(path: path, readOnly: readOnly)
}

/// A success message: on standard output, or on standard error when standard output carries the data (--out -).
func printStatus(_ toStandardError: Bool, _ message: String) {
    if toStandardError { FileHandle.standardError.write(Data((message + "\n").utf8)) } else { print(message) }
}

/// Prints a Codable value as pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// --backbone of the commands that read a store's features (train, query, export, bench heads).
let storeBackboneOption = Option("--backbone", "B", "Which backbone's features, when the store holds several: an architecture (resnet18), "
    + "a prefix of the weights' sha256 (17c68b6d), both (mobilenet_v2:17c68b6d), or the weights file's path.")

/// The backbone of the store chosen by --backbone (see `FeatureStore.selectBackbone`).
func selectBackbone(_ store: FeatureStore, _ args: Arguments) throws -> StoredBackbone {
    try store.selectBackbone(args.string("--backbone"))
}

let storeInfoCommand = Command(
    path: ["store", "info"],
    summary: "Show the feature store: schema version, backbones, counts per split and label, failures, size.",
    usage: "store info [--store PATH] [--json]",
    discussion: "The store is a plain SQLite file; its schema is documented in Sources/Store/SCHEMA.md.",
    options: [storeOption, jsonOption],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        let store = try openStore(args, readOnly: true)
        let info = try store.info()
        if args.flag("--json") { try printJSON(info) } else { print(info.render(), terminator: "") }
        return 0
    }
)

let exportFormatOption = ChoiceOption("--format", "F", default: ExportFormat.npy)

let exportCommand = Command(
    path: ["export"],
    summary: "Write cached features with labels and paths as .npy (+ labels CSV) or CSV.",
    usage: "export --out PATH [\(exportFormatOption.usage)] [--split S] [--label L] [--backbone B] [--store PATH]",
    discussion: """
    With --format npy, OUT.npy holds an N x D float32 matrix (numpy.load reads it as is) and
    OUT.labels.csv describes each row (row,path,label,split,sha256). Both are written whole to
    temporary files first, then OUT.npy is renamed into place and OUT.labels.csv last: whoever
    sees the new OUT.labels.csv can rely on OUT.npy being the new matrix too (an export
    interrupted between the two renames leaves a new OUT.npy beside the old labels).

    Files are written atomically (temporary file in the same directory, fsync, rename): an
    existing regular file at the path is replaced (a write-protected one is refused), and an interrupted export leaves the previous
    file whole. Anything else at the path (device, FIFO, directory, symbolic link) is refused, and
    so is the store being read, under any spelling or hard link, and its -wal/-shm files.
    --out - --format csv writes the CSV to standard output.

    EXAMPLE:
      probe export --out train --split train && python3 -c "import numpy; print(numpy.load('train.npy').shape)"
    """,
    options: [
        Option("--out", "PATH", "Output file (required); - is standard output (--format csv)."),
        exportFormatOption.option,
        Option("--split", "S", "Only this split (train, val, ...)."),
        Option("--label", "L", "Only this label (class)."),
        storeBackboneOption,
        storeOption, jsonOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        guard let out = args.string("--out") else { throw UsageError("probe export: --out PATH is required") }
        if out == "-" && args.flag("--json") { throw UsageError("probe export: --json and --out - both use standard output; choose one") }
        let format = try args.value(exportFormatOption)
        let store = try openStore(args, readOnly: true)
        let backbone = try selectBackbone(store, args)
        let summary = try store.export(to: out, format: format, backbone: backbone,
                                       split: args.string("--split"), label: args.string("--label"))
        if args.flag("--json") { try printJSON(summary) } else {
            printStatus(out == "-", "exported \(summary.rows) rows of \(summary.dimension)-d \(backbone.architecture) features to \(summary.files.joined(separator: ", "))")
        }
        return summary.rows > 0 ? 0 : 1
    }
)
