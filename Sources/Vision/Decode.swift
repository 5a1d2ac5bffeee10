import Foundation
import CTurboJPEG
import CPNG

/// The formats `ImageDecoder` recognises from their first bytes.
public enum ImageFormat: String, Sendable {
    case jpeg = "JPEG", png = "PNG"
    case gif = "GIF", webp = "WebP", bmp = "BMP", tiff = "TIFF", pnm = "PNM (PPM/PGM/PBM)", ico = "ICO"
}

/// Width, height and format of an image, read from its header without decoding pixels.
public struct ImageHeader: Sendable, Equatable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
}

/// Decodes JPEG (libturbojpeg) and PNG (libpng) to 8-bit RGB with the semantics of Pillow's
/// `Image.open(path).convert("RGB")`:
/// - JPEG: default libjpeg-turbo decoding (islow IDCT, fancy upsampling), gray replicated to RGB;
///   CMYK/YCCK JPEGs are read as Adobe-inverted CMYK (Pillow's "CMYK;I") and converted with
///   Pillow's `cmyk2rgb`: `R = clip(nk - (C*nk)/255)` with `nk = 255 - K` and Pillow's MULDIV255 rounding.
///   libjpeg warnings are tolerated except "premature end of data" (Pillow raises "image file is truncated").
/// - PNG: palette expanded (tRNS ignored), gray replicated, alpha dropped (not composited),
///   gAMA ignored, 16-bit samples scaled as `(v * 255 + 32895) >> 16` (Pillow clips those instead).
/// The format is sniffed from the bytes; other formats throw `VisionError.unsupportedFormat`.
/// Dimensions are checked against `maxPixels` before any pixel buffer is allocated.
public enum ImageDecoder {
    /// Pillow's `Image.MAX_IMAGE_PIXELS`.
    public static let maxPixels = 178_956_970

    /// Sniffs the format from the first bytes, or nil if unknown.
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        let n = bytes.count
        func b(_ i: Int) -> UInt8 { i < n ? bytes[i] : 0 }
        if n >= 3 && b(0) == 0xFF && b(1) == 0xD8 && b(2) == 0xFF { return .jpeg }
        if n >= 8 && b(0) == 0x89 && b(1) == 0x50 && b(2) == 0x4E && b(3) == 0x47
            && b(4) == 0x0D && b(5) == 0x0A && b(6) == 0x1A && b(7) == 0x0A { return .png }
        if n >= 4 && b(0) == 0x47 && b(1) == 0x49 && b(2) == 0x46 && b(3) == 0x38 { return .gif }
        if n >= 12 && b(0) == 0x52 && b(1) == 0x49 && b(2) == 0x46 && b(3) == 0x46
            && b(8) == 0x57 && b(9) == 0x45 && b(10) == 0x42 && b(11) == 0x50 { return .webp }
        if n >= 2 && b(0) == 0x42 && b(1) == 0x4D { return .bmp }
        if n >= 4 && ((b(0) == 0x49 && b(1) == 0x49 && b(2) == 0x2A && b(3) == 0)
            || (b(0) == 0x4D && b(1) == 0x4D && b(2) == 0 && b(3) == 0x2A)) { return .tiff }
        if n >= 2 && b(0) == 0x50 && (0x31...0x37).contains(b(1)) { return .pnm }
        if n >= 4 && b(0) == 0 && b(1) == 0 && b(2) == 1 && b(3) == 0 { return .ico }
        return nil
    }

    // MARK: - Public entry points

    /// Reads and decodes a file.
    public static func decode(path: String) throws(VisionError) -> RGBImage {
        let bytes = try readBytes(path)
        if bytes.isEmpty { throw .empty(path: path) }
        let result: Result<RGBImage, VisionError> = bytes.withUnsafeBytes { raw in
            do throws(VisionError) { return .success(try decode(bytes: raw, name: path)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Decodes bytes; `name` is used in error messages.
    public static func decode(data: Data, name: String = "<memory>") throws(VisionError) -> RGBImage {
        if data.isEmpty { throw .empty(path: name) }
        let result: Result<RGBImage, VisionError> = data.withUnsafeBytes { raw in
            do throws(VisionError) { return .success(try decode(bytes: raw, name: name)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Reads only the header of a file.
    public static func header(path: String) throws(VisionError) -> ImageHeader {
        let data = try readFile(path)
        return try header(data: data, name: path)
    }

    /// Reads only the header of in-memory bytes.
    public static func header(data: Data, name: String = "<memory>") throws(VisionError) -> ImageHeader {
        if data.isEmpty { throw .empty(path: name) }
        let result: Result<ImageHeader, VisionError> = data.withUnsafeBytes { raw in
            do throws(VisionError) { return .success(try header(bytes: raw, name: name).header) } catch { return .failure(error) }
        }
        return try result.get()
    }

    // MARK: - Internals

    static func readFile(_ path: String) throws(VisionError) -> Data {
        do {
            // Read, not mapped: a file truncated while mapped would raise SIGBUS.
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// Reads a whole file straight into a byte array (open, fstat, read into the array's storage).
    /// Read, not mapped: a file truncated while mapped would raise SIGBUS.
    static func readBytes(_ path: String) throws(VisionError) -> [UInt8] {
        func failure(_ what: String?, _ code: Int32) -> VisionError {
            let reason = String(cString: strerror(code))
            return .unreadable(path: path, reason: what.map { "\($0): \(reason)" } ?? reason)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw failure(nil, errno) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw failure("fstat", errno) }
        var code: Int32 = 0
        /// Reads until `count` bytes, end of file or an error; returns the number of bytes read.
        func readFully(_ p: UnsafeMutablePointer<UInt8>, _ count: Int) -> Int {
            var n = 0
            while n < count {
                let r = read(fd, p + n, count - n)
                if r < 0 { if errno == EINTR { continue }; code = errno; break }
                if r == 0 { break }
                n += r
            }
            return n
        }
        let size = max(Int(st.st_size), 0)
        var bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            count = size > 0 ? readFully(buf.baseAddress!, size) : 0
        }
        if code != 0 { throw failure("read", code) }
        if bytes.count < size { return bytes }  // end of file before st_size: shrunk meanwhile
        // The file may be longer than fstat said (growing, or a special file): probe for one more byte.
        var next: UInt8 = 0
        let extra = readFully(&next, 1)
        if code != 0 { throw failure("read", code) }
        if extra == 1 {
            bytes.append(next)
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBufferPointer { readFully($0.baseAddress!, $0.count) }
                if code != 0 { throw failure("read", code) }
                bytes.append(contentsOf: chunk[0..<n])
                if n < chunk.count { break }
            }
        }
        return bytes
    }

    struct JPEGInfo { var colorspace: Int32 }

    static func header(bytes: UnsafeRawBufferPointer, name: String) throws(VisionError) -> (header: ImageHeader, jpegColorspace: Int32) {
        if bytes.isEmpty { throw .empty(path: name) }
        guard let format = sniff(bytes) else { throw .unrecognizedData(path: name) }
        var w = 0, h = 0
        var cs: Int32 = -1
        switch format {
        case .jpeg:
            guard let handle = JPEGDecompressor.handle() else { throw .corrupt(path: name, format: "JPEG", reason: "cannot initialise libturbojpeg") }
            var jw: Int32 = 0, jh: Int32 = 0, sub: Int32 = 0, jcs: Int32 = 0
            let rc = tjDecompressHeader3(handle, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                         UInt(bytes.count), &jw, &jh, &sub, &jcs)
            if rc != 0 {
                let reason = String(cString: tjGetErrorStr2(handle))
                JPEGDecompressor.discard()
                throw .corrupt(path: name, format: "JPEG", reason: reason)
            }
            w = Int(jw); h = Int(jh); cs = jcs
        case .png:
            // IHDR must be the first chunk: length 13, "IHDR", width, height (big-endian).
            func be32(_ o: Int) -> Int { Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]) }
            guard bytes.count >= 33, be32(8) == 13, bytes[12] == 0x49, bytes[13] == 0x48, bytes[14] == 0x44, bytes[15] == 0x52 else {
                throw .corrupt(path: name, format: "PNG", reason: "missing or truncated IHDR header")
            }
            w = be32(16); h = be32(20)
            if w > 0x7FFF_FFFF || h > 0x7FFF_FFFF { throw .corrupt(path: name, format: "PNG", reason: "dimensions \(w)x\(h) exceed the PNG limit") }
        default:
            throw .unsupportedFormat(path: name, format: format.rawValue)
        }
        if w <= 0 || h <= 0 { throw .corrupt(path: name, format: format.rawValue, reason: "invalid dimensions \(w)x\(h) (truncated header?)") }
        if w > maxPixels / h || w * h > maxPixels { throw .decompressionBomb(path: name, width: w, height: h) }
        return (ImageHeader(format: format, width: w, height: h), cs)
    }

    static func decode(bytes: UnsafeRawBufferPointer, name: String) throws(VisionError) -> RGBImage {
        let (hdr, cs) = try header(bytes: bytes, name: name)
        switch hdr.format {
        case .jpeg: return try decodeJPEG(bytes, hdr, colorspace: cs, name: name)
        case .png: return try decodePNG(bytes, hdr, name: name)
        default: throw .unsupportedFormat(path: name, format: hdr.format.rawValue)
        }
    }

    private static func cString(_ buf: [CChar]) -> String {
        let s = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return s.isEmpty ? "unknown libpng error" : s
    }

    private static func decodeJPEG(_ bytes: UnsafeRawBufferPointer, _ hdr: ImageHeader, colorspace: Int32, name: String) throws(VisionError) -> RGBImage {
        guard let handle = JPEGDecompressor.handle() else { throw .corrupt(path: name, format: "JPEG", reason: "cannot initialise libturbojpeg") }
        let w = hdr.width, h = hdr.height
        let src = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        var failure: String? = nil
        var warned = false  // any nonzero return code: a warning or a failure
        func check(_ rc: Int32) {
            if rc == 0 { return }
            warned = true
            let msg = String(cString: tjGetErrorStr2(handle))
            // Warnings (corrupt-but-decodable data) are accepted as Pillow does, except truncation.
            if tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) && !msg.lowercased().contains("premature end") { return }
            failure = msg
        }
        // After any failure or warning, start the next image with a fresh handle (libturbojpeg 2.x does not
        // always reset the decompressor's state after an error).
        defer { if warned { JPEGDecompressor.discard() } }
        if !isCMYK {
            // Every byte is written by tjDecompress2 on success; on failure the array is discarded.
            let pixels = [UInt8](unsafeUninitializedCapacity: w * h * 3) { out, count in
                check(tjDecompress2(handle, src, UInt(bytes.count), out.baseAddress, Int32(w), 0, Int32(h), Int32(TJPF_RGB.rawValue), 0))
                count = w * h * 3
            }
            if let f = failure { throw .corrupt(path: name, format: "JPEG", reason: f) }
            return RGBImage(width: w, height: h, pixels: pixels)
        }
        var cmyk = [UInt8](repeating: 0, count: w * h * 4)
        cmyk.withUnsafeMutableBufferPointer { out in
            check(tjDecompress2(handle, src, UInt(bytes.count), out.baseAddress, Int32(w), 0, Int32(h), Int32(TJPF_CMYK.rawValue), 0))
        }
        if let f = failure { throw .corrupt(path: name, format: "JPEG", reason: f) }
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        cmyk.withUnsafeBufferPointer { inp in
            pixels.withUnsafeMutableBufferPointer { out in
                cmykInvertedToRGB(inp.baseAddress!, out.baseAddress!, count: w * h)
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    /// Pillow: unpack "CMYK;I" (invert every channel) then Convert.c `cmyk2rgb`.
    @inline(__always)
    static func cmykInvertedToRGB(_ inp: UnsafePointer<UInt8>, _ out: UnsafeMutablePointer<UInt8>, count: Int) {
        for i in 0..<count {
            let c = 255 - Int(inp[i * 4]), m = 255 - Int(inp[i * 4 + 1])
            let y = 255 - Int(inp[i * 4 + 2]), k = 255 - Int(inp[i * 4 + 3])
            let nk = 255 - k
            @inline(__always) func muldiv255(_ a: Int, _ b: Int) -> Int { let t = a * b + 128; return ((t >> 8) + t) >> 8 }
            @inline(__always) func clip(_ v: Int) -> UInt8 { UInt8(v < 0 ? 0 : (v > 255 ? 255 : v)) }
            out[i * 3] = clip(nk - muldiv255(c, nk))
            out[i * 3 + 1] = clip(nk - muldiv255(m, nk))
            out[i * 3 + 2] = clip(nk - muldiv255(y, nk))
        }
    }

    private static func decodePNG(_ bytes: UnsafeRawBufferPointer, _ hdr: ImageHeader, name: String) throws(VisionError) -> RGBImage {
        let w = hdr.width, h = hdr.height
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        var err = [CChar](repeating: 0, count: 256)
        let rc = pixels.withUnsafeMutableBufferPointer { out in
            probe_png_decode_rgb8(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count,
                                  out.baseAddress, UInt32(w), UInt32(h), &err, err.count)
        }
        if rc != 0 { throw .corrupt(path: name, format: "PNG", reason: cString(err)) }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}

/// One libturbojpeg decompressor per thread, created on first use and destroyed when the thread exits
/// (`tjInitDecompress` allocates and sets up a whole libjpeg instance: too costly per image).
/// After an error the handle is discarded (`discard()`): libturbojpeg 2.x leaves the decompressor mid-header
/// when `tjDecompressHeader3` fails, which would make the next image fail.
enum JPEGDecompressor {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { handle in tjDestroy(handle) }
        precondition(rc == 0, "pthread_key_create failed")
        return key
    }()

    /// This thread's handle, or nil if libturbojpeg cannot allocate one.
    static func handle() -> tjhandle? {
        if let h = pthread_getspecific(key) { return h }
        guard let h = tjInitDecompress() else { return nil }
        if pthread_setspecific(key, h) != 0 { tjDestroy(h); return nil }
        return h
    }

    /// Destroys this thread's handle; the next `handle()` creates a fresh one.
    static func discard() {
        guard let h = pthread_getspecific(key) else { return }
        pthread_setspecific(key, nil)
        tjDestroy(h)
    }
}
