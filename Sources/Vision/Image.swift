import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC): `pixels[(y * width + x) * 3 + c]`.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// True when the dimensions are positive and `pixels` holds exactly `width * height * 3` bytes.
    /// Transforms return black output for images that are not well formed instead of reading out of bounds.
    public var isWellFormed: Bool { width > 0 && height > 0 && pixels.count == width * height * 3 }

    /// A black image of the given size.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: max(0, width * height * 3)))
    }
}

/// Errors of the Vision module. Each says which file is concerned and what to do next.
public enum VisionError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read from disk.
    case unreadable(path: String, reason: String)
    /// The file has zero bytes.
    case empty(path: String)
    /// A recognised format that probe does not decode (GIF, WebP, BMP, TIFF, PNM, ...).
    case unsupportedFormat(path: String, format: String)
    /// The bytes are neither JPEG nor PNG nor any format we recognise.
    case unrecognizedData(path: String)
    /// A JPEG or PNG whose data is damaged or truncated.
    case corrupt(path: String, format: String, reason: String)
    /// More pixels than PIL's `MAX_IMAGE_PIXELS` (178,956,970).
    case decompressionBomb(path: String, width: Int, height: Int)
    /// An ImageFolder root that does not exist or has no class folders.
    case badDatasetRoot(path: String, reason: String)
    /// Writing a PNG failed.
    case writeFailed(path: String, reason: String)

    /// The same error about another file (two files with the same bytes fail alike: each is
    /// reported under its own path).
    public func at(path p: String) -> VisionError {
        switch self {
        case .unreadable(_, let r): return .unreadable(path: p, reason: r)
        case .empty: return .empty(path: p)
        case .unsupportedFormat(_, let f): return .unsupportedFormat(path: p, format: f)
        case .unrecognizedData: return .unrecognizedData(path: p)
        case .corrupt(_, let f, let r): return .corrupt(path: p, format: f, reason: r)
        case .decompressionBomb(_, let w, let h): return .decompressionBomb(path: p, width: w, height: h)
        case .badDatasetRoot(_, let r): return .badDatasetRoot(path: p, reason: r)
        case .writeFailed(_, let r): return .writeFailed(path: p, reason: r)
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let p, let r):
            return "\(p): cannot read file (\(r)); check the path and permissions"
        case .empty(let p):
            return "\(p): file is empty (0 bytes); remove it or re-copy it"
        case .unsupportedFormat(let p, let f):
            return "\(p): unsupported image format \(f); only JPEG and PNG are decoded, convert it (e.g. to PNG) or remove it"
        case .unrecognizedData(let p):
            return "\(p): not an image (neither JPEG nor PNG signature); remove it from the data set"
        case .corrupt(let p, let f, let r):
            return "\(p): damaged \(f) data (\(r)); re-download or remove the file"
        case .decompressionBomb(let p, let w, let h):
            return "\(p): \(w)x\(h) = \(w * h) pixels exceeds the limit of \(ImageDecoder.maxPixels) (decompression bomb); downscale the file first"
        case .badDatasetRoot(let p, let r):
            return "\(p): not a usable image folder (\(r)); expected one sub-folder per class (or train/ and val/ each holding them)"
        case .writeFailed(let p, let r):
            return "\(p): cannot write PNG (\(r)); check the output directory"
        }
    }
}
