import NN
import Weights

/// A loaded weight file hands out its tensors by state_dict name.
extension StateDict: TensorSource {
    public func tensorIfPresent(_ name: String) throws -> Tensor? {
        self[name] == nil ? nil : try tensor(name)
    }
}
