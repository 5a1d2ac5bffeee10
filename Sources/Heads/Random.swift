/// Stream numbers of the trainers' generators (`SplitMix64(seed:stream:)`, module Reproducible:
/// every random choice the trainers make comes from one of these, seeded from the user's seed).
enum RandomStream {
    static let initialisation: UInt64 = 1
    static let shuffle: UInt64 = 2
    static let views: UInt64 = 3
    static let folds: UInt64 = 4
    static let holdout: UInt64 = 5
    static let fewShot: UInt64 = 6
}
