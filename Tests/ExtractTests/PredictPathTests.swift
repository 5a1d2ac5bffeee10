import Foundation
import Testing
import Store
import Workflows
import TestSupport

@Suite struct PredictPathTests {
    /// `predict DIR` used to say "no such file".
    @Test func predictOnADirectorySaysItIsADirectory() throws {
        let dir = temporaryDirectory("predictdir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let backbone = try store.backbone(architecture: "mobilenet_v2", weightsSHA256: String(repeating: "0", count: 64), dimension: 1280)
        do {
            _ = try featuresOfImages([dir], store: store, backbone: backbone, weightsPath: nil)
            Issue.record("expected an error")
        } catch {
            let message = "\(error)"
            #expect(message.contains("is a directory") && message.contains("probe extract \(dir)"), "\(message)")
        }
        do {
            _ = try featuresOfImages([dir + "/missing.jpg"], store: store, backbone: backbone, weightsPath: nil)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("no such file"), "\(error)")
        }
    }
}
