import Foundation
import Testing
import NN
import OutputFiles
@testable import Weights
import TestSupport

// Issue 12, defect 1 for `probe heads export` and finetuning outputs: the weight writers (torch
// zip, safetensors) never replace a non-regular file, nor a file they are told to protect.

private func kind(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

@Test func weightWritersRefuseNonRegularFiles() throws {
    let dir = temporaryDirectory("writers-refuse")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let t = [("weight", Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])), ("bias", Tensor(shape: [2], data: [0, 1]))]
    let real = dir + "/real.pth", link = dir + "/link.pth", fifo = dir + "/fifo.pth"
    try Data("keep".utf8).write(to: URL(fileURLWithPath: real))
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
    #expect(mkfifo(fifo, 0o644) == 0)
    for path in [link, fifo] {
        #expect(throws: OutputFileError.self, "torch zip over \(path)") { try writeTorchZip(t, to: path) }
        #expect(throws: OutputFileError.self, "safetensors over \(path)") { try writeSafetensors(t, to: path) }
    }
    #expect(kind(link) == S_IFLNK && kind(fifo) == S_IFIFO)
    #expect(try String(contentsOfFile: real, encoding: .utf8) == "keep")
    // A device node, when this process may make one (root).
    let device = dir + "/full.pth"
    if mknod(device, S_IFCHR | 0o666, 0x107) == 0 {
        #expect(throws: OutputFileError.notRegularFile(path: device, kind: "a character device")) { try writeTorchZip(t, to: device) }
        #expect(kind(device) == S_IFCHR)
    } else {
        print("weightWritersRefuseNonRegularFiles: mknod not permitted here; the device case is skipped")
    }
    // A regular file is replaced, whole, and no temporary file is left.
    try writeTorchZip(t, to: real)
    #expect(readBytes(real).prefix(2) == [0x50, 0x4B])   // "PK": a zip
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }.isEmpty)
}

// MARK: kill -9 while writing weights (heads export, finetune output)

private let weightsChild = ProcessInfo.processInfo.environment["PROBE_WEIGHTS_KILL_CHILD"]

/// A 16 MB state_dict, the same bytes every time.
private func bigStateDict() -> [(name: String, tensor: Tensor)] {
    [("weight", Tensor(shape: [1000, 4096], data: (0..<4_096_000).map { Float($0 % 977) * 0.5 })), ("bias", Tensor(shape: [1000], data: [Float](repeating: 1, count: 1000)))]
}

/// Not a test on its own: the child of `killedWeightWriterLeavesOldOrNewFileWhole`.
@Test(.enabled(if: weightsChild != nil, "child process of killedWeightWriterLeavesOldOrNewFileWhole"))
func weightsKillChild() throws {
    let t = bigStateDict()
    for i in 0..<100_000 {
        if i % 2 == 0 { try writeTorchZip(t, to: weightsChild! + ".pth") } else { try writeSafetensors(t, to: weightsChild! + ".safetensors") }
    }
}

#if os(Linux)
private let canSpawnWeightsChild = true
#else
private let canSpawnWeightsChild = false
#endif

/// kill -9 at 20 random moments of writing .pth and .safetensors files over previous ones: each
/// file is the previous one or the new one, whole.
@Test(.enabled(if: weightsChild == nil && canSpawnWeightsChild, "needs to re-run the test executable as a child (Linux)"))
func killedWeightWriterLeavesOldOrNewFileWhole() throws {
    let dir = temporaryDirectory("writers-kill")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let base = dir + "/head", t = bigStateDict()
    try writeTorchZip(t, to: base + ".pth")
    try writeSafetensors(t, to: base + ".safetensors")
    let pth = readBytes(base + ".pth"), st = readBytes(base + ".safetensors")
    func temporaries() -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".tmp-") }.count }
    var midWrite = 0
    for round in 0..<20 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["--testing-library", "swift-testing", "--filter", "weightsKillChild"]
        var env = ProcessInfo.processInfo.environment
        env["PROBE_WEIGHTS_KILL_CHILD"] = base
        child.environment = env
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        let deadline = Date().addingTimeInterval(20)
        while temporaries() == 0 && child.isRunning && Date() < deadline { usleep(1000) }
        usleep(UInt32.random(in: 0..<300_000))
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal, "round \(round): the child exited on its own")
        if temporaries() > 0 { midWrite += 1 }
        #expect(readBytes(base + ".pth") == pth, "round \(round): the .pth is not whole")
        #expect(readBytes(base + ".safetensors") == st, "round \(round): the .safetensors is not whole")
    }
    print("killed weight writer: 20 kills, \(midWrite) while a temporary file was being written")
}
