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
        .library(name: "ProbeKit", targets: ["Digest", "OutputFiles", "NN", "Vision", "Weights", "Backbones", "Store", "Neighbors",
                                             "Extract", "Heads", "Report", "Workflows", "Finetune"]),
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

        // SHA-256: content addresses of images, identities of weight files.
        .target(name: "Digest"),
        // The one atomic output-file writer (export, heads export, weight files, checkpoints).
        .target(name: "OutputFiles"),
        // Tensors, kernels (forward and backward), optimizers, schedules.
        .target(name: "NN", dependencies: [
            .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        ]),
        // Decoding, torchvision-exact transforms, ImageFolder, augmentation, PNG writing.
        .target(name: "Vision", dependencies: ["CTurboJPEG", "CPNG"]),
        // PyTorch .pth (zip and legacy) and safetensors readers/writers; weight downloads.
        .target(name: "Weights", dependencies: ["NN", "Digest", "OutputFiles"]),
        // ResNet-18 and MobileNetV2: definitions, weight binding, feature extraction.
        .target(name: "Backbones", dependencies: ["NN", "Weights"]),
        // SQLite schema and all SQL; content-addressed feature cache; export. Stores only: no NN.
        .target(name: "Store", dependencies: ["CSQLite", "Digest", "OutputFiles"], exclude: ["SCHEMA.md"]),
        // Exact cosine nearest neighbours over a backbone's stored vectors (matrix products).
        .target(name: "Neighbors", dependencies: ["NN", "Store"]),
        // Extraction: scan an image folder, compute what the store lacks, commit per batch.
        .target(name: "Extract", dependencies: ["Digest", "NN", "Vision", "Weights", "Backbones", "Store"]),
        // Head training over cached features and metrics (pure computation; persistence is in Store).
        .target(name: "Heads", dependencies: ["NN"]),
        // Reports: line charts and HTML pages.
        .target(name: "Report", dependencies: ["Vision"]),
        // What a user does, composed of the modules above: train, predict, evaluate, query, demo.
        .target(name: "Workflows", dependencies: ["NN", "Vision", "Weights", "Backbones", "Store", "Neighbors", "Extract", "Heads",
                                                  "Report", "Digest", "OutputFiles"]),
        // The streaming full-finetuning path.
        .target(name: "Finetune", dependencies: ["Digest", "NN", "Vision", "Weights", "Backbones", "OutputFiles"]),
        // Benchmarks of the modules above (`probe bench ...`): they print figures, assert nothing.
        .target(name: "Benchmarks", dependencies: ["Digest", "NN", "Vision", "Weights", "Backbones", "Store", "Neighbors",
                                                   "Heads", "Finetune"]),
        // The command-line front end: commands, argument parsing, dispatch (thin).
        .target(name: "CLI", dependencies: [
            "NN", "Vision", "Weights", "Backbones", "Store", "Extract", "Heads", "Report", "Workflows", "Finetune", "Benchmarks",
        ]),
        // The `probe` executable: main calls CLI.
        .executableTarget(name: "probe", dependencies: ["CLI"]),

        .testTarget(name: "DigestTests", dependencies: ["Digest"]),
        .testTarget(name: "OutputFilesTests", dependencies: ["OutputFiles"]),
        .testTarget(name: "NNTests", dependencies: ["NN"]),
        .testTarget(name: "VisionTests", dependencies: ["Vision"]),
        .testTarget(name: "WeightsTests", dependencies: ["Weights", "NN", "OutputFiles"]),
        .testTarget(name: "BackbonesTests", dependencies: ["Backbones", "Weights", "NN", "Benchmarks"]),
        .testTarget(name: "ExtractTests", dependencies: ["Extract", "Store", "NN", "Workflows", "Backbones", "Digest"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "CSQLite", "Digest", "OutputFiles", "Benchmarks"]),
        .testTarget(name: "NeighborsTests", dependencies: ["Neighbors", "Store", "Digest", "NN", "Benchmarks"]),
        .testTarget(name: "HeadsTests", dependencies: ["Heads"]),
        .testTarget(name: "FinetuneTests", dependencies: ["Finetune", "NN", "Vision", "Weights", "Backbones"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "Backbones", "NN", "Vision"]),
        .testTarget(name: "CLITests", dependencies: ["CLI", "Store", "NN", "Digest", "Backbones"]),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + cpuSettings
}
