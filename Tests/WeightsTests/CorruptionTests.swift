import Testing
import Reproducible
import Foundation
@testable import Weights
import TestSupport

/// Parses `bytes` (no hashing, to keep loops fast); true when it threw a WeightsError.
func parseThrows(_ bytes: UnsafeRawBufferPointer) -> Bool {
    do {
        let f = try sniffFormat(bytes)
        _ = try parseTensors(bytes, format: f)
        return false
    } catch is WeightsError {
        return true
    } catch {
        Issue.record("untyped error \(error)")
        return true
    }
}

/// The pickle of a tiny zip file, re-packed into a fresh archive under `folder`.
func zipWithPickle(_ pickle: [UInt8], folder: String = "archive", storages: [[Float]] = []) -> [UInt8] {
    var z = ZipWriter()
    z.add(name: folder + "/data.pkl", bytes: pickle)
    for (i, s) in storages.enumerated() { s.withUnsafeBytes { z.add(name: folder + "/data/\(i)", data: $0) } }
    return z.finish()
}

func fixturePickle() throws -> [UInt8] {
    try Fixtures.zip.withUnsafeBytes { raw in
        let entries = try ZipReader.entries(raw)
        let e = try #require(entries.first { $0.name.hasSuffix("/data.pkl") })
        return Array(try ZipReader.data(raw, e))
    }
}

@Test func zeroByteAndTinyFiles() throws {
    let dir = temporaryDirectory("zero")
    let path = dir + "/empty.pth"
    #expect(FileManager.default.createFile(atPath: path, contents: Data()))
    #expect(throws: WeightsError.unknownFormat(path: path, firstBytes: "(empty file)")) { try loadStateDict(path: path) }
    #expect(throws: WeightsError.self) { try loadStateDict(path: dir + "/absent.pth") }
    for prefix in [[0x50, 0x4B, 0x03, 0x04], [0x80, 0x02], [0x80], [0x10, 0, 0, 0, 0, 0, 0, 0, 0x7B]] as [[UInt8]] {
        #expect(prefix.withUnsafeBytes { parseThrows($0) })
    }
}

@Test func truncatedZipFixtureAtEveryOffset() {
    let bytes = [UInt8](Fixtures.zip)
    bytes.withUnsafeBytes { raw in
        for n in 0..<raw.count {
            #expect(parseThrows(UnsafeRawBufferPointer(rebasing: raw[0..<n])), "truncated at \(n)")
        }
    }
}

@Test(arguments: ["legacy", "safetensors"])
func truncatedFixtureAtEveryOffset(_ which: String) {
    let bytes = [UInt8](which == "legacy" ? Fixtures.legacy : Fixtures.safetensors)
    bytes.withUnsafeBytes { raw in
        for n in 0..<raw.count {
            #expect(parseThrows(UnsafeRawBufferPointer(rebasing: raw[0..<n])), "truncated at \(n)")
        }
    }
}

@Test func truncatedPickleInsideAValidZip() throws {
    let pk = try fixturePickle()
    for n in 0..<pk.count {
        let z = zipWithPickle(Array(pk[0..<n]))
        #expect(z.withUnsafeBytes { parseThrows($0) }, "pickle truncated at \(n)")
    }
}

@Test(.enabled(if: sharedAvailable, "needs ../shared"))
func truncatedRealFilesAtManyOffsets() throws {
    for path in [mobilenetPath, resnetPath] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        data.withUnsafeBytes { raw in
            // Dense near the start (headers, pickles), then spread over the storages, then the zip's tail.
            var points = Array(stride(from: 0, to: min(raw.count, 50_000), by: 97))
            points += Array(stride(from: 50_000, to: raw.count, by: max(1, raw.count / 150)))
            points += (1...64).map { raw.count - $0 } + [raw.count - 22, raw.count - 200, raw.count - 5_000]
            for n in points where n >= 0 && n < raw.count {
                #expect(parseThrows(UnsafeRawBufferPointer(rebasing: raw[0..<n])), "\(path) truncated at \(n)")
            }
            #expect(!parseThrows(raw))
        }
    }
}

@Test func flippedBytesNeverCrash() throws {
    var rng = SplitMix64(seed: 42)
    var errors = 0, total = 0
    for original in [[UInt8](Fixtures.zip), [UInt8](Fixtures.legacy), [UInt8](Fixtures.safetensors)] {
        for _ in 0..<1500 {
            var b = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<b.count, using: &rng)
                b[i] ^= UInt8.random(in: 1...255, using: &rng)
            }
            if b.withUnsafeBytes({ parseThrows($0) }) { errors += 1 }
            total += 1
        }
    }
    // Flips in raw tensor bytes are undetectable; flips in structure must have been caught.
    #expect(errors > total / 10, "\(errors) of \(total) corrupted files were refused")
}

@Test func randomBytesAreRefused() {
    var rng = SplitMix64(seed: 7)
    let prefixes: [[UInt8]] = [[], [0x50, 0x4B, 0x03, 0x04], [0x80, 0x02], [0x80, 0x02, 0x8A, 0x0A], [0x40, 0, 0, 0, 0, 0, 0, 0, 0x7B]]
    for i in 0..<2000 {
        let n = Int.random(in: 0...600, using: &rng)
        let b = prefixes[i % prefixes.count] + (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(b.withUnsafeBytes { parseThrows($0) })
    }
}

// MARK: refusal of code

func pickleCalling(_ module: String, _ name: String, arg: String) -> [UInt8] {
    var p = PickleWriter()
    p.proto(2); p.global(module, name); p.mark(); p.unicode(arg); p.tuple(); p.reduce(); p.stop()
    return p.bytes
}

@Test func picklesNamingOtherGlobalsAreRefused() {
    let cases: [(String, String)] = [("posix", "system"), ("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"),
                                     ("torch", "load"), ("torch._utils", "_rebuild_qtensor"), ("collections", "deque")]
    for (m, n) in cases {
        let z = zipWithPickle(pickleCalling(m, n, arg: "echo pwned > /tmp/pwned"))
        #expect(throws: WeightsError.forbiddenGlobal(module: m, name: n)) {
            _ = try z.withUnsafeBytes { try loadStateDict(bytes: $0) }
        }
    }
    // STACK_GLOBAL (protocol 4) is checked the same way.
    var p = [UInt8]([0x80, 4])
    for s in ["posix", "system"] { p += [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }
    p += [0x93, 0x8C, 2] + Array("ls".utf8) + [0x85, 0x52, 0x2E]
    let z = zipWithPickle(p)
    #expect(throws: WeightsError.forbiddenGlobal(module: "posix", name: "system")) {
        _ = try z.withUnsafeBytes { try loadStateDict(bytes: $0) }
    }
    #expect("\(WeightsError.forbiddenGlobal(module: "posix", name: "system"))".contains("posix.system"))
    // Allowed names may not be called in other ways: a storage type is not callable.
    let s = zipWithPickle(pickleCalling("torch", "FloatStorage", arg: "x"))
    #expect(s.withUnsafeBytes { parseThrows($0) })
}

@Test func malformedTensorViewsAreRefused() {
    // A view reaching past its storage, a storage shorter than its declared numel.
    func file(numel: Int, stored: Int, offset: Int, shape: [Int], stride: [Int]) -> [UInt8] {
        var p = PickleWriter()
        p.proto(2); p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce(); p.mark()
        p.unicode("w"); p.global("torch._utils", "_rebuild_tensor_v2"); p.mark(); p.mark()
        p.unicode("storage"); p.global("torch", "FloatStorage"); p.unicode("0"); p.unicode("cpu"); p.int(numel); p.tuple(); p.binpersid()
        p.int(offset); p.intTuple(shape); p.intTuple(stride); p.bool(false)
        p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce(); p.tuple(); p.reduce(); p.setItems(); p.stop()
        return zipWithPickle(p.bytes, storages: [[Float](repeating: 1, count: stored)])
    }
    #expect(!file(numel: 6, stored: 6, offset: 0, shape: [2, 3], stride: [3, 1]).withUnsafeBytes { parseThrows($0) })
    #expect(file(numel: 6, stored: 6, offset: 1, shape: [2, 3], stride: [3, 1]).withUnsafeBytes { parseThrows($0) })
    #expect(file(numel: 6, stored: 6, offset: 0, shape: [3, 3], stride: [3, 1]).withUnsafeBytes { parseThrows($0) })
    #expect(file(numel: 6, stored: 4, offset: 0, shape: [2, 3], stride: [3, 1]).withUnsafeBytes { parseThrows($0) })
    #expect(file(numel: 6, stored: 6, offset: 0, shape: [2, 3], stride: [1 << 40, 1]).withUnsafeBytes { parseThrows($0) })
    #expect(file(numel: 6, stored: 6, offset: 0, shape: [1 << 39, 1 << 39], stride: [0, 0]).withUnsafeBytes { parseThrows($0) })
    #expect(file(numel: 6, stored: 6, offset: 0, shape: [1 << 32], stride: [0]).withUnsafeBytes { parseThrows($0) })
    #expect(!file(numel: 6, stored: 6, offset: 0, shape: [4, 6], stride: [0, 1]).withUnsafeBytes { parseThrows($0) })  // expand()
}

@Test func deeplyNestedPicklesAreRefusedNotCrashing() {
    // One million nested 1-tuples, lists and dicts in a few MB: refused before they can blow the stack.
    let n = 1_000_000
    let tuples = [UInt8]([0x80, 2, 0x4E]) + [UInt8](repeating: 0x85, count: n) + [0x2E]
    var nestedLists = [UInt8]([0x80, 2])
    for _ in 0..<n { nestedLists += [0x5D] }                 // push n empty lists
    for _ in 0..<(n - 1) { nestedLists += [0x61] }           // append each into the one below
    nestedLists += [0x2E]
    var wide = [UInt8]([0x80, 2, 0x28]) + [UInt8](repeating: 0x4E, count: 1000) + [0x74, 0x94]   // t0 = (None,)*1000
    for _ in 0..<50 { wide += [0x28] + [UInt8](repeating: 0x32, count: 999) + [0x74, 0x94] }     // t_{k+1} = (t_k,)*1000
    wide += [0x2E]
    for (name, pk) in [("tuples", tuples), ("lists", nestedLists), ("wide", wide)] {
        let z = zipWithPickle(pk)
        #expect(throws: WeightsError.self, "\(name)") { _ = try z.withUnsafeBytes { try loadStateDict(bytes: $0) } }
        do { _ = try z.withUnsafeBytes { try loadStateDict(bytes: $0) } } catch {
            #expect("\(error)".contains("nested"), "\(name): \(error)")
        }
    }
}
