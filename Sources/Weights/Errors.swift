/// Every failure of the Weights module. Each message says what went wrong and what to do next.
public enum WeightsError: Error, CustomStringConvertible, Equatable, Sendable {
    case fileNotReadable(path: String, reason: String)
    case unknownFormat(path: String, firstBytes: String)
    case truncated(what: String, offset: Int)
    case corruptZip(String)
    case compressedEntry(name: String, method: Int)
    case missingEntry(String)
    case pickle(String, offset: Int)
    case forbiddenGlobal(module: String, name: String)
    case unsupportedDType(String)
    case badTensor(name: String, reason: String)
    case missingKey(String, available: Int, suggestion: String?)
    case safetensors(String)
    case writeFailed(path: String, reason: String)
    case weightsUnavailable(file: String, url: String, destination: String, reason: String)
    case checksumMismatch(file: String, expectedPrefix: String, actual: String)

    public var description: String {
        switch self {
        case let .fileNotReadable(path, reason):
            return "cannot read weight file \(path): \(reason). Check the path (or pass --weights PATH)."
        case let .unknownFormat(path, firstBytes):
            return "\(path) is not a PyTorch .pth/.pt (zip or legacy) or safetensors file (first bytes: \(firstBytes)). "
                + "Re-download it or save it with torch.save(model.state_dict(), path)."
        case let .truncated(what, offset):
            return "weight file is truncated or corrupt: \(what) runs past the end (at byte \(offset)). Re-download the file."
        case let .corruptZip(reason):
            return "corrupt .pth zip archive: \(reason). Re-download the file or re-save it with torch.save."
        case let .compressedEntry(name, method):
            return "zip entry \(name) is compressed (method \(method)); torch.save writes uncompressed (stored) entries. "
                + "Re-save the file with torch.save instead of re-zipping it."
        case let .missingEntry(name):
            return "the .pth archive has no entry \(name); it is not a torch.save file or it is damaged."
        case let .pickle(reason, offset):
            return "cannot read the pickled state_dict (byte \(offset) of the pickle): \(reason). The file is damaged or not a state_dict."
        case let .forbiddenGlobal(module, name):
            return "refusing to load global \(module).\(name): only the objects of a plain state_dict (OrderedDict, tensors, storages) "
                + "are allowed, nothing that runs code. Save only model.state_dict() in PyTorch."
        case let .unsupportedDType(d):
            return "unsupported tensor dtype \(d); convert the weights to float32 in PyTorch (tensor.float())."
        case let .badTensor(name, reason):
            return "tensor \(name) is inconsistent with its storage: \(reason). The file is damaged."
        case let .missingKey(key, available, suggestion):
            var s = "the state_dict has no tensor named \(key) (it has \(available) tensors)"
            if let suggestion { s += "; did you mean \(suggestion)?" }
            return s + " Run `probe weights inspect FILE` to list the names."
        case let .safetensors(reason):
            return "invalid safetensors file: \(reason). Re-download or re-export it."
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason). Check the directory exists and is writable."
        case let .weightsUnavailable(file, url, destination, reason):
            return "weights \(file) are not available (\(reason)). Download \(url) and put it at \(destination), "
                + "or pass --weights PATH to a local copy."
        case let .checksumMismatch(file, expectedPrefix, actual):
            return "\(file) has sha256 \(actual), which does not start with \(expectedPrefix) as its name promises; "
                + "the file was deleted. Download it again."
        }
    }
}
