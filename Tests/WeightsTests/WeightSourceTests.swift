import Testing
import Foundation
@testable import Weights
import TestSupport

private final class Calls: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func hit() { lock.lock(); n += 1; lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return n }
}

@Test func explicitPathWins() throws {
    let dir = temporaryDirectory("src")
    let path = dir + "/mine.pth"
    #expect(FileManager.default.createFile(atPath: path, contents: Fixtures.zip))
    let calls = Calls()
    let src = WeightSource(explicitPath: path, cacheDirectory: dir + "/cache", fetcher: { _, _ in calls.hit() })
    #expect(try src.resolve(.resnet18) == path)
    #expect(try src.load(.resnet18).tensors.count == Fixtures.expected.count)   // explicit files are not checksummed
    #expect(calls.count == 0)
    #expect(throws: WeightsError.fileNotReadable(path: dir + "/absent.pth", reason: "no such file")) {
        try WeightSource(explicitPath: dir + "/absent.pth").resolve(.resnet18)
    }
}

@Test func cacheHitDoesNotDownload() throws {
    let dir = temporaryDirectory("cache")
    let cached = dir + "/mobilenet_v2-b0353104.pth"
    #expect(FileManager.default.createFile(atPath: cached, contents: Fixtures.zip))
    let calls = Calls()
    let src = WeightSource(cacheDirectory: dir, fetcher: { _, _ in calls.hit() })
    #expect(try src.resolve(.mobilenetV2) == cached)
    #expect(calls.count == 0)
    // The cached file's hash does not start with b0353104: load() deletes it and says so.
    #expect {
        _ = try src.load(.mobilenetV2)
    } throws: { e in
        guard case let WeightsError.checksumMismatch(file, prefix, _) = e else { return false }
        return file == cached && prefix == "b0353104"
    }
    #expect(!FileManager.default.fileExists(atPath: cached))
}

@Test func relativeCacheDirectoryIsUnderTheCurrentDirectory() {
    let src = WeightSource()
    #expect(src.cachePath(.resnet18) == FileManager.default.currentDirectoryPath + "/cache/weights/resnet18-f37072fd.pth")
}

@Test(arguments: [KnownWeights.defaultBaseURL, "http://127.0.0.1:9/models/"])
func offlineErrorSaysWhatToPutWhere(_ base: String) throws {
    let dir = temporaryDirectory("offline")
    let src = WeightSource(cacheDirectory: dir + "/weights", baseURL: base, timeout: 20)
    let t0 = Date()
    #expect {
        _ = try src.resolve(.resnet18)
    } throws: { e in
        guard case let WeightsError.weightsUnavailable(file, url, destination, _) = e else { return false }
        let text = "\(e)"
        return file == "resnet18-f37072fd.pth" && url == base + "resnet18-f37072fd.pth"
            && destination == dir + "/weights/resnet18-f37072fd.pth"
            && text.contains(url) && text.contains(destination) && text.contains("--weights PATH")
    }
    print("offline error after \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
    // Nothing half-written is left behind.
    let left = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/weights")) ?? []
    #expect(left.isEmpty, "\(left)")
}

@Test func downloadsOffWithoutCacheSaysWhere() {
    let dir = temporaryDirectory("nodl")
    #expect(throws: WeightsError.weightsUnavailable(file: "mobilenet_v2-b0353104.pth", url: KnownWeights.mobilenetV2.url,
                                                    destination: dir + "/mobilenet_v2-b0353104.pth",
                                                    reason: "not in the cache and downloads are off")) {
        try WeightSource(cacheDirectory: dir, allowDownload: false).resolve(.mobilenetV2)
    }
}

@Test func downloadWithWrongChecksumIsDeleted() throws {
    let dir = temporaryDirectory("sum")
    let local = dir + "/local.bin"
    #expect(FileManager.default.createFile(atPath: local, contents: Fixtures.legacy))
    let calls = Calls()
    let src = WeightSource(cacheDirectory: dir + "/cache", fetcher: { _, dest in
        calls.hit()
        try FileManager.default.copyItem(atPath: local, toPath: dest)
    })
    #expect {
        _ = try src.resolve(.resnet18)
    } throws: { e in
        guard case let WeightsError.checksumMismatch(_, prefix, actual) = e else { return false }
        return prefix == "f37072fd" && actual.count == 64 && !actual.hasPrefix("f37072fd")
    }
    #expect(calls.count == 1)
    #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/cache")) ?? ["?"]).isEmpty)
}

@Test func sha256PrefixVerification() throws {
    let dir = temporaryDirectory("verify")
    let path = dir + "/f.bin"
    #expect(FileManager.default.createFile(atPath: path, contents: Data("abc".utf8)))
    try verifySHA256Prefix(path: path, prefix: "ba7816bf")           // SHA-256("abc") = ba7816bf...
    #expect(FileManager.default.fileExists(atPath: path))
    #expect(throws: WeightsError.self) { try verifySHA256Prefix(path: path, prefix: "f37072fd") }
    #expect(!FileManager.default.fileExists(atPath: path))
}

// torchvision's files as the registry in Backbones lists them (Weights does not know architectures).
extension KnownWeights {
    static let resnet18 = KnownWeights(fileName: "resnet18-f37072fd.pth")
    static let mobilenetV2 = KnownWeights(fileName: "mobilenet_v2-b0353104.pth")
}

@Test func knownWeightsReadTheSHA256PrefixFromTheName() {
    #expect(KnownWeights.resnet18.sha256Prefix == "f37072fd")
    #expect(KnownWeights(fileName: "resnet50-11ad3fa6.pth").sha256Prefix == "11ad3fa6")
    #expect(KnownWeights.mobilenetV2.url == "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth")
}
