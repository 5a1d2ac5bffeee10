import Foundation
import Testing
@testable import Vision
import TestSupport

@Suite("PIL/torchvision parity", .enabled(if: sharedAvailable, "needs ../shared/reference and ../shared/data (set PROBE_SHARED)"))
struct ParityTests {
    @Test("Resize(256)+CenterCrop(224) uint8 matches val_uint8.npy")
    func valUint8() throws {
        let ref = try NPY(path: sharedDirectory + "/reference/val_uint8.npy")
        #expect(ref.shape == [32, 224, 224, 3])
        let refBytes = ref.uint8
        let images = try manifestImages()
        #expect(images.count == 32)
        var equal = 0, total = 0, maxDiff = 0
        for (n, rel) in images.enumerated() {
            let img = try ImageDecoder.decode(path: datasetRoot + "/" + rel)
            let out = Transforms.resizeCenterCrop(img)
            let base = n * 224 * 224 * 3
            var eq = 0, md = 0
            for i in 0..<(224 * 224 * 3) {
                let d = abs(Int(out.pixels[i]) - Int(refBytes[base + i]))
                if d == 0 { eq += 1 }
                md = max(md, d)
            }
            if md > 0 { print("parity \(rel): max diff \(md), equal \(eq)/\(224 * 224 * 3)") }
            equal += eq; total += 224 * 224 * 3; maxDiff = max(maxDiff, md)
        }
        let share = Double(equal) / Double(total)
        print("val_uint8 parity: \(equal)/\(total) values equal (\(String(format: "%.6f", share * 100))%), max abs diff \(maxDiff)")
        #expect(maxDiff <= 1)
        #expect(share >= 0.99)
    }

    @Test("fused validation transform matches model_input.npy")
    func modelInput() throws {
        let ref = try NPY(path: sharedDirectory + "/reference/model_input.npy")
        #expect(ref.shape == [16, 3, 224, 224])
        let refF = ref.float32
        let images = try manifestImages()
        let per = 3 * 224 * 224
        var batch = [Float](repeating: .nan, count: 16 * per)
        var maxErr: Float = 0
        try batch.withUnsafeMutableBufferPointer { b in
            for n in 0..<16 {
                let img = try ImageDecoder.decode(path: datasetRoot + "/" + images[n])
                Transforms.validation(img, into: b.baseAddress! + n * per)
            }
        }
        for i in 0..<(16 * per) { maxErr = max(maxErr, abs(batch[i] - refF[i])) }
        print("model_input parity: max abs diff \(maxErr)")
        #expect(maxErr <= 1e-6)
    }
}
