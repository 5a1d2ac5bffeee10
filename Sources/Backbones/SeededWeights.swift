import NN
import Weights

/// Weights made on demand with the shape the network asks for, from Weights' seeded tensors
/// (`seededTensorValues`, = tools/seeded_weights.py): the seeded parity tests' weights, and the
/// stand-in weights of `probe bench forward` when no weight file is given (the forward pass costs
/// the same whatever the values). `classifier` gives the shapes of tensors nobody asks a shape
/// for (a classifier read by name).
public struct SeededWeights: TensorSource {
    public let seed: UInt64
    public let classifier: [String: [Int]]

    public init(seed: UInt64 = 0, classifier: [String: [Int]] = [:]) {
        self.seed = seed
        self.classifier = classifier
    }

    public func tensorIfPresent(_ name: String) throws -> Tensor? { try tensorIfPresent(name, shape: classifier[name]) }

    public func tensorIfPresent(_ name: String, shape: [Int]?) throws -> Tensor? {
        guard let shape = shape ?? classifier[name] else { return nil }
        return Tensor(shape: shape, data: seededTensorValues(name: name, shape: shape, seed: seed))
    }
}
