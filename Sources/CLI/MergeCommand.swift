import Foundation
import Store

let storeMergeCommand = Command(
    path: ["store", "merge"],
    summary: "Merge the stores of sharded extractions (or any probe stores of one backbone) into one.",
    usage: "store merge OUT SHARD... [--quiet] [--json]",
    discussion: """
    Each SHARD is the store of one `probe extract DIR --shard i/n` run (or of a Slurm array task,
    or of a Kubernetes Indexed Job's pod). Its rows are copied into OUT in one transaction per
    shard: images by content (SHA-256), samples and failures by path, vectors by image, backbone,
    transform and view, byte for byte. Merging the n shards of a folder gives the store a single
    `probe extract` of it makes: the same rows, bit-identical vectors, the same canonical digest.
    Merging a shard twice changes nothing (a vector already in OUT must have the same bytes).

    OUT is created when absent; an existing OUT must be a probe store, and merging into it adds.
    Shards are only read, never written; OUT may not be one of them. Refused before anything is
    written: shards (or an OUT with backbones) of different backbones (architecture or weights) or
    different feature precisions (--dtype). Heads stored in a shard are not merged (train them on
    the merged store), nor is a shard's marker (`meta` key `shard`). A merge missing some shards
    of a split says which.

    Keep every store on local disk while it is written: SQLite's WAL mode does not work over
    network file systems (NFS, Lustre, CephFS, ...). Copy finished shard stores (a store whose
    probe process ended has no -wal file left) to one machine, then merge there.

    EXAMPLES:
      probe extract photos --shard 0/2 --store /tmp/s0.sqlite     # machine A
      probe extract photos --shard 1/2 --store /tmp/s1.sqlite     # machine B
      probe store merge cache/features.sqlite s0.sqlite s1.sqlite
      probe store info
    """,
    options: [Option("--quiet", nil, "No progress bar."), jsonOption],
    run: { args in
        let words = try args.positionals(min: 2, max: Int.max, what: "OUT and one or more SHARD stores")
        let bar = ProgressBar("merge", total: words.count - 1, quiet: args.flag("--quiet") || args.flag("--json"))
        let summary = try FeatureStore.merge(into: words[0], shards: Array(words.dropFirst())) { done, total in
            bar.update(done, total: total, unit: "shard")
        }
        bar.finish()
        if args.flag("--json") { try printJSON(summary) } else { print(summary.render(), terminator: "") }
        return 0
    }
)

let storeCompareCommand = Command(
    path: ["store", "compare"],
    summary: "Compare two stores: rows per table, every vector's bytes, canonical digest.",
    usage: "store compare A B [--json]",
    discussion: """
    Checks a merged store against a single-machine run (or any two stores): the number of rows of
    every table, every vector byte for byte (matched by image SHA-256, backbone, transform and
    view), and the canonical digest (every table with ids replaced by content keys: see
    Sources/Store/SCHEMA.md). Exit status 0 when all three agree, 1 otherwise.

    EXAMPLE:
      probe store compare merged.sqlite single.sqlite
    """,
    options: [jsonOption],
    run: { args in
        let words = try args.positionals(min: 2, max: 2, what: "two stores A and B")
        let c = try FeatureStore.compare(words[0], words[1])
        if args.flag("--json") { try printJSON(c) } else { print(c.render(), terminator: "") }
        return c.equal ? 0 : 1
    }
)
