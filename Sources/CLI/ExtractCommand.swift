import Foundation
import Backbones
import Store
import Extract
import Weights

let extractCommand = Command(
    path: ["extract"],
    summary: "Compute each image's backbone features once and keep them in the store.",
    usage: "extract DIR [\(backboneOption.usage)] [--weights PATH] [--views N] [--follow-symlinks] [--verify] [--store PATH]",
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

    EXAMPLES:
      probe extract data/hymenoptera_data
      probe extract data/hymenoptera_data --backbone mobilenet_v2 --weights mobilenetv2.pt --views 4
      probe extract data/hymenoptera_data/train        # adds or keeps split 'train'
      probe extract data/hymenoptera_data --verify     # re-hash every file, catch swapped contents
    """,
    options: [
        backboneOption.option,
        Option("--weights", "PATH", "Weight file (.pth, .pt or .safetensors); default: torchvision's file from cache/weights/."),
        Option("--views", "N", "Augmented views per training image besides view 0 (default 0)."),
        Option("--seed", "N", "Seed of the augmented views (default 0)."),
        Option("--batch", "N", "Images per backbone call and per commit (default 32)."),
        dtypeOption.option,
        Option("--follow-symlinks", nil, "Follow every symbolic link, also out of DIR (cycles are detected and skipped)."),
        Option("--verify", nil, "Hash every file, also those whose size and modification time match the record; report changed ones."),
        storeOption,
        Option("--quiet", nil, "No progress bar."),
        jsonOption,
        threadsOption,
    ],
    run: { args in
        let dir = try args.positionals(min: 1, max: 1, what: "image folder DIR")[0]
        let kind = try args.value(backboneOption)
        let dtype = try args.value(dtypeOption)
        var options = ExtractOptions(backbone: kind, weightsPath: try weightsPath(args, kind))
        options.views = try args.int("--views", default: 0, range: 0...1000)
        options.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        options.batchSize = try args.int("--batch", default: 32, range: 1...1024)
        options.dtype = dtype
        options.followSymlinks = args.flag("--follow-symlinks")
        options.verify = args.flag("--verify")
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
