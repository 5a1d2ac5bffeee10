import Foundation
import NN
import Weights
import Backbones
import Parallelism

/// Builds the frozen backbone `architecture` from the weight file at `path` (torchvision's key
/// names, or another scheme the registry lists). Returns it with the sha256 of the file.
/// `workers`: kernel worker threads (features do not depend on it).
public func loadBackbone(_ architecture: Architecture, weightsPath path: String,
                         workers: Int = defaultWorkerCount) throws -> (model: FoldedNetwork, sha256: String) {
    try buildBackbone(architecture, from: try loadStateDict(path: path), workers: workers)
}

/// Builds the frozen backbone `architecture` from loaded weights.
public func buildBackbone(_ architecture: Architecture, from sd: StateDict,
                          workers: Int = defaultWorkerCount) throws -> (model: FoldedNetwork, sha256: String) {
    (try FoldedNetwork(architecture, weights: sd, options: ForwardOptions(workers: workers)), sd.sha256)
}
