import Foundation
import Testing
@testable import Vision

/// The vectorised `PillowResample` against the scalar `ReferenceResample`: every byte equal.
@Suite("Vectorised resampling equals the scalar reference")
struct ResampleEquivalenceTests {
    /// Resizes `img`'s rectangle to `outW` x `outH` and returns the window's rows, with either implementation.
    /// The source buffer is exactly `width * height * 3` bytes, as decoded images are.
    static func window(_ img: RGBImage, vectorised: Bool, x: Int, y: Int, w: Int, h: Int, outW: Int, outH: Int,
                       winX: Int, winY: Int, winW: Int, winH: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: winW * winH * 3)
        img.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let emit: (Int, UnsafePointer<UInt8>) -> Void = { row, rgb in
                    (dst.baseAddress! + row * winW * 3).update(from: rgb, count: winW * 3)
                }
                if vectorised {
                    PillowResample.resize(src: src.baseAddress!, srcCount: src.count, srcStride: img.width * 3, srcX: x, srcY: y,
                                          srcW: w, srcH: h, outW: outW, outH: outH, winX: winX, winY: winY, winW: winW, winH: winH,
                                          emitRow: emit)
                } else {
                    ReferenceResample.resize(src: src.baseAddress!, srcStride: img.width * 3, srcX: x, srcY: y,
                                             srcW: w, srcH: h, outW: outW, outH: outH, winX: winX, winY: winY, winW: winW, winH: winH,
                                             emitRow: emit)
                }
            }
        }
        return out
    }

    struct LCG {
        var s: UInt64
        mutating func next(_ n: Int) -> Int {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Int((s >> 33) % UInt64(n))
        }
    }

    @Test func randomSizesCropsAndWindows() {
        var rng = LCG(s: 42)
        var cases = 0
        for n in 0..<400 {
            let big = n % 10 == 0
            let iw = 1 + rng.next(big ? 700 : 90), ih = 1 + rng.next(big ? 500 : 90)
            // Extreme values (0 and 255) are frequent, to reach the clipping bounds.
            var px = pattern(iw, ih, channels: 3, seed: n)
            for i in stride(from: 0, to: px.count, by: 7) { px[i] = n % 2 == 0 ? 255 : 0 }
            let img = RGBImage(width: iw, height: ih, pixels: px)
            let w = 1 + rng.next(iw), h = 1 + rng.next(ih)
            let x = rng.next(iw - w + 1), y = rng.next(ih - h + 1)
            // Downscales (up to about 8x), identity and upscales.
            let outW = max(1, [w, w / 2, w / 3, w * 2, w / 8, 1 + rng.next(200)][rng.next(6)])
            let outH = max(1, [h, h / 2, h / 3, h * 2, h / 8, 1 + rng.next(200)][rng.next(6)])
            let winW = 1 + rng.next(outW), winH = 1 + rng.next(outH)
            let winX = rng.next(outW - winW + 1), winY = rng.next(outH - winH + 1)
            let a = Self.window(img, vectorised: true, x: x, y: y, w: w, h: h, outW: outW, outH: outH,
                                winX: winX, winY: winY, winW: winW, winH: winH)
            let b = Self.window(img, vectorised: false, x: x, y: y, w: w, h: h, outW: outW, outH: outH,
                                winX: winX, winY: winY, winW: winW, winH: winH)
            #expect(a == b, "\(iw)x\(ih) rect (\(x), \(y), \(w), \(h)) -> \(outW)x\(outH) window (\(winX), \(winY), \(winW), \(winH))")
            cases += 1
        }
        #expect(cases == 400)
    }

    @Test func fullResizesTouchingTheBufferEnd() {
        // Whole images (the last row and column are read), widths where the last pixel ends the buffer.
        for (iw, ih, ow, oh) in [(500, 375, 341, 256), (375, 500, 256, 341), (333, 500, 256, 384), (17, 9, 5, 3),
                                 (256, 300, 256, 300), (256, 300, 224, 256), (7, 7, 3, 3), (600, 2, 200, 1), (2, 600, 1, 200)] {
            let img = RGBImage(width: iw, height: ih, pixels: pattern(iw, ih, channels: 3, seed: iw * ih))
            let a = Self.window(img, vectorised: true, x: 0, y: 0, w: iw, h: ih, outW: ow, outH: oh, winX: 0, winY: 0, winW: ow, winH: oh)
            let b = Self.window(img, vectorised: false, x: 0, y: 0, w: iw, h: ih, outW: ow, outH: oh, winX: 0, winY: 0, winW: ow, winH: oh)
            #expect(a == b, "\(iw)x\(ih) -> \(ow)x\(oh)")
        }
    }

    @Test("every dataset image: validation crop and normalised tensor equal the reference",
          .enabled(if: sharedAvailable, "needs ../shared/data"))
    func datasetImages() throws {
        let folders: [ImageFolder]
        switch try DatasetLayout.detect(root: datasetRoot) {
        case .split(let t, let v): folders = [t, v]
        case .single(let f): folders = [f]
        }
        let paths = folders.flatMap { $0.samples.map(\.path) }
        #expect(paths.count == 397)
        var tensor = [Float](repeating: 0, count: 3 * 224 * 224)
        var mismatched: [String] = []
        for p in paths {
            let img = try ImageDecoder.decode(path: p)
            let (rw, rh) = Transforms.resizedSize(width: img.width, height: img.height, shorter: 256)
            let left = Transforms.centerCropOffset(size: rw, crop: 224), top = Transforms.centerCropOffset(size: rh, crop: 224)
            let ref = Self.window(img, vectorised: false, x: 0, y: 0, w: img.width, h: img.height, outW: rw, outH: rh,
                                  winX: left, winY: top, winW: 224, winH: 224)
            let crop = Transforms.resizeCenterCrop(img)
            tensor.withUnsafeMutableBufferPointer { Transforms.validation(img, into: $0.baseAddress!) }
            var expected = [Float](repeating: 0, count: 3 * 224 * 224)
            expected.withUnsafeMutableBufferPointer { Transforms.normalize(RGBImage(width: 224, height: 224, pixels: ref), into: $0.baseAddress!) }
            if crop.pixels != ref || tensor != expected { mismatched.append(p) }
        }
        #expect(mismatched.isEmpty, "\(mismatched.count) images differ: \(mismatched.prefix(5))")
    }
}
