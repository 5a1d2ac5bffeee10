import Foundation
import Testing
import NN
@testable import Backbones

/// ../shared next to the package root (or $PROBE_SHARED).
let sharedDirectory: String = {
    if let env = ProcessInfo.processInfo.environment["PROBE_SHARED"] { return env }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.deletingLastPathComponent().appendingPathComponent("shared").path
}()
let sharedAvailable = FileManager.default.fileExists(atPath: sharedDirectory + "/reference/model_input.npy")

/// Temporary: weights dumped to one .npy per tensor (tools: python torch.load + numpy.save).
let dumpDirectory = ProcessInfo.processInfo.environment["PROBE_WDUMP"] ?? "/tmp/wdump"
let dumpAvailable = FileManager.default.fileExists(atPath: dumpDirectory + "/resnet18")

func loadDump(_ name: String) throws -> [String: Tensor] {
    let dir = dumpDirectory + "/" + name
    var out: [String: Tensor] = [:]
    for f in try FileManager.default.contentsOfDirectory(atPath: dir) where f.hasSuffix(".npy") {
        out[String(f.dropLast(4))] = try NPY.read(path: dir + "/" + f)
    }
    return out
}

/// Relative L2 error and the smallest row cosine between (rows x cols) arrays.
func compare(_ a: [Float], _ b: [Float], cols: Int) -> (relL2: Double, minCos: Double) {
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    var minCos = 1.0
    for r in 0..<(a.count / cols) {
        var dot = 0.0, na = 0.0, nb = 0.0
        for j in 0..<cols {
            let x = Double(a[r * cols + j]), y = Double(b[r * cols + j])
            dot += x * y; na += x * x; nb += y * y
        }
        minCos = min(minCos, dot / max(1e-30, (na * nb).squareRoot()))
    }
    return ((num / max(den, 1e-30)).squareRoot(), minCos)
}

@Suite(.enabled(if: sharedAvailable && dumpAvailable, "needs ../shared/reference and weight dumps"))
struct ParityTests {
    @Test func resnet18MatchesPyTorch() throws {
        let input = try NPY.read(path: sharedDirectory + "/reference/model_input.npy")
        let refF = try NPY.read(path: sharedDirectory + "/reference/resnet18_features.npy")
        let refL = try NPY.read(path: sharedDirectory + "/reference/resnet18_logits.npy")
        let model = try ResNet18(weights: try loadDump("resnet18"))
        let f = model.features(input.data)
        #expect(f.count == 16 * 512)
        let (e, c) = compare(f, refF.data, cols: 512)
        print("resnet18 features: relative L2 \(e), min row cosine \(c)")
        #expect(e <= 1e-5)
        #expect(c >= 0.99999)
        let l = try #require(model.logits(features: f))
        let (e2, c2) = compare(l, refL.data, cols: 1000)
        print("resnet18 logits: relative L2 \(e2), min row cosine \(c2)")
        #expect(e2 <= 1e-5)
        #expect(c2 >= 0.99999)
    }

    @Test func mobilenetV2MatchesPyTorch() throws {
        let input = try NPY.read(path: sharedDirectory + "/reference/model_input.npy")
        let ref = try NPY.read(path: sharedDirectory + "/reference/mobilenet_v2_features.npy")
        let model = try MobileNetV2(weights: try loadDump("mnv2"))
        #expect(model.usesDeepSortKeys)
        let f = model.features(input.data)
        let (e, c) = compare(f, ref.data, cols: 1280)
        print("mobilenet_v2 features: relative L2 \(e), min row cosine \(c)")
        #expect(e <= 1e-5)
        #expect(c >= 0.99999)
    }
}
