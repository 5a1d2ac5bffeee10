import Vision

let previewCommand = Command(
    path: ["preview"],
    summary: "Write a PNG grid of (augmented) samples of an image folder, with class names.",
    usage: "preview DIR --out grid.png [--augment] [--seed N] [--count 16]",
    discussion: """
    Like the tutorial's imshow of a batch: a look at what the network will see. Without --augment,
    validation images through Resize(256) + CenterCrop(224); with it, training images through
    RandomResizedCrop(224) + RandomHorizontalFlip, reproducible for a given --seed.

    EXAMPLE:
      probe preview data/hymenoptera_data --augment --seed 7 --out grid.png
    """,
    options: [
        Option("--out", "PATH", "Where to write the PNG (default: preview.png)."),
        Option("--augment", nil, "Show training augmentation instead of the validation transform."),
        Option("--seed", "N", "Seed of the sample choice and the augmentation (default 0)."),
        Option("--count", "N", "Number of samples (default 16)."),
        Option("--columns", "N", "Columns of the grid (default: about the square root of the count)."),
    ],
    run: { args in
        let dir = try args.positionals(min: 1, max: 1, what: "image folder DIR")[0]
        let options = PreviewOptions(
            count: try args.int("--count", default: 16, range: 1...1024),
            augment: args.flag("--augment"),
            seed: UInt64(try args.int("--seed", default: 0, range: 0...Int.max)),
            columns: try args.int("--columns", default: 0, range: 0...64))
        print(try writePreviewGrid(root: dir, to: args.string("--out") ?? "preview.png", options: options))
        return 0
    }
)
