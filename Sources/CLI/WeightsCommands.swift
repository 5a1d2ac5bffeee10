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
    usage: "weights fetch resnet18|mobilenet_v2 [--cache DIR]",
    discussion: """
    Fetches resnet18-f37072fd.pth or mobilenet_v2-b0353104.pth from PyTorch's model URLs and
    checks the file's SHA-256 against the prefix in its name. Without network, it says which
    file to put where (a copy from another machine works as well).
    """,
    options: [Option("--cache", "DIR", "The weights cache (default cache/weights).")],
    run: { args in
        let names = try args.positionals(min: 1, max: 2, what: "backbone name (resnet18 or mobilenet_v2)")
        for name in names {
            guard let known = KnownWeights(rawValue: name.lowercased()) else {
                throw UsageError("probe weights fetch: unknown backbone '\(name)' (choose resnet18 or mobilenet_v2)")
            }
            let source = WeightSource(cacheDirectory: args.string("--cache"))
            let path = try source.resolve(known)
            try verifySHA256Prefix(path: path, prefix: known.sha256Prefix)
            print("\(known.fileName): \(path) (sha256 verified)")
        }
        return 0
    }
)
