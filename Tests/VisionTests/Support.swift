import Foundation
import TestSupport

let sharedAvailable = FileManager.default.fileExists(atPath: sharedDirectory + "/reference/val_uint8.npy")
let datasetRoot = sharedDirectory + "/data/hymenoptera_data"

/// Minimal .npy (v1/v2, little-endian, C order) reader for the tests.
struct NPY {
    var shape: [Int]
    var descr: String
    var data: Data

    init(path: String) throws {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        guard d.count > 10, d.prefix(6) == Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else { throw NPYError.bad("magic") }
        let major = d[6]
        let hlen: Int, hstart: Int
        if major == 1 { hlen = Int(d[8]) | Int(d[9]) << 8; hstart = 10 }
        else { hlen = Int(d[8]) | Int(d[9]) << 8 | Int(d[10]) << 16 | Int(d[11]) << 24; hstart = 12 }
        let header = String(decoding: d[hstart..<(hstart + hlen)], as: UTF8.self)
        guard let dr = header.range(of: "'descr': '") else { throw NPYError.bad("descr") }
        descr = String(header[dr.upperBound...].prefix { $0 != "'" })
        guard let sr = header.range(of: "'shape': (") else { throw NPYError.bad("shape") }
        let shapeStr = header[sr.upperBound...].prefix { $0 != ")" }
        shape = shapeStr.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        if header.contains("'fortran_order': True") { throw NPYError.bad("fortran order") }
        data = d.subdata(in: (hstart + hlen)..<d.count)
    }

    var uint8: [UInt8] { [UInt8](data) }
    var float32: [Float] {
        data.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
        }
    }
}

enum NPYError: Error { case bad(String) }

