import Foundation
import Testing
@testable import NN
import TestSupport

let nnSharedAvailable = FileManager.default.fileExists(atPath: sharedDirectory + "/reference/model_input.npy")

@Test func npyRoundTrip() throws {
    let path = NSTemporaryDirectory() + "/probe-npy-\(getpid()).npy"
    defer { try? FileManager.default.removeItem(atPath: path) }
    let t = Tensor(shape: [2, 3, 1], data: [1, -2.5, 3e-7, .pi, 0, 1e30])
    try NPY.write(t, path: path)
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect((10 + Int(data[8]) + Int(data[9]) << 8) % 64 == 0)  // header padded to 64 bytes
    #expect(try NPY.read(path: path) == t)
}

@Test func npyParsesHandWrittenHeaders() throws {
    func file(_ dict: String, _ payload: [UInt8]) -> Data {
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(dict.utf8.count), 0])
        d.append(contentsOf: Array(dict.utf8))
        d.append(contentsOf: payload)
        return d
    }
    let f8 = file("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n",
                  Array(withUnsafeBytes(of: Double(1.5).bitPattern.littleEndian) { Array($0) } +
                        withUnsafeBytes(of: Double(-4).bitPattern.littleEndian) { Array($0) }))
    #expect(try NPY.read(data: f8) == Tensor(shape: [2], data: [1.5, -4]))
    let u1 = file("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }\n", [0, 128, 255])
    #expect(try NPY.read(data: u1) == Tensor(shape: [1, 3], data: [0, 128, 255]))
    let scalar = file("{'descr': '<i8', 'fortran_order': False, 'shape': (), }\n", [7, 0, 0, 0, 0, 0, 0, 0])
    #expect(try NPY.read(data: scalar) == Tensor(shape: [], data: [7]))
}

@Test func npyRejectsBadInput() {
    #expect(throws: NPYError.self) { try NPY.read(data: Data("not numpy at all".utf8)) }
    var truncated = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n"
    truncated.append(contentsOf: [UInt8(dict.utf8.count), 0] + Array(dict.utf8) + [0, 0, 0, 0])
    #expect(throws: NPYError.self) { try NPY.read(data: truncated) }
    var fortran = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let fd = "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n"
    fortran.append(contentsOf: [UInt8(fd.utf8.count), 0] + Array(fd.utf8) + [0, 0, 0, 0])
    #expect(throws: NPYError.self) { try NPY.read(data: fortran) }
    #expect(throws: NPYError.self) { try NPY.read(path: "/nonexistent/file.npy") }
}

@Test(.enabled(if: nnSharedAvailable, "needs ../shared/reference (set PROBE_SHARED)"))
func npyReadsTheReferenceArrays() throws {
    let x = try NPY.read(path: sharedDirectory + "/reference/model_input.npy")
    #expect(x.shape == [16, 3, 224, 224])
    // normalized pixels lie within [(0 - 0.485) / 0.229, (1 - 0.406) / 0.225]
    #expect(x.data.min()! >= -2.2 && x.data.max()! <= 2.7)
    let u = try NPY.readUInt8(path: sharedDirectory + "/reference/val_uint8.npy")
    #expect(u.shape == [32, 224, 224, 3])
    // ToTensor + Normalize of the first pixel's red channel reproduces model_input
    let r = (Float(u.bytes[0]) / 255 - 0.485) / 0.229
    #expect(abs(r - x.data[0]) < 1e-5)
}
