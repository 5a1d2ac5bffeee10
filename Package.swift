// swift-tools-version: 6.0
import PackageDescription
import Foundation

// probe: transfer learning on the CPU. No SwiftPM dependencies; system C libraries only.

// The kernels are plain Swift SIMD code, so the compiler is told to use the build machine's vector
// units (on x86-64 with AVX2, an 8-float vector is one register; for baseline SSE2 it is split into
// two and some 8-wide loops come out partly scalar: a MobileNetV2 finetuning step measured 9% slower).
// No fused multiply-add is formed from separate multiplies and adds, so results do not change
// (one epoch of finetuning each backbone wrote byte-identical weights with either build).
// A binary built this way runs on CPUs like the build machine; PROBE_PORTABLE=1 builds one for
// any CPU of the architecture (to copy elsewhere).
let cpuSettings: [SwiftSetting] = ProcessInfo.processInfo.environment["PROBE_PORTABLE"] == nil
    ? [.unsafeFlags(["-target-cpu", "native"])] : []

let package = Package(
    name: "probe",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "probe", targets: ["probe"]),
        .library(name: "ProbeKit", targets: ["Digest", "NN", "Vision", "Weights", "Backbones", "Store", "Extract", "Heads", "Report", "Workflows", "Finetune"]),
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
        // Tensors, kernels (forward and backward), optimizers, schedules.
        .target(name: "NN", dependencies: [
            .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        ]),
        // Decoding, torchvision-exact transforms, ImageFolder, augmentation, PNG writing.
        .target(name: "Vision", dependencies: ["CTurboJPEG", "CPNG"]),
        // PyTorch .pth (zip and legacy) and safetensors readers/writers; weight downloads.
        .target(name: "Weights", dependencies: ["NN", "Digest"]),
        // ResNet-18 and MobileNetV2: definitions, weight binding, feature extraction.
        .target(name: "Backbones", dependencies: ["NN", "Weights"]),
        // SQLite schema and all SQL; content-addressed feature cache; nearest neighbours.
        .target(name: "Store", dependencies: ["CSQLite", "Digest", "NN"], exclude: ["SCHEMA.md"]),
        // Extraction: scan an image folder, compute what the store lacks, commit per batch.
        .target(name: "Extract", dependencies: ["Digest", "Vision", "Weights", "Backbones", "Store"]),
        // Head training over cached features and metrics (pure computation; persistence is in Store).
        .target(name: "Heads", dependencies: ["NN"]),
        // Reports: line charts and HTML pages.
        .target(name: "Report", dependencies: ["Vision"]),
        // What a user does, composed of the modules above: train, predict, evaluate, query, demo.
        .target(name: "Workflows", dependencies: ["NN", "Vision", "Weights", "Store", "Extract", "Heads", "Report", "Digest"]),
        // The streaming full-finetuning path.
        .target(name: "Finetune", dependencies: ["NN", "Vision", "Weights", "Backbones"]),
        // The command-line front end (thin).
        .executableTarget(name: "probe", dependencies: [
            "Digest", "NN", "Vision", "Weights", "Backbones", "Store", "Extract", "Heads", "Report", "Workflows", "Finetune",
        ]),

        .testTarget(name: "DigestTests", dependencies: ["Digest"]),
        .testTarget(name: "NNTests", dependencies: ["NN"]),
        .testTarget(name: "VisionTests", dependencies: ["Vision"]),
        .testTarget(name: "WeightsTests", dependencies: ["Weights"]),
        .testTarget(name: "BackbonesTests", dependencies: ["Backbones", "Weights", "NN"]),
        .testTarget(name: "ExtractTests", dependencies: ["Extract", "Store", "NN"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Digest", "NN"]),
        .testTarget(name: "HeadsTests", dependencies: ["Heads", "NN"]),
        .testTarget(name: "FinetuneTests", dependencies: ["Finetune", "NN", "Vision", "Weights", "Backbones"]),
    ],
    swiftLanguageModes: [.v6]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + cpuSettings
}
