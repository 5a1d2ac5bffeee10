import Foundation
import NN
import Weights

// The registry: every backbone probe knows, declared once. Extraction, finetuning, the weight
// downloader, the benchmarks and the command line all look architectures up here; adding a
// backbone is one description (a `NetworkBody`) plus one entry in `Architecture.all`.

/// How images are prepared for a set of weights (timm's "data config"): resize the shorter side to
/// `resize`, center-crop `crop` x `crop`, scale to [0, 1], normalize by `mean` and `std` per channel.
public struct Preprocessing: Sendable, Equatable, Codable {
    public var resize: Int
    public var crop: Int
    public var mean: [Float]
    public var std: [Float]
    /// PIL's resampling filter name ("bilinear": torchvision's default, with antialiasing).
    public var interpolation: String

    /// torchvision's ImageNet evaluation transform (IMAGENET1K_V1 weights): 256, 224, bilinear.
    public static let imagenet = Preprocessing(resize: 256, crop: 224, mean: [0.485, 0.456, 0.406],
                                               std: [0.229, 0.224, 0.225], interpolation: "bilinear")
    /// torchvision's IMAGENET1K_V2 recipe for ResNet-50: resize to 232 before the 224 crop.
    public static let imagenetV2ResNet50 = Preprocessing(resize: 232, crop: 224, mean: [0.485, 0.456, 0.406],
                                                         std: [0.229, 0.224, 0.225], interpolation: "bilinear")
}

/// One published weight file of an architecture.
public struct PretrainedWeights: Sendable {
    /// torchvision's name for them ("IMAGENET1K_V1").
    public let variant: String
    /// The file (name, SHA-256 prefix, download URL).
    public let file: KnownWeights
    public let preprocessing: Preprocessing
    /// ImageNet top-1 accuracy torchvision reports for them (for the help text).
    public let imagenetTop1: Double
}

/// Another naming of an architecture's state_dict keys (a port's own names).
public struct KeyScheme: Sendable {
    public let name: String
    /// A key that only files in this scheme have (how a file is recognised).
    public let marker: String
    /// torchvision's name -> this scheme's name.
    public let rename: @Sendable (String) -> String
}

/// A backbone architecture: everything probe needs to know about it, in one place.
public struct Architecture: Sendable, Hashable, CustomStringConvertible {
    /// The name on the command line and in stores ("resnet18").
    public let name: String
    /// Other spellings accepted on the command line.
    public let aliases: [String]
    /// Length of the pooled feature vector.
    public let featureDimension: Int
    /// torchvision's name of the last (classification) layer: "fc", "classifier.1".
    public let classifier: String
    /// Dropout before the classifier in training mode (torchvision's: MobileNetV2 0.2, ResNets none).
    public let defaultDropout: Float
    /// Published weights; the first is the default.
    public let weights: [PretrainedWeights]
    /// Key-name schemes besides torchvision's.
    public let keySchemes: [KeyScheme]
    /// The layers, from the image to the pooled features.
    public let body: any NetworkBody

    public var description: String { name }
    public static func == (a: Architecture, b: Architecture) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }

    /// The default weights' preprocessing.
    public var preprocessing: Preprocessing { weights.first?.preprocessing ?? .imagenet }

    /// Every architecture probe knows.
    public static let all: [Architecture] = [.resnet18, .resnet34, .resnet50, .mobilenetV2]

    /// The architecture called `name` (or one of its aliases; case, '-' and '_' do not matter).
    public static func find(_ name: String) -> Architecture? {
        let key = normalized(name)
        return all.first { a in normalized(a.name) == key || a.aliases.contains { normalized($0) == key } }
    }

    /// The architecture called `name`, or an error listing the known ones.
    public static func named(_ name: String) throws -> Architecture {
        guard let a = find(name) else { throw BackboneError.unknownArchitecture(name) }
        return a
    }

    /// "resnet18, resnet34, resnet50, mobilenet_v2".
    public static var knownNames: String { all.map(\.name).joined(separator: ", ") }

    private static func normalized(_ s: String) -> String {
        s.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "")
    }

    /// `weights` seen through the key scheme they use (torchvision's, or one of `keySchemes`,
    /// recognised by its marker key), so that the builders can ask by torchvision's names.
    public func bind(_ weights: TensorSource) throws -> (source: TensorSource, scheme: String) {
        for s in keySchemes where try weights.tensorIfPresent(s.marker) != nil {
            return (RenamedSource(base: weights, rename: s.rename), s.name)
        }
        return (weights, "torchvision")
    }

    /// The preprocessing of the weights with this SHA-256: that of the published file it is, else
    /// the default weights' (finetuned or other weights of the architecture are assumed to follow it).
    public func preprocessing(weightsSHA256 sha: String) -> Preprocessing {
        weights.first { sha.hasPrefix($0.file.sha256Prefix) }?.preprocessing ?? preprocessing
    }

    /// The published weights whose file name, variant ("IMAGENET1K_V2", any case) or SHA-256 prefix is `key` (nil: none).
    public func pretrained(_ key: String) -> PretrainedWeights? {
        weights.first { $0.file.fileName == key || $0.variant.lowercased() == key.lowercased() || $0.file.sha256Prefix == key }
    }
}

extension Architecture: Codable {
    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        self = try Architecture.named(name)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

/// A tensor source that asks its base by another name.
struct RenamedSource: TensorSource {
    let base: TensorSource
    let rename: @Sendable (String) -> String
    func tensorIfPresent(_ name: String) throws -> Tensor? { try base.tensorIfPresent(rename(name)) }
    func tensorIfPresent(_ name: String, shape: [Int]?) throws -> Tensor? { try base.tensorIfPresent(rename(name), shape: shape) }
}

// MARK: - The entries

extension Architecture {
    public static let resnet18 = Architecture(
        name: "resnet18", aliases: ["resnet-18"], featureDimension: 512, classifier: "fc", defaultDropout: 0,
        weights: [PretrainedWeights(variant: "IMAGENET1K_V1", file: KnownWeights(fileName: "resnet18-f37072fd.pth"),
                                    preprocessing: .imagenet, imagenetTop1: 69.758)],
        keySchemes: [], body: ResNetBody(block: .basic, layers: [2, 2, 2, 2]))

    public static let resnet34 = Architecture(
        name: "resnet34", aliases: ["resnet-34"], featureDimension: 512, classifier: "fc", defaultDropout: 0,
        weights: [PretrainedWeights(variant: "IMAGENET1K_V1", file: KnownWeights(fileName: "resnet34-b627a593.pth"),
                                    preprocessing: .imagenet, imagenetTop1: 73.314)],
        keySchemes: [], body: ResNetBody(block: .basic, layers: [3, 4, 6, 3]))

    public static let resnet50 = Architecture(
        name: "resnet50", aliases: ["resnet-50"], featureDimension: 2048, classifier: "fc", defaultDropout: 0,
        weights: [PretrainedWeights(variant: "IMAGENET1K_V1", file: KnownWeights(fileName: "resnet50-0676ba61.pth"),
                                    preprocessing: .imagenet, imagenetTop1: 76.130),
                  PretrainedWeights(variant: "IMAGENET1K_V2", file: KnownWeights(fileName: "resnet50-11ad3fa6.pth"),
                                    preprocessing: .imagenetV2ResNet50, imagenetTop1: 80.858)],
        keySchemes: [], body: ResNetBody(block: .bottleneck, layers: [3, 4, 6, 3]))

    public static let mobilenetV2 = Architecture(
        name: "mobilenet_v2", aliases: ["mobilenetv2"], featureDimension: 1280, classifier: "classifier.1", defaultDropout: 0.2,
        weights: [PretrainedWeights(variant: "IMAGENET1K_V1", file: KnownWeights(fileName: "mobilenet_v2-b0353104.pth"),
                                    preprocessing: .imagenet, imagenetTop1: 71.878)],
        keySchemes: [MobileNetV2Body.deepSortKeys], body: MobileNetV2Body())
}
