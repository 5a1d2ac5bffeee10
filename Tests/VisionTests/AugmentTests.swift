import Foundation
import Reproducible
import Testing
@testable import Vision

/// Replays recorded torch draws: uniforms (as returned by `uniform_`) and randint results.
struct ScriptedDraws: AugmentDraws {
    var uniforms: [Float]
    var ints: [Int]
    var ui = 0, ii = 0
    var overrun = false
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        guard ui < uniforms.count else { overrun = true; return lo }
        defer { ui += 1 }
        return uniforms[ui]
    }
    mutating func randint(_ lo: Int, _ hi: Int) -> Int {
        guard ii < ints.count else { overrun = true; return lo }
        defer { ii += 1 }
        return ints[ii]
    }
}

@Suite("Augmentation")
struct AugmentTests {
    @Test("get_params equals torchvision's for the same draws (60 cases incl. fallbacks)")
    func paramsMatchTorchvision() {
        let rrc = RandomResizedCrop()
        var fallbacks = 0
        for c in rrcCases {
            var d = ScriptedDraws(uniforms: c.uniforms, ints: c.ints)
            let p = rrc.params(width: c.width, height: c.height, draws: &d)
            #expect(p == c.expected, "\(c.width)x\(c.height) draws \(c.uniforms)")
            #expect(!d.overrun && d.ui == c.uniforms.count && d.ii == c.ints.count, "consumed every draw, no more")
            if c.ints.isEmpty { fallbacks += 1 }
        }
        #expect(fallbacks >= 6, "the cases exercise the central-crop fallback")
    }

    @Test("sampling statistics on 500x375 agree with torchvision's (50,000 draws each)")
    func samplingStatistics() {
        // torchvision, torch.manual_seed(99), 50,000 get_params calls on a 500x375 image:
        // mean area fraction 0.434063, sd 0.217526, mean log(w/h) 0.030907.
        let rrc = RandomResizedCrop()
        var rng = AugmentRNG(seed: 42)
        let n = 50_000
        var sa = 0.0, sa2 = 0.0, slr = 0.0
        for _ in 0..<n {
            let p = rrc.params(width: 500, height: 375, draws: &rng)
            #expect(p.i >= 0 && p.j >= 0 && p.i + p.h <= 375 && p.j + p.w <= 500)
            let a = Double(p.h * p.w) / (500 * 375)
            sa += a; sa2 += a * a; slr += log(Double(p.w) / Double(p.h))
        }
        let mean = sa / Double(n), sd = (sa2 / Double(n) - mean * mean).squareRoot(), lr = slr / Double(n)
        print("RandomResizedCrop 500x375: mean area \(mean) (torch 0.434063), sd \(sd) (0.217526), mean log ratio \(lr) (0.030907)")
        // Standard errors: 0.00097 (mean area), ~0.0009 (log ratio); allow ~4 combined SE.
        #expect(abs(mean - 0.434063) < 0.0055)
        #expect(abs(sd - 0.217526) < 0.005)
        #expect(abs(lr - 0.030907) < 0.006)
    }

    @Test func rngIsKeyedAndThreadIndependent() {
        var a = AugmentRNG(seed: 7, epoch: 3, index: 11), b = AugmentRNG(seed: 7, epoch: 3, index: 11)
        let sa = (0..<8).map { _ in a.next() }, sb = (0..<8).map { _ in b.next() }
        #expect(sa == sb)
        var keys = Set<UInt64>()
        for s in 0..<3 { for e in 0..<3 { for i in 0..<50 {
            var r = AugmentRNG(seed: UInt64(s), epoch: e, index: i)
            keys.insert(r.next())
        } } }
        #expect(keys.count == 3 * 3 * 50, "distinct streams for distinct (seed, epoch, index)")
        // Uniforms in range with the right mean; SplitMix64 reference value for seed 0 state stepping.
        var r = AugmentRNG(seed: 1)
        var sum = 0.0
        for _ in 0..<100_000 { let u = r.uniform(0, 1); #expect(u >= 0 && u < 1); sum += Double(u) }
        #expect(abs(sum / 100_000 - 0.5) < 0.005)
        // Same augmented images whatever the thread count.
        let img = RGBImage(width: 97, height: 61, pixels: pattern(97, 61, channels: 3, seed: 21))
        let serial = (0..<16).map { i -> [UInt8] in
            var g = AugmentRNG(seed: 5, epoch: 1, index: i)
            return Transforms.augment(img, rng: &g).pixels
        }
        let box = ResultBox(count: 16)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            var g = AugmentRNG(seed: 5, epoch: 1, index: i)
            box.set(i, Transforms.augment(img, rng: &g).pixels)
        }
        #expect(box.values == serial)
    }

    @Test func splitMix64KnownValues() {
        // SplitMix64 from state 0 (Vigna's reference splitmix64.c): first outputs.
        var z: UInt64 = 0
        var outs: [UInt64] = []
        for _ in 0..<3 { z = z &+ SplitMix64.golden; outs.append(SplitMix64.mix64(z)) }
        #expect(outs == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    }

    @Test func flip() {
        let img = RGBImage(width: 3, height: 2, pixels: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])
        #expect(Transforms.flipHorizontally(img).pixels == [7, 8, 9, 4, 5, 6, 1, 2, 3, 16, 17, 18, 13, 14, 15, 10, 11, 12])
    }

    @Test("crop then resize equals torchvision resized_crop on PIL", .enabled(if: sharedAvailable, "needs ../shared/data"))
    func resizedCropMatchesPIL() throws {
        let img = try ImageDecoder.decode(path: datasetRoot + "/train/ants/formica.jpeg")
        #expect(img.width == 193 && img.height == 130)
        for c in cropCases {
            let out = Transforms.crop(img, x: c.j, y: c.i, width: c.w, height: c.h, resizedTo: c.outW, c.outH)
            var sum = 0, weighted = 0
            for (k, v) in out.pixels.enumerated() { sum += Int(v); weighted += Int(v) * (k % 1009) }
            let what = "crop (\(c.i), \(c.j), \(c.h), \(c.w)) -> \(c.outW)x\(c.outH)"
            #expect(sum == c.sum, "\(what): byte sum")
            #expect(weighted == c.weighted, "\(what): weighted sum")
            if !c.base64.isEmpty {
                let same = out.pixels == [UInt8](Data(base64Encoded: c.base64) ?? Data())
                #expect(same, "\(what): bytes")
            }
        }
    }

    @Test func trainingTransformWritesNormalizedCHW() {
        let img = RGBImage(width: 300, height: 200, pixels: pattern(300, 200, channels: 3, seed: 22))
        var g1 = AugmentRNG(seed: 9, epoch: 0, index: 4), g2 = g1
        let u8 = Transforms.augment(img, rng: &g1)
        var f = [Float](repeating: .nan, count: 3 * 224 * 224)
        f.withUnsafeMutableBufferPointer { Transforms.training(img, rng: &g2, into: $0.baseAddress!) }
        #expect(u8.width == 224 && u8.height == 224)
        for (y, x) in [(0, 0), (100, 17), (223, 223)] {
            for c in 0..<3 {
                let v = Float(u8.pixels[(y * 224 + x) * 3 + c])
                #expect(f[c * 224 * 224 + y * 224 + x] == (v / 255 - Transforms.mean[c]) / Transforms.std[c])
            }
        }
    }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [[UInt8]]
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [UInt8]) { lock.lock(); values[i] = v; lock.unlock() }
}

@Suite("Transforms edge cases")
struct TransformEdgeTests {
    @Test func resizedSizeAndCropOffsetsFollowTorchvision() {
        // int(256 * long / short) and int(round((h - 224) / 2.0)) with half-to-even rounding.
        #expect(Transforms.resizedSize(width: 500, height: 375, shorter: 256) == (341, 256))
        #expect(Transforms.resizedSize(width: 375, height: 500, shorter: 256) == (256, 341))
        #expect(Transforms.resizedSize(width: 333, height: 500, shorter: 256) == (256, 384))
        #expect(Transforms.resizedSize(width: 1, height: 10000, shorter: 256) == (256, 2_560_000))
        #expect(Transforms.centerCropOffset(size: 341, crop: 224) == 58)   // 58.5 -> 58
        #expect(Transforms.centerCropOffset(size: 343, crop: 224) == 60)   // 59.5 -> 60
        #expect(Transforms.centerCropOffset(size: 256, crop: 224) == 16)
    }

    @Test func tinyAndExtremeImages() {
        let one = RGBImage(width: 1, height: 1, pixels: [10, 200, 30])
        let out = Transforms.resizeCenterCrop(one)
        #expect(out.width == 224 && out.pixels.count == 224 * 224 * 3)
        #expect(out.pixels[0] == 10 && out.pixels[1] == 200 && out.pixels[2] == 30)
        let thin = RGBImage(width: 3000, height: 2, pixels: pattern(3000, 2, channels: 3, seed: 30))
        #expect(Transforms.resizeCenterCrop(thin).pixels.count == 224 * 224 * 3)
        // 2 x 100,000 resizes (virtually) to 256 x 12,800,000: only the crop window is ever computed.
        let tall = RGBImage(width: 2, height: 100_000, pixels: [UInt8](repeating: 77, count: 2 * 100_000 * 3))
        #expect(Transforms.resizeCenterCrop(tall).pixels.allSatisfy { $0 == 77 })
        // An absurd downscale is refused (black), not allocated.
        let wide = RGBImage(width: 200_000, height: 1, pixels: [UInt8](repeating: 9, count: 200_000 * 3))
        #expect(Transforms.crop(wide, x: 0, y: 0, width: 200_000, height: 1, resizedTo: 1, 1).pixels == [9, 9, 9])
        // Crop larger than the resized image: black padding.
        let small = RGBImage(width: 40, height: 30, pixels: [UInt8](repeating: 200, count: 40 * 30 * 3))
        let padded = Transforms.resizeCenterCrop(small, resize: 20, crop: 30)
        #expect(padded.pixels[0] == 0 && padded.pixels[(15 * 30 + 15) * 3] == 200)
        // Malformed images give black output, not a crash.
        let bad = RGBImage(width: 10, height: 10, pixels: [1, 2, 3])
        #expect(!bad.isWellFormed)
        #expect(Transforms.resizeCenterCrop(bad).pixels.allSatisfy { $0 == 0 })
    }
}
