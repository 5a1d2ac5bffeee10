import Foundation
import Testing
@testable import Weights
import TestSupport

/// A failed download leaves nothing behind: not in the destination's directory, and not in the
/// process's temporary directory (Foundation's download tasks used to leave an empty
/// `<UUID>.tmp` there for every failure; `probe demo` collected one per attempt).
@Suite(.serialized) struct DownloadCleanupTests {
    /// Runs `body` with TMPDIR pointing at a fresh private directory and returns what is left in it.
    func leftInTemporaryDirectory(_ body: () throws -> Void) rethrows -> [String] {
        let fm = FileManager.default
        let tmp = temporaryDirectory("tmpdir")
        defer { try? fm.removeItem(atPath: tmp) }
        let saved = getenv("TMPDIR").map { String(cString: $0) }
        setenv("TMPDIR", tmp, 1)
        defer { if let saved { setenv("TMPDIR", saved, 1) } else { unsetenv("TMPDIR") } }
        #expect(fm.temporaryDirectory.path == tmp || NSTemporaryDirectory().hasPrefix(tmp))
        try body()
        return ((try? fm.contentsOfDirectory(atPath: tmp)) ?? []).sorted()
    }

    /// Port 9 on the loopback refuses the connection at once: the download fails fast, offline or not.
    @Test func failedDownloadLeavesNoTemporaryFile() throws {
        let dir = temporaryDirectory("dl-fail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for attempt in 0..<3 {
            let left = leftInTemporaryDirectory {
                #expect(throws: (any Error).self) {
                    try blockingDownload(URL(string: "http://127.0.0.1:9/models/x.pth")!, to: dir + "/x.pth.part", timeout: 10)
                }
            }
            #expect(left.isEmpty, "attempt \(attempt) left \(left) in the temporary directory")
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).isEmpty)
    }

    /// The same through WeightSource (what `probe demo`, extract and finetune use).
    @Test func failedWeightFetchLeavesNoTemporaryFile() throws {
        let dir = temporaryDirectory("dl-source")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = WeightSource(cacheDirectory: dir + "/weights", baseURL: "http://127.0.0.1:9/models/", timeout: 10)
        let left = leftInTemporaryDirectory {
            #expect(throws: WeightsError.self) { _ = try src.resolve(.mobilenetV2) }
        }
        #expect(left.isEmpty, "left \(left) in the temporary directory")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/weights")) ?? []).isEmpty)
    }

    /// A local HTTP server (python3 -m http.server) serving `dir`, stopped by the caller.
    func startServer(_ dir: String) throws -> (Process, Int)? {
        for _ in 0..<5 {
            let port = Int.random(in: 20000..<60000)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dir]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            for _ in 0..<100 where p.isRunning {   // up to 5 s for it to listen
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_port = in_port_t(UInt16(port).bigEndian)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                let ok = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
                }
                close(fd)
                if ok { return (p, port) }
                usleep(50_000)
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        }
        return nil
    }

    static let python3 = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

    /// The streamed download writes exactly the served bytes; a 404 and an existing destination
    /// are errors that leave no file (and the existing one untouched); nothing goes to TMPDIR.
    @Test(.enabled(if: python3, "needs python3 for a local HTTP server"))
    func downloadFromALocalServer() throws {
        let served = temporaryDirectory("served"), dir = temporaryDirectory("dl-ok")
        defer { try? FileManager.default.removeItem(atPath: served); try? FileManager.default.removeItem(atPath: dir) }
        var bytes = [UInt8](repeating: 0, count: 3_000_001)
        var x: UInt32 = 12345
        for i in bytes.indices { x = x &* 1664525 &+ 1013904223; bytes[i] = UInt8(x >> 24) }
        #expect(FileManager.default.createFile(atPath: served + "/w.pth", contents: Data(bytes)))
        guard let (server, port) = try startServer(served) else { Issue.record("could not start a local HTTP server"); return }
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }   // SIGTERM may be ignored (inherited)
        let base = "http://127.0.0.1:\(port)/"
        let left = try leftInTemporaryDirectory {
            try blockingDownload(URL(string: base + "w.pth")!, to: dir + "/ok.pth", timeout: 20)
            #expect(throws: HTTPStatusError.self) {
                try blockingDownload(URL(string: base + "absent.pth")!, to: dir + "/absent.pth", timeout: 20)
            }
            #expect(FileManager.default.createFile(atPath: dir + "/existing.pth", contents: Data("mine".utf8)))
            #expect(throws: WeightsError.self) {
                try blockingDownload(URL(string: base + "w.pth")!, to: dir + "/existing.pth", timeout: 20)
            }
        }
        #expect(left.isEmpty, "left \(left) in the temporary directory")
        #expect(readBytes(dir + "/ok.pth") == bytes)
        #expect(readBytes(dir + "/existing.pth") == Array("mine".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["existing.pth", "ok.pth"])
    }
}
