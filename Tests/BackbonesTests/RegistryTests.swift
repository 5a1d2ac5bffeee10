import Foundation
import Testing
import NN
import Weights
@testable import Backbones

@Suite struct RegistryTests {
    @Test func namesAndAliasesResolve() throws {
        #expect(Architecture.find("ResNet-50") == .resnet50)
        #expect(Architecture.find("mobilenetv2") == .mobilenetV2)
        #expect(Architecture.find("resnet_34") == .resnet34)
        #expect(Architecture.find("vgg16") == nil)
        let error = #expect(throws: BackboneError.self) { try Architecture.named("vgg16") }
        #expect("\(error!)" == "unknown backbone 'vgg16' (known: resnet18, resnet34, resnet50, mobilenet_v2)")
        // (de)coded by name, as checkpoints and options store it
        let json = try JSONEncoder().encode([Architecture.resnet50])
        #expect(String(decoding: json, as: UTF8.self) == "[\"resnet50\"]")
        #expect(try JSONDecoder().decode([Architecture].self, from: json) == [.resnet50])
    }

    @Test func weightFilesAndPreprocessing() {
        #expect(Architecture.resnet50.weights.map(\.file.fileName) == ["resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"])
        #expect(Architecture.resnet50.preprocessing(weightsSHA256: "11ad3fa6" + String(repeating: "0", count: 56)).resize == 232)
        #expect(Architecture.resnet50.preprocessing(weightsSHA256: "0676ba61" + String(repeating: "0", count: 56)).resize == 256)
        #expect(Architecture.resnet50.preprocessing(weightsSHA256: "deadbeef").resize == 256)  // other weights: the default's
        #expect(Architecture.resnet34.weights[0].file.sha256Prefix == "b627a593")
        for a in Architecture.all {
            for w in a.weights {
                // Vision's transforms normalize with ImageNet's mean and std: an entry with others
                // would need them passed through
                #expect(w.preprocessing.mean == Preprocessing.imagenet.mean && w.preprocessing.std == Preprocessing.imagenet.std, "\(a.name)")
                #expect(w.preprocessing.crop == 224, "\(a.name)")
                #expect(w.file.url.hasPrefix("https://download.pytorch.org/models/"))
            }
        }
    }

    /// Every architecture's description builds, ends at the registry's feature dimension, and binds
    /// torchvision's tensor names (counts from torchvision's state_dicts, classifier excluded).
    @Test(arguments: [(Architecture.resnet18, 100), (.resnet34, 180), (.resnet50, 265), (.mobilenetV2, 260)])
    func descriptionsBindTorchvisionNames(arch: Architecture, tensors: Int) throws {
        let net = try FoldedNetwork(arch, weights: SeededWeights(), options: ForwardOptions(workers: 1))
        #expect(net.featureDimension == arch.featureDimension)
        let convolutions = net.ops.filter { if case .conv = $0 { return true }; return false }.count
        #expect(convolutions * 5 == tensors)  // a convolution's weight and its BatchNorm's 4 tensors
        let f = net.features([Float](repeating: 0.5, count: 3 * 64 * 64), height: 64, width: 64)
        #expect(f.count == arch.featureDimension && f.allSatisfy(\.isFinite))
    }
}
