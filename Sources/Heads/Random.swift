/// Stream numbers of the trainers' generators (`SplitMix64(seed:stream:)`, module Reproducible:
/// every random choice the trainers make comes from one of these, seeded from the user's seed).
public enum RandomStream {
    public static let initialisation: UInt64 = 1
    public static let shuffle: UInt64 = 2
    public static let views: UInt64 = 3
    public static let folds: UInt64 = 4
    public static let holdout: UInt64 = 5
    public static let fewShot: UInt64 = 6
    /// The audit's cross-validation folds (Audit module).
    public static let auditFolds: UInt64 = 14
}
