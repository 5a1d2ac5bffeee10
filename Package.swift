// swift-tools-version: 6.0
import PackageDescription
import Foundation

// probe: transfer learning on the CPU. No SwiftPM dependencies; system C libraries only.

// The kernels are plain Swift SIMD code. By default the package is built for the architecture's
// baseline (SSE2 on x86-64): the binary runs on any CPU of the architecture, and the manifest has
// no unsafe flags, which SwiftPM requires of a package that others depend on by version.
// PROBE_NATIVE=1 in the environment at build time compiles for the build machine's CPU instead
// (`-target-cpu native`): with AVX2 an 8-float SIMD8 is one register, whereas on baseline SSE2 it
// is split into two and some 8-wide loops come out partly scalar (a MobileNetV2 finetuning step
// measured 9% slower portable). No fused multiply-add is formed from separate multiplies and adds
// either way, so results do not change (one epoch of finetuning each backbone wrote byte-identical
// weights with either build). tools/test.sh and tools/demo.sh set PROBE_NATIVE=1.
//   portable (default, any x86-64/arm64 CPU): swift build -c release
//   native (this machine's CPU only):          PROBE_NATIVE=1 swift build -c release
// SwiftPM re-evaluates the manifest when the environment changes, so switching between the two in
// one .build rebuilds everything; give one of them its own --scratch-path to keep both.
let native = ProcessInfo.processInfo.environment["PROBE_NATIVE"] == "1"
let cpuSettings: [SwiftSetting] = native ? [.unsafeFlags(["-target-cpu", "native"])] : []

let package = Package(
    name: "probe",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "probe", targets: ["probe"]),
        .library(name: "ProbeKit", targets: ["Digest", "OutputFiles", "Reproducible", "Parallelism", "NN", "Vision", "Weights", "Backbones", "Store", "Neighbors",
                                             "Extract", "Heads", "Audit", "Report", "Workflows", "Finetune"]),
    ],
    targets: [
        // System-library shims (module maps only).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(name: "CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),

        // int8 kernels in C (AVX2 vpmaddubsw, AVX-512 VNNI vpdpbusd, portable scalar), chosen at run
        // time by the CPU's features; every version gives the same bytes (include/probe_int8.h).
        .target(name: "CInt8"),

        // SHA-256: content addresses of images, identities of weight files.
        .target(name: "Digest"),
        // The one atomic output-file writer (export, heads export, weight files, checkpoints).
        .target(name: "OutputFiles"),
        // Bit-exact, platform-independent scalar numerics shared by storage and compute: IEEE half
        // precision <-> float32 (the store's f16 vectors, float16 weight tensors; Swift's Float16 is
        // unavailable on macOS x86_64), the SplitMix64 generator (heads, augmentation, seeded weights),
        // printf-exact decimal formatting (the tutorial's logs). A leaf: Store, Vision and Weights use
        // it without depending on NN.
        .target(name: "Reproducible"),
        // The worker count (affinity, cgroup quota, PROBE_THREADS, --threads) and the parallel-for
        // (`parallelSlices` on a spinning worker pool, `UncheckedSendable`). A leaf, so that the store
        // loads vectors in parallel without depending on NN.
        .target(name: "Parallelism"),
        // Tensors, kernels (forward and backward), optimizers, schedules.
        .target(name: "NN", dependencies: [
            "Parallelism",
            .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        ]),
        // Decoding, torchvision-exact transforms, ImageFolder, augmentation, PNG writing.
        .target(name: "Vision", dependencies: ["CTurboJPEG", "CPNG", "Reproducible"]),
        // PyTorch .pth (zip and legacy) and safetensors readers/writers; weight downloads.
        .target(name: "Weights", dependencies: ["NN", "Digest", "OutputFiles", "Reproducible"]),
        // ResNet-18 and MobileNetV2: definitions, weight binding, feature extraction.
        .target(name: "Backbones", dependencies: ["NN", "Weights", "Parallelism", "CInt8"]),
        // SQLite schema and all SQL; content-addressed feature cache; export. Stores only: no NN.
        .target(name: "Store", dependencies: ["CSQLite", "Digest", "OutputFiles", "Reproducible", "Parallelism"], exclude: ["SCHEMA.md"]),
        // Exact cosine nearest neighbours over a backbone's stored vectors (matrix products).
        .target(name: "Neighbors", dependencies: ["NN", "Store", "Parallelism"]),
        // Extraction: scan an image folder, compute what the store lacks, commit per batch.
        .target(name: "Extract", dependencies: ["Digest", "NN", "Vision", "Weights", "Backbones", "Store", "Parallelism"]),
        // Head training over cached features and metrics (pure computation; persistence is in Store).
        .target(name: "Heads", dependencies: ["NN", "Reproducible", "Parallelism"]),
        // Data audit over cached features: duplicates, leakage, outliers, label errors (pure computation).
        .target(name: "Audit", dependencies: ["NN", "Heads", "Reproducible", "Parallelism"]),
        // Reports: line charts and HTML pages.
        .target(name: "Report", dependencies: ["Vision"]),
        // What a user does, composed of the modules above: train, predict, evaluate, query, demo.
        .target(name: "Workflows", dependencies: ["NN", "Vision", "Weights", "Backbones", "Store", "Neighbors", "Extract", "Heads",
                                                  "Audit", "Report", "Digest", "OutputFiles", "Finetune", "Parallelism"]),
        // The streaming full-finetuning path.
        .target(name: "Finetune", dependencies: ["Digest", "NN", "Vision", "Weights", "Backbones", "OutputFiles", "Reproducible",
                                                 "Parallelism"]),
        // Benchmarks of the modules above (`probe bench ...`): they print figures, assert nothing.
        .target(name: "Benchmarks", dependencies: ["Digest", "NN", "Vision", "Weights", "Backbones", "Store", "Neighbors",
                                                   "Heads", "Audit", "Finetune", "Reproducible", "Parallelism", "Workflows"]),
        // The command-line front end: commands, argument parsing, dispatch (thin).
        .target(name: "CLI", dependencies: [
            "NN", "Vision", "Weights", "Backbones", "Store", "Extract", "Heads", "Audit", "Report", "Workflows", "Finetune", "Benchmarks",
            "Parallelism",
        ]),
        // The `probe` executable: main calls CLI.
        .executableTarget(name: "probe", dependencies: ["CLI"]),

        // What the test targets share (../shared, temporary directories); tests only, not in ProbeKit.
        .target(name: "TestSupport", path: "Tests/TestSupport"),

        .testTarget(name: "DigestTests", dependencies: ["Digest"]),
        .testTarget(name: "OutputFilesTests", dependencies: ["OutputFiles"]),
        .testTarget(name: "ReproducibleTests", dependencies: ["Reproducible"]),
        .testTarget(name: "ParallelismTests", dependencies: ["Parallelism"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TestSupport"]),
        .testTarget(name: "VisionTests", dependencies: ["Vision", "Reproducible", "TestSupport"]),
        .testTarget(name: "WeightsTests", dependencies: ["Weights", "NN", "OutputFiles", "Reproducible", "TestSupport"]),
        .testTarget(name: "Int8Tests", dependencies: ["CInt8"]),
        .testTarget(name: "BackbonesTests", dependencies: ["Backbones", "Weights", "NN", "TestSupport", "CInt8"]),
        .testTarget(name: "ExtractTests", dependencies: ["Extract", "Store", "NN", "Workflows", "Backbones", "Digest", "Parallelism",
                                                     "TestSupport"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "CSQLite", "Digest", "OutputFiles", "Reproducible", "TestSupport"]),
        .testTarget(name: "NeighborsTests", dependencies: ["Neighbors", "Store", "Digest", "NN", "Parallelism", "Reproducible",
                                                       "TestSupport"]),
        .testTarget(name: "HeadsTests", dependencies: ["Heads", "Reproducible"]),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "Heads", "Reproducible", "Workflows", "Store", "Digest", "Vision", "TestSupport"]),
        .testTarget(name: "FinetuneTests", dependencies: ["Finetune", "NN", "Vision", "Weights", "Backbones", "TestSupport"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "Backbones", "NN", "Vision"]),
        .testTarget(name: "CLITests", dependencies: ["CLI", "Store", "NN", "Digest", "Backbones", "Parallelism", "Finetune", "Vision",
                                                 "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system && target.name != "CInt8" {
    target.swiftSettings = (target.swiftSettings ?? []) + cpuSettings
}
