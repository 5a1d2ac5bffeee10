import Foundation
import NN

/// torchvision's `resnet18` in eval mode, from a state_dict with torchvision's key names
/// (conv1, bn1, layer{1-4}.{0,1}.conv{1,2}/bn{1,2}, layerN.0.downsample.{0,1}, optional fc).
/// Features: the flattened global average pool (512-d). Logits: `fc` when the weights have it.
public final class ResNet18: Backbone, @unchecked Sendable {
    public let name = "resnet18"
    public let featureDimension = 512
    /// Outputs of `fc` (1000 for ImageNet weights), or nil when the weights have no `fc`.
    public let classCount: Int?

    struct Block {
        let conv1: FoldedConv
        let conv2: FoldedConv
        let downsample: FoldedConv?
    }

    let stem: FoldedConv
    let blocks: [Block]
    let fcWeight: [Float]?
    let fcBias: [Float]?
    let driver: Driver

    public convenience init(weights: TensorSource) throws {
        try self.init(weights: weights, options: ForwardOptions())
    }

    public init(weights src: TensorSource, options: ForwardOptions) throws {
        let model = "resnet18"
        stem = try FoldedConv(src, conv: "conv1", bn: "bn1",
                              ConvGeometry(inChannels: 3, outChannels: 64, kernel: 7, stride: 2, padding: 3), .relu, model: model)
        var blocks: [Block] = []
        var inC = 64
        for (li, outC) in [64, 128, 256, 512].enumerated() {
            for bi in 0..<2 {
                let p = "layer\(li + 1).\(bi)"
                let stride = (li > 0 && bi == 0) ? 2 : 1
                // F(4x4, 3x3) on layers 1-3 (56, 28 and 14 pixel maps at 224); on layer4's 7x7 maps 4x4 tiles
                // would waste 30%, so it keeps F(2x2, 3x3).
                let variant: WinogradVariant = li < 3 && options.largeWinogradTiles ? .f4 : .f2
                let c1 = try FoldedConv(src, conv: p + ".conv1", bn: p + ".bn1",
                                        ConvGeometry(inChannels: inC, outChannels: outC, kernel: 3, stride: stride, padding: 1), .relu, model: model,
                                        winograd: variant)
                let c2 = try FoldedConv(src, conv: p + ".conv2", bn: p + ".bn2",
                                        ConvGeometry(inChannels: outC, outChannels: outC, kernel: 3, stride: 1, padding: 1), .relu, model: model,
                                        winograd: variant)
                var ds: FoldedConv? = nil
                if stride != 1 || inC != outC {
                    ds = try FoldedConv(src, conv: p + ".downsample.0", bn: p + ".downsample.1",
                                        ConvGeometry(inChannels: inC, outChannels: outC, kernel: 1, stride: stride), .none, model: model)
                }
                blocks.append(Block(conv1: c1, conv2: c2, downsample: ds))
                inC = outC
            }
        }
        self.blocks = blocks
        if let w = try src.tensorIfPresent("fc.weight") {
            guard w.rank == 2, w.shape[1] == 512 else { throw BackboneError.badShape("fc.weight", expected: [w.shape.first ?? 1000, 512], got: w.shape) }
            let b = try src.require("fc.bias", [w.shape[0]], model: model)
            fcWeight = w.data
            fcBias = b.data
            classCount = w.shape[0]
        } else {
            fcWeight = nil
            fcBias = nil
            classCount = nil
        }
        driver = Driver(options: options)
    }

    public func features(batch: UnsafePointer<Float>, count: Int, height: Int, width: Int) -> [Float] {
        driver.forEachImage(batch: batch, count: count, height: height, width: width, perImageOut: 512,
                            makeWorkspace: makeWorkspace) { ws, o, x, out in
            forward(ws: ws, options: o, input: x, height: height, width: width, features: out)
        }
    }

    /// 1000-way (classCount-way) logits for (count, 512) features; nil without `fc`. Row by row, so
    /// an image's logits do not depend on the others (see `Driver`).
    public func logits(features f: [Float]) -> [Float]? {
        guard let fcWeight, let fcBias, let k = classCount else { return nil }
        let n = f.count / 512
        var out = [Float](repeating: 0, count: n * k)
        f.withUnsafeBufferPointer { x in
            fcWeight.withUnsafeBufferPointer { w in
                fcBias.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { o in
                        for i in 0..<n {
                            linearForward(output: o.baseAddress! + i * k, input: x.baseAddress! + i * 512, batch: 1,
                                          inFeatures: 512, outFeatures: k, weight: w.baseAddress!, bias: b.baseAddress!)
                        }
                    }
                }
            }
        }
        return out
    }

    /// Buffers and scratch for one image.
    private func makeWorkspace(_ height: Int, _ width: Int, _ options: ForwardOptions) -> Workspace {
        let m = 1
        let (h1, w1) = stem.geometry.outputSize(height: height, width: width)
        let largest = 64 * m * h1 * w1
        return Workspace(height: height, width: width, buffers: 4, bufferFloats: largest,
                         scratchFloats: scratchFloats(maxK: 512 * 9, maxPlane: (1, 1), options: options,
                                                      winogradRow: winograd4ScratchCount(inChannels: 64, outChannels: 64,
                                                                                         tiles: (w1 / 2 + 3) / 4 + 1)))
    }

    /// One image.
    private func forward(ws: Workspace, options o: ForwardOptions, input: UnsafePointer<Float>, height: Int, width: Int,
                         features: UnsafeMutablePointer<Float>) {
        let m = 1
        var b = ws.buffers
        var (h, w) = ws.run(stem, input: input, layout: .nchw(channels: 3, height: height, width: width),
                            batch: m, height: height, width: width, output: b[0], options: o)
        // max pool 3x3 / 2, pad 1
        let ph = (h + 2 - 3) / 2 + 1, pw = (w + 2 - 3) / 2 + 1
        maxPool2dForward(output: b[1], input: b[0], planes: 64 * m, height: h, width: w, workers: o.workers)
        (h, w) = (ph, pw)
        var x = b[1]
        b.swapAt(0, 1)  // b[0] = x; b[1...3] free
        for block in blocks {
            let t = b[1], y = b[2]
            let (oh, ow) = ws.run(block.conv1, input: x, batch: m, height: h, width: w, output: t, options: o)
            var identity = UnsafePointer(x)
            if let ds = block.downsample {
                ws.run(ds, input: x, batch: m, height: h, width: w, output: b[3], options: o)
                identity = UnsafePointer(b[3])
            }
            ws.run(block.conv2, input: t, batch: m, height: oh, width: ow, output: y, residual: identity, options: o)
            (h, w) = (oh, ow)
            x = y
            b.swapAt(0, 2)
        }
        globalAvgPoolForward(output: features, input: x, channels: 512, batch: m, hw: h * w)
    }
}
