import Foundation
import OutputFiles

/// Export formats of `FeatureStore.export`.
public enum ExportFormat: String, Sendable, CaseIterable, Codable {
    /// `OUT.npy`: float32 matrix N x D (NumPy format 1.0, little-endian '<f4', C order) that
    /// `numpy.load` reads as is, plus `OUT.labels.csv` (row,path,label,split,sha256): row i of
    /// the CSV describes row i of the matrix.
    case npy
    /// One CSV: path,label,split,f0,...,f{D-1} (floats in shortest round-trip form).
    case csv
}

public struct ExportSummary: Sendable, Codable, Equatable {
    public var rows: Int
    public var dimension: Int
    public var files: [String]
    public var bytes: Int64
}

/// A CSV field, quoted when it holds a comma, quote, CR or LF (RFC 4180).
func csvField(_ s: String) -> String {
    if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    return s
}

/// The NumPy format 1.0 header of a C-order little-endian float32 array of `shape`.
func npyHeader(shape: [Int]) -> [UInt8] {
    let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
    var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
    // magic (6) + version (2) + header length (2) + dict + '\n', padded to a multiple of 64.
    let unpadded = 10 + dict.utf8.count + 1
    dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    let n = UInt16(dict.utf8.count)
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(dict.utf8)
}

/// Called just before each file of an export is renamed into place, with its path (for tests of
/// the order).
nonisolated(unsafe) var exportWillRename: ((String) -> Void)?

extension FeatureStore {
    /// Writes the features of one backbone's samples (one row per sample path, sorted by path),
    /// optionally of one split / label, as `.npy` (+ `.labels.csv`) or `.csv`. For `.npy`, `out`
    /// names the matrix file (".npy" is appended when missing); the labels go beside it. Both are
    /// written whole to temporary files first; then the matrix is renamed into place, and the
    /// labels last, so new labels always come with the new matrix.
    /// Files are written through `AtomicFileWriter`: an existing regular file is replaced
    /// atomically, anything else (device, FIFO, directory, symlink) and the store itself (any
    /// spelling, hard links, its -wal/-shm) are refused with `OutputFileError`. `out` "-" streams
    /// the CSV format to standard output.
    public func export(to out: String, format: ExportFormat, backbone: StoredBackbone, split: String? = nil, label: String? = nil,
                       transform: String = "val", view: Int = 0) throws -> ExportSummary {
        let d = backbone.dimension
        let from = """
            FROM samples s JOIN images i ON i.id = s.image_id
            JOIN features f ON f.image_id = s.image_id AND f.backbone_id = ?1 AND f.transform = ?2 AND f.view = ?3
            WHERE (?4 IS NULL OR s.split = ?4) AND (?5 IS NULL OR s.label = ?5)
            """
        if format == .npy && out == "-" {
            throw StoreError.invalidArgument("--out - (standard output) needs --format csv: npy writes two files (OUT.npy and OUT.labels.csv)")
        }
        let args: [SQLValue] = [.integer(backbone.id), .text(transform), .int(view), .optionalText(split), .optionalText(label)]
        return try database.read {
            let n = Int(try database.scalarInt("SELECT count(*) " + from, args) ?? 0)
            let s = try database.cachedStatement("SELECT s.path, s.label, s.split, i.sha256, f.dtype, f.vector " + from + " ORDER BY s.path")
            defer { s.reset() }
            try s.bind(args)
            var row = [Float](repeating: 0, count: d)
            func next() throws -> Bool {
                guard try s.step() else { return false }
                let dtype = VectorDType(rawValue: s.string(4) ?? "") ?? .f32
                let ok = s.withBlob(5) { b in row.withUnsafeMutableBufferPointer { VectorCodec.decode(b, dtype: dtype, count: d, into: $0.baseAddress!) } }
                guard ok else {
                    throw StoreError.invalidVector(context: s.string(0) ?? "", reason: "the stored vector has the wrong length; the store was modified outside probe")
                }
                return true
            }
            switch format {
            case .npy:
                let base = out.hasSuffix(".npy") ? String(out.dropLast(4)) : out
                let npyPath = base + ".npy", csvPath = base + ".labels.csv"
                let matrix = try AtomicFileWriter(path: npyPath, protecting: [path])
                let labels = try AtomicFileWriter(path: csvPath, protecting: [path])
                try npyHeader(shape: [n, d]).withUnsafeBytes { try matrix.write($0) }
                try labels.write("row,path,label,split,sha256\n")
                var rows = 0
                var le = [UInt32](repeating: 0, count: d)
                while try next() {
                    guard rows < n else { break }
                    for j in 0..<d { le[j] = row[j].bitPattern.littleEndian }
                    try le.withUnsafeBytes { try matrix.write($0) }
                    try labels.write("\(rows),\(csvField(s.string(0) ?? "")),\(csvField(s.string(1) ?? "")),\(csvField(s.string(2) ?? "")),\(s.string(3) ?? "")\n")
                    rows += 1
                }
                guard rows == n else { throw StoreError.io(path: npyPath, message: "row count changed during export (\(rows) != \(n))") }
                // Both files are whole in their temporaries; the matrix is renamed first and the
                // labels last: a reader that sees the new OUT.labels.csv also sees the new OUT.npy.
                exportWillRename?(npyPath)
                try matrix.commit()
                exportWillRename?(csvPath)
                try labels.commit()
                return ExportSummary(rows: rows, dimension: d, files: [npyPath, csvPath], bytes: matrix.written + labels.written)
            case .csv:
                let w = try AtomicFileWriter(path: out, protecting: [path])
                try w.write("path,label,split," + (0..<d).map { "f\($0)" }.joined(separator: ",") + "\n")
                var rows = 0
                while try next() {
                    var line = "\(csvField(s.string(0) ?? "")),\(csvField(s.string(1) ?? "")),\(csvField(s.string(2) ?? ""))"
                    for x in row { line += ","; line += x.description }
                    line += "\n"
                    try w.write(line)
                    rows += 1
                }
                try w.commit()
                return ExportSummary(rows: rows, dimension: d, files: [out], bytes: w.written)
            }
        }
    }
}
