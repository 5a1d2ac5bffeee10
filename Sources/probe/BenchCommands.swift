import Vision
import Store

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
