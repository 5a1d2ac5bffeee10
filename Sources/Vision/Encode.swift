import Foundation
import CPNG
import CTurboJPEG

/// Writes 8-bit PNGs with libpng's simplified API (which reports errors by return value).
public enum PNGWriter {
    /// Sample layouts the writer accepts.
    public enum Layout: Sendable {
        case gray, grayAlpha, rgb, rgba
        var format: UInt32 {
            switch self {
            case .gray: return UInt32(PNG_FORMAT_GRAY)
            case .grayAlpha: return UInt32(PNG_FORMAT_FLAG_ALPHA)
            case .rgb: return UInt32(PNG_FORMAT_RGB)
            case .rgba: return UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
            }
        }
        var channels: Int {
            switch self { case .gray: return 1; case .grayAlpha: return 2; case .rgb: return 3; case .rgba: return 4 }
        }
    }

    /// Encodes an RGB image to PNG bytes.
    public static func encode(_ img: RGBImage) throws(VisionError) -> Data {
        try encode(pixels: img.pixels, width: img.width, height: img.height, layout: .rgb)
    }

    /// Encodes interleaved 8-bit samples to PNG bytes.
    public static func encode(pixels: [UInt8], width: Int, height: Int, layout: Layout) throws(VisionError) -> Data {
        guard width > 0, height > 0, pixels.count == width * height * layout.channels else {
            throw .writeFailed(path: "<memory>", reason: "pixel buffer does not match \(width)x\(height)x\(layout.channels)")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = layout.format
        var size: Int = 0
        let stride = Int32(width * layout.channels)
        var ok = pixels.withUnsafeBytes { p in
            png_image_write_to_memory(&image, nil, &size, 0, p.baseAddress, stride, nil)
        }
        guard ok != 0, size > 0 else {
            throw .writeFailed(path: "<memory>", reason: messageOf(&image))
        }
        var out = Data(count: size)
        ok = out.withUnsafeMutableBytes { o in
            pixels.withUnsafeBytes { p in
                png_image_write_to_memory(&image, o.baseAddress, &size, 0, p.baseAddress, stride, nil)
            }
        }
        guard ok != 0 else { throw .writeFailed(path: "<memory>", reason: messageOf(&image)) }
        png_image_free(&image)
        return out.prefix(size)
    }

    /// Writes an RGB image as a PNG file.
    public static func write(_ img: RGBImage, to path: String) throws(VisionError) {
        let data = try encode(img)
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw .writeFailed(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    private static func messageOf(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// JPEG encoding through libturbojpeg (used by tests and tools to make fixtures).
enum JPEGWriter {
    /// Encodes RGB (or, with `gray: true`, a single-channel buffer) at the given quality.
    static func encode(pixels: [UInt8], width: Int, height: Int, gray: Bool = false, quality: Int = 90) -> Data? {
        guard let handle = tjInitCompress() else { return nil }
        defer { tjDestroy(handle) }
        var buf: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let pf = gray ? Int32(TJPF_GRAY.rawValue) : Int32(TJPF_RGB.rawValue)
        let samp = gray ? Int32(TJSAMP_GRAY.rawValue) : Int32(TJSAMP_420.rawValue)
        let rc = pixels.withUnsafeBufferPointer { p in
            tjCompress2(handle, p.baseAddress, Int32(width), 0, Int32(height), pf, &buf, &size, samp, Int32(quality), 0)
        }
        defer { if let b = buf { tjFree(b) } }
        guard rc == 0, let b = buf else { return nil }
        return Data(bytes: b, count: Int(size))
    }

    /// Decodes a JPEG to gray samples (for checking gray JPEG handling).
    static func decodeGray(_ data: Data, width: Int, height: Int) -> [UInt8]? {
        guard let handle = tjInitDecompress() else { return nil }
        defer { tjDestroy(handle) }
        var out = [UInt8](repeating: 0, count: width * height)
        let rc = data.withUnsafeBytes { s in
            out.withUnsafeMutableBufferPointer { o in
                tjDecompress2(handle, s.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(s.count), o.baseAddress,
                              Int32(width), 0, Int32(height), Int32(TJPF_GRAY.rawValue), 0)
            }
        }
        return rc == 0 ? out : nil
    }
}
