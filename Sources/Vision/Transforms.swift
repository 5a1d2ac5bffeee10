import Foundation

/// torchvision 0.29 transforms on PIL images, reproduced exactly.
public enum Transforms {
    /// ImageNet normalisation used by torchvision's pretrained models.
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// `ToTensor` + `Normalize` as a lookup table per channel: `lut[c*256 + v] = (Float(v) / 255 - mean[c]) / std[c]`,
    /// evaluated in float32 in the same order as torchvision, so the values are bit-identical.
    static let normalizeLUT: [Float] = {
        var t = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            for v in 0..<256 { t[c * 256 + v] = (Float(v) / Float(255) - mean[c]) / std[c] }
        }
        return t
    }()

    /// torchvision `_compute_resized_output_size` for `Resize(size)` with an int: the shorter side becomes
    /// `size`, the longer `int(size * long / short)` (float division, truncation). Returns (width, height).
    public static func resizedSize(width: Int, height: Int, shorter size: Int) -> (width: Int, height: Int) {
        let short = min(width, height), long = max(width, height)
        let newLong = Int(Double(size * long) / Double(short))
        return width <= height ? (size, newLong) : (newLong, size)
    }

    /// torchvision `center_crop` offsets: `int(round((h - crop) / 2.0))` with Python's round-half-to-even.
    public static func centerCropOffset(size: Int, crop: Int) -> Int {
        Int((Double(size - crop) / 2.0).rounded(.toNearestOrEven))
    }

    /// `Resize(resize)` then `CenterCrop(crop)` as uint8 RGB (what `val_uint8.npy` holds).
    /// Only the cropped rows and columns are computed. A crop larger than the resized image is padded
    /// with black as torchvision does.
    public static func resizeCenterCrop(_ img: RGBImage, resize: Int = 256, crop: Int = 224) -> RGBImage {
        var out = RGBImage(width: crop, height: crop)
        out.pixels.withUnsafeMutableBufferPointer { dst in
            resizeCenterCropRows(img, resize: resize, crop: crop) { row, rgb in
                (dst.baseAddress! + row * crop * 3).update(from: rgb, count: crop * 3)
            }
        }
        return out
    }

    static func resizeCenterCropRows(_ img: RGBImage, resize: Int, crop: Int,
                                     emitRow: (Int, UnsafePointer<UInt8>) -> Void) {
        guard crop > 0 else { return }
        guard img.isWellFormed, resize > 0 else {
            // Malformed input: emit black rows rather than read out of bounds.
            let black = [UInt8](repeating: 0, count: crop * 3)
            black.withUnsafeBufferPointer { b in for r in 0..<crop { emitRow(r, b.baseAddress!) } }
            return
        }
        let (rw, rh) = resizedSize(width: img.width, height: img.height, shorter: resize)
        if crop > rw || crop > rh {
            // torchvision pads with black when the crop is larger than the image: resize fully, then place.
            let full = self.resize(img, width: rw, height: rh)
            let left = crop > rw ? -((crop - rw) / 2) : centerCropOffset(size: rw, crop: crop)
            let top = crop > rh ? -((crop - rh) / 2) : centerCropOffset(size: rh, crop: crop)
            var row = [UInt8](repeating: 0, count: crop * 3)
            for r in 0..<crop {
                for i in 0..<row.count { row[i] = 0 }
                let sy = top + r
                if sy >= 0 && sy < rh {
                    for x in 0..<crop where left + x >= 0 && left + x < rw {
                        let s = (sy * rw + left + x) * 3
                        row[x * 3] = full.pixels[s]; row[x * 3 + 1] = full.pixels[s + 1]; row[x * 3 + 2] = full.pixels[s + 2]
                    }
                }
                row.withUnsafeBufferPointer { emitRow(r, $0.baseAddress!) }
            }
            return
        }
        let top = centerCropOffset(size: rh, crop: crop)
        let left = centerCropOffset(size: rw, crop: crop)
        img.pixels.withUnsafeBufferPointer { src in
            PillowResample.resize(src: src.baseAddress!, srcCount: src.count, srcStride: img.width * 3, srcX: 0, srcY: 0,
                                  srcW: img.width, srcH: img.height, outW: rw, outH: rh,
                                  winX: left, winY: top, winW: crop, winH: crop, emitRow: emitRow)
        }
    }

    /// The validation pipeline `Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)` fused into
    /// one pass: writes 3*224*224 float32 values in CHW order to `out` (e.g. one slot of a batch tensor).
    public static func validation(_ img: RGBImage, into out: UnsafeMutablePointer<Float>, resize: Int = 256, crop: Int = 224) {
        let plane = crop * crop
        normalizeLUT.withUnsafeBufferPointer { lut in
            let l0 = lut.baseAddress!, l1 = l0 + 256, l2 = l0 + 512
            resizeCenterCropRows(img, resize: resize, crop: crop) { row, rgb in
                let o0 = out + row * crop
                normalizeRow(rgb, count: crop, l0, l1, l2, o0, o0 + plane, o0 + 2 * plane)
            }
        }
    }

    /// One row of `count` RGB pixels through the per-channel tables into three planes.
    /// Not inlined into the resampling loop, where it would compete for registers.
    @inline(never)
    static func normalizeRow(_ rgb: UnsafePointer<UInt8>, count: Int,
                             _ l0: UnsafePointer<Float>, _ l1: UnsafePointer<Float>, _ l2: UnsafePointer<Float>,
                             _ o0: UnsafeMutablePointer<Float>, _ o1: UnsafeMutablePointer<Float>, _ o2: UnsafeMutablePointer<Float>) {
        var p = rgb
        for x in 0..<count {
            o0[x] = l0[Int(p[0])]
            o1[x] = l1[Int(p[1])]
            o2[x] = l2[Int(p[2])]
            p += 3
        }
    }

    /// `ToTensor` + `Normalize` of an RGB image (any size) into CHW float32 at `out`.
    public static func normalize(_ img: RGBImage, into out: UnsafeMutablePointer<Float>) {
        guard img.isWellFormed else { return }
        let plane = img.width * img.height
        normalizeLUT.withUnsafeBufferPointer { lut in
            img.pixels.withUnsafeBufferPointer { p in
                for i in 0..<plane {
                    out[i] = lut[Int(p[i * 3])]
                    out[plane + i] = lut[256 + Int(p[i * 3 + 1])]
                    out[2 * plane + i] = lut[512 + Int(p[i * 3 + 2])]
                }
            }
        }
    }

    /// PIL `img.resize((width, height), BILINEAR)`.
    public static func resize(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        crop(img, x: 0, y: 0, width: img.width, height: img.height, resizedTo: width, height)
    }

    /// torchvision `resized_crop` on a PIL image: `img.crop((x, y, x+w, y+h)).resize((outW, outH), BILINEAR)`.
    /// Parts of the rectangle outside the image are black, as PIL's `crop` makes them.
    public static func crop(_ img: RGBImage, x: Int, y: Int, width: Int, height: Int, resizedTo outW: Int, _ outH: Int) -> RGBImage {
        guard img.isWellFormed, width > 0, height > 0, outW > 0, outH > 0 else { return RGBImage(width: max(0, outW), height: max(0, outH)) }
        if x < 0 || y < 0 || x + width > img.width || y + height > img.height {
            var padded = RGBImage(width: width, height: height)
            let x0 = max(0, x), x1 = min(img.width, x + width)
            if x1 > x0 {
                for sy in max(0, y)..<max(max(0, y), min(img.height, y + height)) {
                    let src = (sy * img.width + x0) * 3, dst = ((sy - y) * width + (x0 - x)) * 3
                    padded.pixels.replaceSubrange(dst..<(dst + (x1 - x0) * 3), with: img.pixels[src..<(src + (x1 - x0) * 3)])
                }
            }
            return crop(padded, x: 0, y: 0, width: width, height: height, resizedTo: outW, outH)
        }
        var out = RGBImage(width: outW, height: outH)
        out.pixels.withUnsafeMutableBufferPointer { dst in
            img.pixels.withUnsafeBufferPointer { src in
                PillowResample.resize(src: src.baseAddress!, srcCount: src.count, srcStride: img.width * 3, srcX: x, srcY: y,
                                      srcW: width, srcH: height, outW: outW, outH: outH,
                                      winX: 0, winY: 0, winW: outW, winH: outH) { row, rgb in
                    (dst.baseAddress! + row * outW * 3).update(from: rgb, count: outW * 3)
                }
            }
        }
        return out
    }

    /// `RandomHorizontalFlip` applied: mirrors the image left-right.
    public static func flipHorizontally(_ img: RGBImage) -> RGBImage {
        guard img.isWellFormed else { return img }
        var out = img
        let w = img.width
        img.pixels.withUnsafeBufferPointer { s in
            out.pixels.withUnsafeMutableBufferPointer { d in
                for y in 0..<img.height {
                    let r = y * w * 3
                    for x in 0..<w {
                        let a = r + x * 3, b = r + (w - 1 - x) * 3
                        d[b] = s[a]; d[b + 1] = s[a + 1]; d[b + 2] = s[a + 2]
                    }
                }
            }
        }
        return out
    }
}
