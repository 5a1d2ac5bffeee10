#!/usr/bin/env bash
# Checks that probe works as a versioned SwiftPM dependency of another package: SwiftPM refuses
# unsafe flags (e.g. -target-cpu native) in a package depended on by version, which a branch or
# path dependency would hide. So, in a fresh temporary directory:
#   1. a git repository holding this checkout's files, tagged 0.1.0 (the only tag there);
#   2. a throwaway package with .package(url: "file://<that repository>", from: "0.1.0") that
#      imports Store and Heads through the ProbeKit product;
#   3. a debug build, and a run of its main.swift: it writes synthetic feature vectors to a feature
#      store, reads them back, trains a linear head (L-BFGS), checks its validation accuracy, and
#      saves and reloads the head through the store.
# No network: the dependency is a local file:// repository and probe has no SwiftPM dependencies.
# PROBE_NATIVE is unset: the point is the manifest as a dependent package sees it by default.
#
# What is tagged: the files `git ls-files --cached --others --exclude-standard` lists from the
# working tree, i.e. tracked files as they are now plus untracked files that are not ignored
# (.build, stores, caches are ignored). On a clean CI clone that is exactly HEAD; on a developer's
# machine it includes uncommitted work, so the check can run before committing.
# --committed: clone HEAD instead (git clone), ignoring uncommitted work.
# Without git (e.g. an unpacked tarball) the tree is copied without .build*.
set -euo pipefail
unset PROBE_NATIVE
root="$(cd "$(dirname "$0")/.." && pwd)"
mode=worktree
case "${1:-}" in
  --committed) mode=committed ;;
  "") ;;
  *) echo "usage: tools/check_dependency.sh [--committed]" >&2; exit 2 ;;
esac

tmp="$(mktemp -d "${TMPDIR:-/tmp}/probe-depcheck.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "dependency check: FAILED ($*)"; exit 1; }

# Git identity and signing settings of the caller are irrelevant to the throwaway repository.
g() { git -c user.name=probe-check -c user.email=probe-check@localhost -c commit.gpgsign=false \
          -c tag.gpgsign=false -c init.defaultBranch=main "$@"; }

dep="$tmp/probe"
if [ "$mode" = committed ]; then
  git clone --quiet --no-local --no-tags "$root" "$dep" || fail "git clone of $root"
  # Drop the clone's own tags (none fetched) and make 0.1.0 point at HEAD.
  g -C "$dep" tag 0.1.0 || fail "tagging the clone"
else
  mkdir -p "$dep"
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # -z: paths with any characters; deleted-but-tracked files are skipped by the existence test.
    (cd "$root" && git ls-files -z --cached --others --exclude-standard) |
      while IFS= read -r -d '' f; do
        if [ -e "$root/$f" ] || [ -L "$root/$f" ]; then
          mkdir -p "$dep/$(dirname "$f")"
          cp -P "$root/$f" "$dep/$f"
        fi
      done
  else
    (cd "$root" && tar --exclude='./.build' --exclude='./.build-*' --exclude='./.build_*' -cf - .) | (cd "$dep" && tar -xf -)
  fi
  [ -f "$dep/Package.swift" ] || fail "no Package.swift copied from $root"
  g -C "$dep" init --quiet
  g -C "$dep" add -A
  g -C "$dep" commit --quiet -m "probe snapshot for the dependency check" || fail "committing the snapshot"
  g -C "$dep" tag 0.1.0
fi

app="$tmp/app"
mkdir -p "$app/Sources/DependencyCheck"
cat > "$app/Package.swift" <<EOF
// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "DependencyCheck",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(url: "file://$dep", from: "0.1.0"),
    ],
    targets: [
        .executableTarget(name: "DependencyCheck", dependencies: [
            .product(name: "ProbeKit", package: "probe"),
        ]),
    ]
)
EOF

cat > "$app/Sources/DependencyCheck/main.swift" <<'EOF'
import Foundation
import Heads
import Store

// Two well-separated Gaussian-ish classes in 8 dimensions (deterministic), 24 train and 8 val
// images each; stored as features, read back, used to train and evaluate a head.
let dimension = 8
let classNames = ["ants", "bees"]
let storePath = CommandLine.arguments[1]

func check(_ ok: Bool, _ message: String) {
    if !ok { print("dependency check program: \(message)"); exit(1) }
}

struct XorShift {   // xorshift64*: uniform() in [-0.5, 0.5)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func uniform() -> Float {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return Float((state &* 0x2545_F491_4F6C_DD1D) >> 40) / Float(1 << 24) - 0.5
    }
}
func hex64(_ n: Int) -> String { String(repeating: "0", count: 48) + String(format: "%016x", n) }

do {
    let store = try FeatureStore(path: storePath)
    let backbone = try store.backbone(architecture: "synthetic", weightsSHA256: hex64(0xBB), dimension: dimension)
    var batch = Batch()
    var rng = XorShift()
    for i in 0..<64 {
        let label = i % 2
        let sha = hex64(i + 1)
        var v = (0..<dimension).map { _ in rng.uniform() }
        v[0] += label == 0 ? 2 : -2
        v[3] += label == 0 ? -1 : 1
        batch.images.append(ImageRecord(sha256: sha, byteSize: 100 + i))
        batch.samples.append(SampleRecord(path: "\(classNames[label])/\(i).jpg", sha256: sha, label: classNames[label],
                                          split: i < 48 ? "train" : "val"))
        batch.features.append(FeatureRecord(sha256: sha, transform: "val", view: 0, vector: v))
    }
    let inserted = try store.insertBatch(batch, backbone: backbone)
    check(inserted.features == 64, "inserted \(inserted.features) features, expected 64")

    func split(_ name: String) throws -> LabeledFeatures {
        let f = try store.labeledFeatures(backbone: backbone, split: name)
        let labels = f.labels.map { classNames.firstIndex(of: $0)! }
        return try LabeledFeatures(values: f.vectors, count: f.count, dimension: f.dimension, labels: labels,
                                   classes: classNames.count)
    }
    let train = try split("train"), val = try split("val")
    check(train.count == 48 && val.count == 16, "read back \(train.count) train and \(val.count) val samples")

    let result = try LBFGSTrainer().train(train, validation: val)
    let accuracy = result.validationMetrics?.accuracy ?? -1
    check(accuracy == 1, "validation accuracy \(accuracy), expected 1")

    let head = result.head
    let top = try head.predict([3, 0, 0, -1, 0, 0, 0, 0])[0]
    check(top.label == 0 && top.probability > 0.9, "an obvious class-0 vector predicted \(top)")

    try store.saveHead(HeadRecord(name: "check", backboneID: backbone.id, classes: classNames,
                                  settingsJSON: #"{"solver":"lbfgs"}"#, metricsJSON: "[]",
                                  weights: head.weight + head.bias))
    guard let loaded = try store.loadHead(name: "check") else { check(false, "saved head not found"); exit(1) }
    check(loaded.weights == head.weight + head.bias, "the reloaded head's weights differ")

    print("dependency check program: \(train.count) train / \(val.count) val vectors through the store, "
          + "L-BFGS head in \(result.iterations) iterations, validation accuracy \(accuracy), "
          + "P(\(classNames[top.label])) = \(top.probability), head saved and reloaded")
} catch {
    print("dependency check program: \(error)")
    exit(1)
}
EOF

cd "$app"
# The shared SwiftPM caches (repositories, manifests) go in the temporary directory too, and so do
# the lock files SwiftPM leaves in $TMPDIR.
mkdir -p "$tmp/tmp"
build=(env TMPDIR="$tmp/tmp" swift build --cache-path "$tmp/swiftpm-cache" --disable-dependency-cache)
echo "dependency check: building a package that depends on probe from: 0.1.0 (debug)"
if ! "${build[@]}" > "$tmp/build.log" 2>&1; then
  tail -n 30 "$tmp/build.log"
  fail "the dependent package did not build; see the log above"
fi
bin="$("${build[@]}" --show-bin-path)/DependencyCheck"
"$bin" "$tmp/store/features.sqlite" || fail "the program using Store and Heads failed"
echo "dependency check: passed"
