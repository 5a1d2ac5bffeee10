import Foundation
import OutputFiles

/// What a finished finetuning run did, written beside its weights as `OUT-summary.json` (OUT
/// without its `.pth`, like the training curves OUT-loss.png and OUT-accuracy.png): the settings, every epoch's metrics, the best validation accuracy and the wall time.
/// `probe report --finetuned OUT.pth` reads it to put the finetuned network beside a head trained
/// on cached features.
public struct FinetuneSummary: Sendable, Codable, Equatable {
    public var format = "probe-finetune-summary/1"
    public var weights: String
    public var dataset: String
    public var architecture: String
    /// The pretrained weights the run started from (nil: a random initialisation).
    public var initialWeights: String?
    public var classes: [String]
    public var options: FinetuneOptions
    public var epochs: [FinetuneEpochMetrics]
    public var bestValidationAccuracy: Double?
    public var bestEpoch: Int?
    /// Wall time of the whole run (all sessions of a resumed run), seconds.
    public var seconds: Double
    public var skipped: [String]

    public init(weights: String, dataset: String, architecture: String, initialWeights: String?, classes: [String],
                options: FinetuneOptions, epochs: [FinetuneEpochMetrics], bestValidationAccuracy: Double?, bestEpoch: Int?,
                seconds: Double, skipped: [String]) {
        self.weights = weights; self.dataset = dataset; self.architecture = architecture; self.initialWeights = initialWeights
        self.classes = classes; self.options = options; self.epochs = epochs; self.bestValidationAccuracy = bestValidationAccuracy
        self.bestEpoch = bestEpoch; self.seconds = seconds; self.skipped = skipped
    }

    /// The summary's path for the weights file `weights`: `dir/x.pth` -> `dir/x-summary.json`.
    public static func path(forWeights weights: String) -> String {
        let url = URL(fileURLWithPath: weights)
        let base = url.pathExtension.isEmpty ? url.lastPathComponent : url.deletingPathExtension().lastPathComponent
        let dir = (weights as NSString).deletingLastPathComponent
        return (dir.isEmpty ? "" : dir + "/") + base + "-summary.json"
    }

    /// Reads the summary beside `weights`; nil when there is none.
    public static func read(forWeights weights: String) throws -> FinetuneSummary? {
        let p = path(forWeights: weights)
        guard let data = FileManager.default.contents(atPath: p) else { return nil }
        do { return try JSONDecoder().decode(FinetuneSummary.self, from: data) } catch {
            throw FinetuneError.invalidSummary(path: p, reason: "\(error)")
        }
    }

    /// Writes it atomically beside its weights.
    func write() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeFileAtomically(try e.encode(self), to: Self.path(forWeights: weights))
    }
}
