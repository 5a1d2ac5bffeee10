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
