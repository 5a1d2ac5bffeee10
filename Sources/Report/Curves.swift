import Vision

/// One epoch of a training run, as the curves show it.
public struct CurvePoint: Sendable {
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public init(trainLoss: Double, trainAccuracy: Double, validationLoss: Double?, validationAccuracy: Double?) {
        self.trainLoss = trainLoss; self.trainAccuracy = trainAccuracy
        self.validationLoss = validationLoss; self.validationAccuracy = validationAccuracy
    }
}

/// Writes the training curves of a run as two PNG charts, `<prefix>loss.png` and
/// `<prefix>accuracy.png` in `directory`; returns their file names.
public func writeTrainingCurves(_ epochs: [CurvePoint], to directory: String, prefix: String = "") throws -> [String] {
    let blue: (UInt8, UInt8, UInt8) = (31, 119, 180), orange: (UInt8, UInt8, UInt8) = (255, 127, 14)
    let loss = lineChart(title: "loss", series: [
        Series(name: "train", values: epochs.map(\.trainLoss), color: blue),
        Series(name: "val", values: epochs.map { $0.validationLoss ?? .nan }, color: orange),
    ])
    let acc = lineChart(title: "accuracy", series: [
        Series(name: "train", values: epochs.map(\.trainAccuracy), color: blue),
        Series(name: "val", values: epochs.map { $0.validationAccuracy ?? .nan }, color: orange),
    ])
    let names = [prefix + "loss.png", prefix + "accuracy.png"]
    try PNGWriter.write(loss, to: directory + "/" + names[0])
    try PNGWriter.write(acc, to: directory + "/" + names[1])
    return names
}
