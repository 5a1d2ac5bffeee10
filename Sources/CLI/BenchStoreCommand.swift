import Foundation
import Store
import Benchmarks

let benchStoreCommand = Command(
    path: ["bench", "store"],
    summary: "Write a synthetic store (or one shard of it) for the scale benchmarks of tools/bench_scale.sh.",
    usage: "bench store OUT [--count 1000000] [--first 0] [--dim 512] [\(dtypeOption.usage)] [--shard-mark i/n]",
    discussion: """
    Writes synthetic images --first ..< --first + --count into a new store OUT: image i has the
    content hash of "synthetic image i", label class(i mod 10), split val for one image in five of every class,
    path /synthetic/SPLIT/LABEL/i.jpg and one --dim vector that depends on i only, so stores of
    disjoint ranges merge into the store of their union (four of 250,000 give the 1,000,000 one).
    --shard-mark i/n marks the store as shard i of n (as `probe extract --shard` does). Then
    tools/bench_scale.sh times store info, export, train, eval, query and store merge over them.

    EXAMPLES:
      probe bench store /tmp/big.sqlite --count 1000000
      probe bench store /tmp/s1.sqlite --count 250000 --first 250000 --shard-mark 1/4
    """,
    options: [
        Option("--count", "N", "Images (default 1000000)."),
        Option("--first", "K", "Index of the first image (default 0)."),
        Option("--dim", "D", "Vector dimension (default 512)."),
        dtypeOption.option,
        Option("--shard-mark", "i/n", "Mark the store as shard i of n."),
        Option("--quiet", nil, "No progress bar."),
    ],
    run: { args in
        let out = try args.positionals(min: 1, max: 1, what: "the store OUT to write")[0]
        let count = try args.int("--count", default: 1_000_000, range: 1...100_000_000)
        let first = try args.int("--first", default: 0, range: 0...1_000_000_000)
        let dimension = try args.int("--dim", default: 512, range: 1...65536)
        let dtype = try args.value(dtypeOption)
        guard !FileManager.default.fileExists(atPath: out) else { throw UsageError("probe bench store: \(out) exists; give a new path") }
        let bar = ProgressBar("bench store", total: count, quiet: args.flag("--quiet"))
        let t0 = Date()
        try buildSyntheticImages(path: out, range: first..<(first + count), dimension: dimension,
                                 dtype: dtype, shard: args.string("--shard-mark")) { bar.update($0, total: count) }
        bar.finish()
        let bytes = FeatureStore.bytesOnDisk(path: out)
        print(String(format: "wrote %d synthetic images to %@ in %.1f s: %.1f MB, %.0f bytes per image", count, out,
                     Date().timeIntervalSince(t0), Double(bytes) / 1e6, Double(bytes) / Double(count)))
        return 0
    }
)
