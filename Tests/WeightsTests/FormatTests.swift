import Testing
import Foundation
import NN
@testable import Weights
import TestSupport

func withBytes<T>(_ d: Data, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
    try d.withUnsafeBytes { try body($0) }
}

func checkFixture(_ sd: StateDict) {
    #expect(sd.names == Fixtures.expected.map(\.name))
    for e in Fixtures.expected {
        guard let t = sd[e.name] else { Issue.record("missing \(e.name)"); continue }
        #expect(t.dtype.rawValue == e.dtype, "\(e.name)")
        #expect(t.shape == e.shape, "\(e.name)")
        #expect(t.values.map(\.bitPattern) == e.bits, "\(e.name) values")
        #expect(t.int64Values == e.ints, "\(e.name) int64 values")
    }
}

@Test func fixtureZipViewsDtypesSharedStorages() throws {
    let sd = try withBytes(Fixtures.zip) { try loadStateDict(bytes: $0) }
    #expect(sd.format == .pthZip)
    checkFixture(sd)
}

@Test func fixtureLegacyViewsDtypesSharedStorages() throws {
    let sd = try withBytes(Fixtures.legacy) { try loadStateDict(bytes: $0) }
    #expect(sd.format == .pthLegacy)
    checkFixture(sd)
}

// MARK: round trips

@Test func safetensorsRoundTrip() throws {
    let dir = temporaryDirectory("st")
    let path = dir + "/m.safetensors"
    let a = Tensor(shape: [2, 3], data: [1, -2.5, 3, .pi, -0, 1e-30])
    let b = Tensor(shape: [], data: [42])
    let c = Tensor(shape: [0, 4], data: [])
    try writeSafetensors([("layer.a", a), ("z.b \"quoted\"", b), ("c", c)], metadata: ["format": "pt", "by": "probe"], to: path)
    let sd = try loadStateDict(path: path)
    #expect(sd.format == .safetensors)
    #expect(sd.names == ["layer.a", "z.b \"quoted\"", "c"])
    #expect(try sd.tensor("layer.a").data.map(\.bitPattern) == a.data.map(\.bitPattern))
    #expect(try sd.tensor("layer.a").shape == [2, 3])
    #expect(try sd.tensor("z.b \"quoted\"") == b)
    #expect(try sd.tensor("c").shape == [0, 4])
    #expect(sd.metadata == ["format": "pt", "by": "probe"])
    let bytes = readBytes(path)
    let n = Int(bytes[0]) | Int(bytes[1]) << 8
    #expect((8 + n) % 8 == 0)
    // int64 tensors survive as I64
    let p2 = dir + "/i.safetensors"
    try writeSafetensors([WeightTensor(name: "n", dtype: .int64, shape: [2], values: [1, 5_000_000_000], int64Values: [1, 5_000_000_000])], to: p2)
    let sd2 = try loadStateDict(path: p2)
    #expect(sd2["n"]?.dtype == .int64 && sd2["n"]?.int64Values == [1, 5_000_000_000])
}

@Test func torchZipRoundTripIsBitIdentical() throws {
    let dir = temporaryDirectory("tz")
    let path = dir + "/out.pth"
    var rng = SystemRandomNumberGenerator()
    let w = Tensor(shape: [8, 3, 3, 3], data: (0..<216).map { _ in Float.random(in: -1...1, using: &rng) })
    let bias = Tensor(shape: [8], data: (0..<8).map { Float($0) * 0.1 })
    let big = Tensor(shape: [300, 70], data: (0..<21000).map { Float($0) })
    try writeTorchZip([("conv.weight", w), ("conv.bias", bias), ("fc.weight", big)],
                      int64s: [("bn.num_batches_tracked", [123_456_789_012], [])], to: path)
    let sd = try loadStateDict(path: path)
    #expect(sd.format == .pthZip)
    #expect(sd.names == ["conv.weight", "conv.bias", "fc.weight", "bn.num_batches_tracked"])
    #expect(try sd.tensor("conv.weight").data.map(\.bitPattern) == w.data.map(\.bitPattern))
    #expect(try sd.tensor("conv.weight").shape == [8, 3, 3, 3])
    #expect(try sd.tensor("conv.bias") == bias)
    #expect(try sd.tensor("fc.weight") == big)
    #expect(sd["bn.num_batches_tracked"]?.int64Values == [123_456_789_012])
    #expect(sd["bn.num_batches_tracked"]?.shape == [])
    // Data records are 64-byte aligned as torch writes them.
    let bytes = readBytes(path)
    try bytes.withUnsafeBytes { raw in
        for e in try ZipReader.entries(raw) where e.name.contains("/data/") {
            let d = try ZipReader.data(raw, e)
            #expect((d.baseAddress! - raw.baseAddress!) % 64 == 0, "\(e.name)")
        }
    }
}

@Test(.enabled(if: sharedAvailable, "needs ../shared"))
func rewriteRealFileIsBitIdentical() throws {
    let sd = try loadStateDict(path: mobilenetPath)
    let path = temporaryDirectory("rw") + "/mnv2.pth"
    try writeTorchZip(sd.tensors, to: path)
    let back = try loadStateDict(path: path)
    #expect(back.names == sd.names)
    for (a, b) in zip(sd.tensors, back.tensors) {
        #expect(a.dtype == b.dtype && a.shape == b.shape && a.int64Values == b.int64Values)
        #expect(a.values.map(\.bitPattern) == b.values.map(\.bitPattern), "\(a.name)")
    }
}

@Test func zip64ArchivesAreRead() throws {
    var p = PickleWriter()
    p.proto(2); p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
    p.unicode("w"); p.global("torch._utils", "_rebuild_tensor_v2"); p.mark(); p.mark()
    p.unicode("storage"); p.global("torch", "FloatStorage"); p.unicode("0"); p.unicode("cpu"); p.int(3); p.tuple(); p.binpersid()
    p.int(0); p.intTuple([3]); p.intTuple([1]); p.bool(false)
    p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce(); p.tuple(); p.reduce()
    var z = ZipWriter(forceZip64: true)
    z.add(name: "weird-name/data.pkl", bytes: p.bytes + [0x73, 0x2E])   // SETITEM, STOP
    let vals: [Float] = [1, 2, 3]
    vals.withUnsafeBytes { z.add(name: "weird-name/data/0", data: $0) }
    let archive = z.finish()
    let sd = try archive.withUnsafeBytes { try loadStateDict(bytes: $0) }
    #expect(sd["w"]?.values == [1, 2, 3])
}

@Test func compressedEntriesAreRefused() throws {
    var bytes = [UInt8](Fixtures.zip)
    let cd = try bytes.withUnsafeBytes { try ZipReader.entries($0) }
    #expect(cd.first?.name.hasSuffix("data.pkl") == true)
    // The end record (22 bytes, no comment) holds the central directory's offset at +16; the first
    // central record is data.pkl's, its method at +10. Mark it deflated (8).
    let eocd = bytes.count - 22
    let cdOffset = Int(bytes[eocd + 16]) | Int(bytes[eocd + 17]) << 8 | Int(bytes[eocd + 18]) << 16 | Int(bytes[eocd + 19]) << 24
    #expect(bytes[cdOffset..<(cdOffset + 4)] == [0x50, 0x4B, 1, 2])
    bytes[cdOffset + 10] = 8
    #expect(throws: WeightsError.compressedEntry(name: cd[0].name, method: 8)) {
        _ = try bytes.withUnsafeBytes { try loadStateDict(bytes: $0) }
    }
}

@Test func sniffing() throws {
    #expect(try withBytes(Fixtures.zip) { try sniffFormat($0) } == .pthZip)
    #expect(try withBytes(Fixtures.legacy) { try sniffFormat($0) } == .pthLegacy)
    #expect(throws: WeightsError.self) { try [UInt8]("hello world".utf8).withUnsafeBytes { try sniffFormat($0) } }
}

/// Writes resnet18-ref re-exported by probe for tools/check_torch_load.py (checks the read-back itself):
///   PROBE_EXPORT_DIR=/tmp/x swift test --filter exportForTorchCheck
///   python3 tools/check_torch_load.py /tmp/x/resnet18-probe.pth ../shared/reference/resnet18-ref.pth
@Test(.enabled(if: sharedAvailable, "needs ../shared"),
      .enabled(if: ProcessInfo.processInfo.environment["PROBE_EXPORT_DIR"] != nil, "set PROBE_EXPORT_DIR to export files for tools/check_torch_load.py"))
func exportForTorchCheck() throws {
    let dir = ProcessInfo.processInfo.environment["PROBE_EXPORT_DIR"] ?? temporaryDirectory("export")
    let sd = try loadStateDict(path: resnetPath)
    let floats = sd.tensors.filter { $0.dtype == .float32 }.map { ($0.name, $0.tensor) }
    let ints = sd.tensors.compactMap { t in t.int64Values.map { (t.name, $0, t.shape) } }
    // Keep torchvision's order: write everything through the WeightTensor overload.
    try writeTorchZip(sd.tensors, to: dir + "/resnet18-probe.pth")
    try writeTorchZip(floats, int64s: ints, to: dir + "/resnet18-probe-tuples.pth")
    try writeSafetensors(floats, metadata: ["source": "resnet18-ref.pth"], to: dir + "/resnet18-probe.safetensors")
    let back = try loadStateDict(path: dir + "/resnet18-probe.pth")
    #expect(back.names == sd.names)
    #expect(zip(back.tensors, sd.tensors).allSatisfy { $0.values == $1.values && $0.int64Values == $1.int64Values })
    let st = try loadStateDict(path: dir + "/resnet18-probe.safetensors")
    #expect(st.tensors.count == floats.count && st.metadata["source"] == "resnet18-ref.pth")
    // The legacy MobileNetV2 file, re-exported in the zip format.
    let m = try loadStateDict(path: mobilenetPath)
    try writeTorchZip(m.tensors, to: dir + "/mobilenetv2-probe.pth")
    #expect(try loadStateDict(path: dir + "/mobilenetv2-probe.pth").names == m.names)
}

@Test func safetensorsFromTheReferenceLibrary() throws {
    let sd = try withBytes(Fixtures.safetensors) { try loadStateDict(bytes: $0) }
    #expect(sd.format == .safetensors)
    #expect(sd.metadata == ["format": "pt"])
    #expect(sd["a"]?.shape == [2, 3] && sd["a"]?.values == [0, 1, 2, 3, 4, 5])
    #expect(sd["h"]?.dtype == .float16 && sd["h"]?.values == [1.5, -2])
    #expect(sd["b"]?.dtype == .bfloat16 && sd["b"]?.values.map(\.bitPattern) == [0x3DCD_0000, 0x4040_0000])
    #expect(sd["i"]?.dtype == .int64 && sd["i"]?.int64Values == [5, -1])
}
