import Foundation
import Backbones
import Store
import Extract
import Weights

let extractCommand = Command(
    path: ["extract"],
    summary: "Compute each image's backbone features once and keep them in the store.",
    usage: "extract DIR [\(backboneOption.usage)] [--weights PATH] [--views N] [--precision int8 [--calibration-images N] [--int8-direct]] [--follow-symlinks] [--verify] [--shard i/n | --shards N] [--store PATH]",
    discussion: """
    DIR is an ImageFolder tree: class sub-folders of images, or train/ and val/ each holding
    class sub-folders. Every image is identified by the SHA-256 of its bytes: what the store has
    already is skipped (renamed, moved or duplicate files compute nothing), the rest is computed
    in batches and committed batch by batch, so an interrupted run resumes where it stopped.
    Files that cannot be decoded are reported and recorded; the run goes on (exit status 2).

    CHANGED FILES. A file whose path, size and modification time match what the store recorded is
    taken as unchanged and not read again (that is what makes a second run take milliseconds). A
    file replaced by another of the same size with its modification time put back is therefore
    not noticed. --verify reads and hashes every file: a file whose content differs from its
    record is treated as changed (features of the new content computed if missing, the path
    recorded under the new content), and the run reports how many it found. It costs one read of
    every file.

    View 0 is the validation transform (Resize 256, CenterCrop 224, Normalize). --views N adds N
    augmented views (RandomResizedCrop 224 + horizontal flip, reproducible for --seed) of every
    training image, so that head training sees augmentation without running the backbone again.

    INT8. --precision int8 computes the features with the backbone quantized to int8 (post-training
    static quantization): weights int8 per output channel (each channel's scale keeps every two
    same-sign weights of neighbouring input channels within 128, which AVX2's 8-bit products need
    to be exact), BatchNorm folded, ReLU and residual additions fused, activations 8-bit per channel with ranges calibrated on --calibration-images
    (default 32) training images: the distinct contents with the smallest SHA-256, so every shard
    and every run picks the same. Each channel's range minimizes the expected squared quantization
    error over a 512-bin histogram of its values on those images, and each layer's bias absorbs the
    expected error of its int8 weights (bias correction). The calibration is stored with the
    features; later int8 runs into the same store reuse it. int8 features are a backbone of their
    own in the store, never mixed with float32 ones of the same weights (choose with --backbone
    ARCH:int8 or HASH; `probe store info` lists both). The kernels use AVX-512 VNNI or AVX2 when
    the CPU has them and give the same bytes on every CPU and thread count. ResNet's 3x3 stride-1
    convolutions run as Winograd F(2x2, 3x3): 16 products per 2x2 output pixels and channel pair
    instead of 36, the transformed input requantized to bytes per Winograd position with a
    multiplier calibrated on the same images (about 1.3x faster on ResNet-18; on seeded ResNet-18
    weights the features' error against float32 is no larger than with direct convolutions).
    --int8-direct calibrates for direct convolutions only.

    FOLDERS. A class is the first folder level below DIR (or below train/ and val/); a file's label
    is the class folder it was found under. Folders beside train/ and val/ (test/, ...) are not
    read and are reported. Symbolic links: by default the walk stays inside DIR: links to folders
    are not followed, links to files are followed only when the file is inside DIR, and what was
    skipped is reported. --follow-symlinks follows every link; a folder reached again (same device
    and inode as DIR, a class folder or a folder above on the walk) is reported and not entered.

    SPLITS. train/ and val/ give the splits 'train' and 'val'. DIR that is itself a folder beside
    train/ and val/ (DIR/../train and DIR/../val exist) is that split: `extract D/train` records
    'train', `extract D/test` records 'test'. A tree without split folders never erases a split:
    images already recorded in a split keep it, and the run says how many.

    MANY MACHINES. --shard i/n computes only shard i of n: an image belongs to shard h mod n, h
    being the leading 64 bits (first 16 hex digits) of the SHA-256 of its bytes, so every worker
    agrees whatever order its file system lists files in. Files of other shards are read and hashed
    but never decoded. Without --shard, i and n come from the scheduler: SLURM_ARRAY_TASK_ID and
    SLURM_ARRAY_TASK_COUNT (a Slurm job array, --array=0-3), or JOB_COMPLETION_INDEX (a Kubernetes
    Indexed Job) with n from --shards N; the output says which. Each shard needs its own --store
    (it refuses a store of another shard or of a whole extraction) ON LOCAL DISK: SQLite's WAL mode
    does not work over network file systems (NFS, Lustre, CephFS, ...). Copy the finished shard
    stores to one place and `probe store merge OUT SHARD...` them. A killed shard resumes when run
    again with the same --shard and --store. See tools/slurm/ and tools/k8s/.

    EXAMPLES:
      probe extract data/hymenoptera_data
      probe extract data/hymenoptera_data --backbone mobilenet_v2 --weights mobilenetv2.pt --views 4
      probe extract data/hymenoptera_data/train        # adds or keeps split 'train'
      probe extract data/hymenoptera_data --verify     # re-hash every file, catch swapped contents
      probe extract data/hymenoptera_data --precision int8    # 2-4x faster, features within ~1% (cosine)
      probe extract /data/photos --shard 2/4 --store /tmp/shard-2.sqlite   # one of 4 workers
    """,
    options: [
        backboneOption.option,
        Option("--weights", "PATH", "Weight file (.pth, .pt or .safetensors); default: torchvision's file from cache/weights/."),
        Option("--views", "N", "Augmented views per training image besides view 0 (default 0)."),
        Option("--seed", "N", "Seed of the augmented views (default 0)."),
        Option("--batch", "N", "Images per backbone call and per commit (default 32)."),
        dtypeOption.option,
        precisionOption.option,
        Option("--calibration-images", "N", "int8: training images that calibrate the activation ranges (default 32; used when the store has no int8 calibration of these weights yet)."),
        Option("--int8-direct", nil, "int8, when calibrating: direct 3x3 convolutions, no Winograd (a store's calibration keeps its own)."),
        Option("--follow-symlinks", nil, "Follow every symbolic link, also out of DIR (cycles are detected and skipped)."),
        Option("--verify", nil, "Hash every file, also those whose size and modification time match the record; report changed ones."),
        Option("--shard", "i/n", "Compute only shard i of n (0 <= i < n); default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX, else the whole folder. Use a --store of its own on local disk."),
        Option("--shards", "N", "The number of shards n, with JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs: the Job's completions)."),
        storeOption,
        Option("--quiet", nil, "No progress bar."),
        jsonOption,
        threadsOption,
    ],
    run: { args in
        let dir = try args.positionals(min: 1, max: 1, what: "image folder DIR")[0]
        let kind = try args.value(backboneOption)
        let dtype = try args.value(dtypeOption)
        let shard: ShardSpec?
        do {
            shard = try ShardSpec.resolve(explicit: args.string("--shard"),
                                          shards: args.string("--shards") == nil ? nil : try args.int("--shards", default: 1, range: 1...1_000_000),
                                          environment: ProcessInfo.processInfo.environment)
        } catch let e as ShardError {
            throw UsageError("probe extract: \(e)")
        }
        let precision = try args.value(precisionOption)
        var options = ExtractOptions(backbone: kind, weightsPath: try weightsPath(args, kind))
        options.views = try args.int("--views", default: 0, range: 0...1000)
        options.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        options.batchSize = try args.int("--batch", default: 32, range: 1...1024)
        options.dtype = dtype
        options.followSymlinks = args.flag("--follow-symlinks")
        options.verify = args.flag("--verify")
        options.shard = shard
        options.precision = precision
        options.calibrationImages = try args.int("--calibration-images", default: 32, range: 1...100_000)
        options.int8Winograd = !args.flag("--int8-direct")
        let store = try FeatureStore(path: storePath(args))
        let bar = ProgressBar("extract", total: 0, quiet: args.flag("--quiet") || args.flag("--json"))
        let summary = try extract(root: dir, into: store, options: options) { done, total in
            bar.update(done, total: total)
        }
        bar.finish()
        if args.flag("--json") { try printJSON(summary) } else { print(summary.render()) }
        return summary.failed > 0 ? 2 : 0
    }
)

let dtypeOption = ChoiceOption("--dtype", "T", default: VectorDType.f32, note: "f16 takes half the room (~1e-3 relative error).")

let precisionOption = ChoiceOption("--precision", "P", default: Precision.float32,
                                   note: "int8: the backbone quantized to int8, calibrated on the data set's images (see INT8).")

/// A choice among the registered architectures (`Architecture.all`; their aliases are accepted too).
func architectureOption(_ name: String = "--backbone", help: String) -> ChoiceOption<Architecture> {
    ChoiceOption(name, "NAME", help: help, names: Architecture.all.map(\.name), default: .resnet18,
                 parse: { Architecture.find($0) })
}

/// --backbone of extract and finetune: an architecture of the registry, default resnet18.
let backboneOption = architectureOption(help: "One of " + Architecture.all.map { "\($0.name) (\($0.featureDimension)-d)" }.joined(separator: ", ")
    + "; default resnet18. Without --weights, torchvision's ImageNet file from cache/weights/ (downloaded when missing).")

/// The weight file for `kind`: --weights, else torchvision's file from cache/weights/ (downloaded
/// and verified when missing).
func weightsPath(_ args: Arguments, _ kind: Architecture) throws -> String {
    try WeightSource(explicitPath: args.string("--weights")).resolve(kind.weights[0].file)
}
