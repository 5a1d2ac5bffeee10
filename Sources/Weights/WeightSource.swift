import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A published weight file: torchvision's naming puts the start of the file's SHA-256 after the
/// last '-' ("resnet18-f37072fd.pth"). The architectures' files are listed in Backbones' registry.
public struct KnownWeights: Sendable, Hashable {
    public let fileName: String
    /// The SHA-256 prefix (hex) the file must have.
    public let sha256Prefix: String
    public let url: String

    public static let defaultBaseURL = "https://download.pytorch.org/models/"

    /// `fileName` at `baseURL`; the SHA-256 prefix is read from the name unless given.
    public init(fileName: String, sha256Prefix: String? = nil, baseURL: String = KnownWeights.defaultBaseURL) {
        self.fileName = fileName
        let stem = (fileName as NSString).deletingPathExtension
        self.sha256Prefix = sha256Prefix ?? String(stem.split(separator: "-").last ?? "")
        self.url = baseURL + fileName
    }
}

/// Where a backbone's weights come from: an explicit path; else the cache directory; else a download
/// of torchvision's file into the cache, verified against the SHA-256 prefix in its name.
public struct WeightSource: Sendable {
    /// Fetches `url` into the file `destination` (which must not exist yet), or throws.
    public typealias Fetcher = @Sendable (_ url: URL, _ destination: String) throws -> Void

    public var explicitPath: String?
    public var cacheDirectory: String
    public var allowDownload: Bool
    public var baseURL: String
    public var fetcher: Fetcher

    public static let defaultCacheDirectory = "cache/weights"

    public init(explicitPath: String? = nil, cacheDirectory: String? = nil, allowDownload: Bool = true,
                baseURL: String = KnownWeights.defaultBaseURL, timeout: TimeInterval = 60,
                fetcher: Fetcher? = nil) {
        self.explicitPath = explicitPath
        self.cacheDirectory = cacheDirectory ?? Self.defaultCacheDirectory
        self.allowDownload = allowDownload
        self.baseURL = baseURL
        self.fetcher = fetcher ?? { url, dest in try blockingDownload(url, to: dest, timeout: timeout) }
    }

    /// The cache path of `weights` (absolute when the cache directory is relative to the current directory).
    public func cachePath(_ weights: KnownWeights) -> String {
        let dir = cacheDirectory.hasPrefix("/") ? cacheDirectory
            : FileManager.default.currentDirectoryPath + "/" + cacheDirectory
        return (dir.hasSuffix("/") ? dir : dir + "/") + weights.fileName
    }

    /// A path to a readable weight file for `weights`, downloading it if allowed and needed.
    public func resolve(_ weights: KnownWeights) throws -> String {
        if let explicitPath {
            guard FileManager.default.isReadableFile(atPath: explicitPath) else {
                throw WeightsError.fileNotReadable(path: explicitPath,
                    reason: FileManager.default.fileExists(atPath: explicitPath) ? "permission denied" : "no such file")
            }
            return explicitPath
        }
        let dest = cachePath(weights)
        if FileManager.default.fileExists(atPath: dest) { return dest }
        let url = baseURL + weights.fileName
        guard allowDownload else {
            throw WeightsError.weightsUnavailable(file: weights.fileName, url: url, destination: dest, reason: "not in the cache and downloads are off")
        }
        return try download(weights, url: url, to: dest)
    }

    /// Resolves and loads `weights`. Files from the cache or a download must match the SHA-256 prefix
    /// in their name (a mismatching cached file is deleted); an explicit path is taken as given.
    public func load(_ weights: KnownWeights) throws -> StateDict {
        let path = try resolve(weights)
        let sd = try loadStateDict(path: path)
        if explicitPath == nil && !sd.sha256.hasPrefix(weights.sha256Prefix) {
            try? FileManager.default.removeItem(atPath: path)
            throw WeightsError.checksumMismatch(file: path, expectedPrefix: weights.sha256Prefix, actual: sd.sha256)
        }
        return sd
    }

    private func download(_ weights: KnownWeights, url: String, to dest: String) throws -> String {
        guard let u = URL(string: url) else {
            throw WeightsError.weightsUnavailable(file: weights.fileName, url: url, destination: dest, reason: "bad URL")
        }
        let dir = (dest as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw WeightsError.weightsUnavailable(file: weights.fileName, url: url, destination: dest,
                                                  reason: "cannot create the cache directory \(dir): \(error.localizedDescription)")
        }
        let tmp = dir + "/." + weights.fileName + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        do { try fetcher(u, tmp) } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw WeightsError.weightsUnavailable(file: weights.fileName, url: url, destination: dest,
                                                  reason: "download failed: \(describe(error))")
        }
        let sha: String
        do { sha = try fileSHA256(path: tmp) } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        guard sha.hasPrefix(weights.sha256Prefix) else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw WeightsError.checksumMismatch(file: url, expectedPrefix: weights.sha256Prefix, actual: sha)
        }
        guard rename(tmp, dest) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: tmp)
            throw WeightsError.writeFailed(path: dest, reason: reason)
        }
        return dest
    }
}

/// Checks that the file's SHA-256 starts with `prefix`; on mismatch deletes it and throws.
public func verifySHA256Prefix(path: String, prefix: String) throws {
    let sha = try fileSHA256(path: path)
    guard sha.hasPrefix(prefix.lowercased()) else {
        try? FileManager.default.removeItem(atPath: path)
        throw WeightsError.checksumMismatch(file: path, expectedPrefix: prefix, actual: sha)
    }
}

private func describe(_ error: Error) -> String {
    if let e = error as? URLError { return "\(e.localizedDescription) (URLError \(e.code.rawValue))" }
    return "\(error)"
}

private final class DownloadResult: @unchecked Sendable {
    var error: Error?
}

struct HTTPStatusError: Error, CustomStringConvertible {
    let status: Int
    var description: String { "HTTP status \(status)" }
}

/// Downloads `url` to `destination`, blocking the calling thread.
public func blockingDownload(_ url: URL, to destination: String, timeout: TimeInterval) throws {
    let config = URLSessionConfiguration.ephemeral
    config.timeoutIntervalForRequest = timeout
    let session = URLSession(configuration: config)
    defer { session.finishTasksAndInvalidate() }
    let done = DispatchSemaphore(value: 0)
    let result = DownloadResult()
    let task = session.downloadTask(with: url) { location, response, error in
        defer { done.signal() }
        if let error { result.error = error; return }
        if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            result.error = HTTPStatusError(status: http.statusCode); return
        }
        guard let location else { result.error = URLError(.unknown); return }
        do { try FileManager.default.moveItem(atPath: location.path, toPath: destination) } catch { result.error = error }
    }
    task.resume()
    done.wait()
    if let e = result.error { throw e }
}
