import Foundation
import Testing
import NN
@testable import Weights

// Issue 12, defect 1 for `probe heads export` and finetuning outputs: the weight writers (torch
// zip, safetensors) never replace a non-regular file, nor a file they are told to protect.

private func kind(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

@Test func weightWritersRefuseNonRegularFiles() throws {
    let dir = tempDir("writers-refuse")
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
