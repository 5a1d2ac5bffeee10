import Foundation
import Reproducible

/// A source of the random draws torchvision's augmentations make, so that the sampling logic can be
/// driven by `AugmentRNG` in training and by recorded torch draws in tests.
public protocol AugmentDraws {
    /// Like `torch.empty(1).uniform_(lo, hi).item()`: a float32 in [lo, hi).
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float
    /// Like `torch.randint(lo, hi, (1,)).item()`: an integer in [lo, hi).
    mutating func randint(_ lo: Int, _ hi: Int) -> Int
}

/// The augmentation random number generator: SplitMix64 (Steele, Lea & Flood 2014; the seeding
/// generator of Java's SplittableRandom and of xoshiro), one independent stream per
/// (seed, epoch, image index), so augmentations are reproducible whatever the thread count or order.
///
/// - Keying: `state = mix(mix(mix(seed) ^ epoch) ^ index)` where `mix(z)` is the SplitMix64 output
///   function applied to `z + 0x9E3779B97F4A7C15`.
/// - Step: `state += 0x9E3779B97F4A7C15; return mix64(state)` with
///   `z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^ (z >> 31)`.
/// - `uniform(lo, hi)`: `x = (next() >> 40) * 2^-24` (24 random bits, as torch's float uniform), then
///   `Float(x * Double(hi - lo) + Double(lo))`.
/// - `randint(lo, hi)`: `lo + next() % (hi - lo)` (torch's `random_from_to`; bias < 2^-40 for image sizes).
/// - `bernoulli(p)`: `uniform(0, 1) < p` (torchvision's `torch.rand(1) < p`).
public struct AugmentRNG: AugmentDraws, Sendable {
    private var generator: SplitMix64
    public var state: UInt64 { generator.state }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 { SplitMix64.mix64(x &+ SplitMix64.golden) }

    /// The stream for image `index` in epoch `epoch` of a run seeded with `seed`.
    public init(seed: UInt64, epoch: Int = 0, index: Int = 0) {
        generator = SplitMix64(seed: Self.mix(Self.mix(Self.mix(seed) ^ UInt64(bitPattern: Int64(epoch))) ^ UInt64(bitPattern: Int64(index))))
    }

    public mutating func next() -> UInt64 { generator.next() }

    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        let x = Double(next() >> 40) * 0x1p-24
        return Float(x * Double(hi - lo) + Double(lo))
    }

    public mutating func randint(_ lo: Int, _ hi: Int) -> Int {
        if hi <= lo { return lo }
        return lo + Int(next() % UInt64(hi - lo))
    }

    public mutating func bernoulli(_ p: Float) -> Bool { uniform(0, 1) < p }
}

/// torchvision `RandomResizedCrop(size, scale, ratio)` with bilinear interpolation on PIL images.
public struct RandomResizedCrop: Sendable {
    public var size: Int
    public var scale: (Double, Double)
    public var ratio: (Double, Double)

    public init(size: Int = 224, scale: (Double, Double) = (0.08, 1.0), ratio: (Double, Double) = (3.0 / 4.0, 4.0 / 3.0)) {
        self.size = size
        self.scale = scale
        self.ratio = ratio
    }

    /// The crop rectangle: top `i`, left `j`, height `h`, width `w`.
    public struct Params: Equatable, Sendable {
        public var i: Int, j: Int, h: Int, w: Int
        public init(i: Int, j: Int, h: Int, w: Int) { self.i = i; self.j = j; self.h = h; self.w = w }
    }

    /// torchvision's `RandomResizedCrop.get_params`, draw for draw: up to 10 attempts of
    /// `target_area = area * U(scale)` and `aspect = exp(U(log ratio))` (float32 as torch), `w, h =
    /// round(sqrt(target_area * aspect)), round(sqrt(target_area / aspect))` (half to even), accepted if
    /// it fits, then `i = randint(0, H-h+1)`, `j = randint(0, W-w+1)`; otherwise the central crop with
    /// the ratio clamped to the allowed range.
    public func params<D: AugmentDraws>(width: Int, height: Int, draws: inout D) -> Params {
        let area = Double(height * width)
        let logLo = logf(Float(ratio.0)), logHi = logf(Float(ratio.1))
        for _ in 0..<10 {
            let targetArea = area * Double(draws.uniform(Float(scale.0), Float(scale.1)))
            let aspect = Double(expf(draws.uniform(logLo, logHi)))
            let w = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let i = draws.randint(0, height - h + 1)
                let j = draws.randint(0, width - w + 1)
                return Params(i: i, j: j, h: h, w: w)
            }
        }
        let inRatio = Double(width) / Double(height)
        let rmin = min(ratio.0, ratio.1), rmax = max(ratio.0, ratio.1)
        var w = width, h = height
        if inRatio < rmin {
            w = width
            h = Int((Double(w) / rmin).rounded(.toNearestOrEven))
        } else if inRatio > rmax {
            h = height
            w = Int((Double(h) * rmax).rounded(.toNearestOrEven))
        }
        return Params(i: (height - h) / 2, j: (width - w) / 2, h: h, w: w)
    }

    /// Crops with freshly drawn parameters and resizes to `size` x `size` (PIL bilinear).
    public func apply<D: AugmentDraws>(_ img: RGBImage, draws: inout D) -> RGBImage {
        let p = params(width: img.width, height: img.height, draws: &draws)
        return Transforms.crop(img, x: p.j, y: p.i, width: p.w, height: p.h, resizedTo: size, size)
    }
}

extension Transforms {
    /// The training pipeline `RandomResizedCrop(224)`, `RandomHorizontalFlip(0.5)` as uint8 RGB,
    /// drawing from `rng` in torchvision's order (crop parameters, then the flip).
    public static func augment(_ img: RGBImage, rng: inout AugmentRNG, crop: RandomResizedCrop = RandomResizedCrop()) -> RGBImage {
        let out = crop.apply(img, draws: &rng)
        return rng.bernoulli(0.5) ? flipHorizontally(out) : out
    }

    /// The training pipeline followed by `ToTensor` + `Normalize`, CHW float32 written to `out`.
    public static func training(_ img: RGBImage, rng: inout AugmentRNG, into out: UnsafeMutablePointer<Float>,
                                crop: RandomResizedCrop = RandomResizedCrop()) {
        normalize(augment(img, rng: &rng, crop: crop), into: out)
    }
}
