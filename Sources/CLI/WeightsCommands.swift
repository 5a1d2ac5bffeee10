import Backbones
import Weights

let weightsInspectCommand = Command(
    path: ["weights", "inspect"],
    summary: "Show a weight file's format, tensors, shapes, dtypes, parameter count and sha256.",
    usage: "weights inspect FILE [--json]",
    discussion: """
    Reads PyTorch .pth/.pt files (zip and legacy formats) and safetensors without Python.
    The pickle inside .pth files is read by a safe subset that never runs code.

    EXAMPLES:
      probe weights inspect ../shared/reference/resnet18-ref.pth
      probe weights inspect cache/weights/mobilenet_v2-b0353104.pth
    """,
    options: [],
    run: { args in
        let file = try args.positionals(min: 1, max: 1, what: "weight file")[0]
        print(try inspectReport(path: file), terminator: "")
        return 0
    }
)

let weightsFetchCommand = Command(
    path: ["weights", "fetch"],
    summary: "Download torchvision's ImageNet weights into cache/weights/ (sha256-verified).",
    usage: "weights fetch BACKBONE[:VARIANT]... [--cache DIR]",
    discussion: """
    Fetches torchvision's ImageNet weight file of each backbone from PyTorch's model URLs and
    checks the file's SHA-256 against the prefix in its name. Without network, it says which
    file to put where (a copy from another machine works as well). Known files:
    \(Architecture.all.flatMap { a in a.weights.map { "  \(a.name):\($0.variant)  \($0.file.fileName)  (ImageNet top-1 \($0.imagenetTop1)%, resize \($0.preprocessing.resize))" } }.joined(separator: "\n"))
    The first file of each backbone is its default (BACKBONE alone).
    """,
    options: [Option("--cache", "DIR", "The weights cache (default cache/weights).")],
    run: { args in
        let names = try args.positionals(min: 1, max: 8, what: "backbone name (\(Architecture.knownNames))")
        for name in names {
            let parts = name.split(separator: ":", maxSplits: 1).map(String.init)
            guard let arch = Architecture.find(parts[0]) else {
                throw UsageError("probe weights fetch: unknown backbone '\(parts[0])' (choose one of \(Architecture.knownNames))")
            }
            guard let pretrained = parts.count == 2 ? arch.pretrained(parts[1]) : arch.weights.first else {
                throw UsageError("probe weights fetch: \(arch.name) has no weights '\(parts[1])' (choose one of \(arch.weights.map(\.variant).joined(separator: ", ")))")
            }
            let known = pretrained.file
            let source = WeightSource(cacheDirectory: args.string("--cache"))
            let path = try source.resolve(known)
            try verifySHA256Prefix(path: path, prefix: known.sha256Prefix)
            print("\(known.fileName): \(path) (sha256 verified)")
        }
        return 0
    }
)
