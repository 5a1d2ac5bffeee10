// Heads: classification heads trained over cached feature vectors.
//
// Pure computation over feature matrices: no files, no SQL. The store (Store module) persists
// features and heads; the CLI glues the two.

/// Errors of the Heads module. Each message says what to do next.
public enum HeadsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The feature matrix or label array does not have the announced shape.
    case shapeMismatch(String)
    /// A split holds no rows.
    case empty(String)
    /// A label is outside `0..<classes`.
    case labelOutOfRange(row: Int, label: Int, classes: Int)
    /// A feature value is NaN or infinite.
    case nonFinite(row: Int, column: Int)
    /// Two inputs disagree on the feature dimension (e.g. a head for 512-d applied to 1280-d).
    case dimensionMismatch(expected: Int, got: Int)
    /// Two inputs disagree on the number of classes.
    case classCountMismatch(expected: Int, got: Int)
    /// An option has a value the trainer cannot use.
    case invalidOption(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let s):
            return "feature shape mismatch: \(s); re-extract the features or check the split"
        case .empty(let s):
            return "no rows in \(s); extract features for this split first"
        case .labelOutOfRange(let row, let label, let classes):
            return "label \(label) of row \(row) is outside 0..<\(classes); check the class list of the split"
        case .nonFinite(let row, let column):
            return "feature value at row \(row), column \(column) is NaN or infinite; re-extract the features of that image"
        case .dimensionMismatch(let e, let g):
            return "feature dimension \(g) does not match the head's \(e); use a head trained on the same backbone"
        case .classCountMismatch(let e, let g):
            return "\(g) classes where \(e) were expected; use the same class list for training and validation"
        case .invalidOption(let s):
            return "invalid option: \(s)"
        }
    }
}

/// A split of cached features with integer labels.
///
/// Layout: `values` is row-major float32 with `count * views * dimension` entries; the features of
/// image `i`, view `v` start at `(i * views + v) * dimension`. `views == 1` is the plain
/// (un-augmented) case; with `views > 1` the SGD trainer draws one view per image per epoch.
public struct LabeledFeatures: Sendable, Equatable {
    /// Number of images (N).
    public let count: Int
    /// Feature dimension (D).
    public let dimension: Int
    /// Views per image (K >= 1).
    public let views: Int
    /// Number of classes (labels are in `0..<classes`).
    public let classes: Int
    /// N * K * D values, image-major.
    public let values: [Float]
    /// N labels.
    public let labels: [Int]

    /// Validates shapes, labels and finiteness; never traps on bad input.
    /// - Parameter classes: number of classes; defaults to `max(labels) + 1` (at least 2).
    public init(values: [Float], count: Int, dimension: Int, views: Int = 1,
                labels: [Int], classes: Int? = nil) throws(HeadsError) {
        guard count > 0 else { throw .empty("the feature matrix (0 images)") }
        guard dimension > 0 else { throw .shapeMismatch("dimension must be positive, got \(dimension)") }
        guard views > 0 else { throw .shapeMismatch("views must be positive, got \(views)") }
        let (total, o1) = count.multipliedReportingOverflow(by: views)
        let (expected, o2) = total.multipliedReportingOverflow(by: dimension)
        guard !o1, !o2, values.count == expected else {
            throw .shapeMismatch("\(values.count) values for \(count) images x \(views) views x \(dimension) dims")
        }
        guard labels.count == count else {
            throw .shapeMismatch("\(labels.count) labels for \(count) images")
        }
        let c = classes ?? max(2, (labels.max() ?? 0) + 1)
        guard c >= 1 else { throw .invalidOption("classes must be at least 1, got \(c)") }
        for (i, l) in labels.enumerated() where l < 0 || l >= c {
            throw .labelOutOfRange(row: i, label: l, classes: c)
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .nonFinite(row: bad / dimension / views, column: bad % dimension)
        }
        self.count = count
        self.dimension = dimension
        self.views = views
        self.classes = c
        self.values = values
        self.labels = labels
    }

    /// The first view of every image as a plain N x D matrix (a copy when views > 1).
    public var firstViews: [Float] {
        if views == 1 { return values }
        var out = [Float]()
        out.reserveCapacity(count * dimension)
        for i in 0..<count {
            let start = i * views * dimension
            out.append(contentsOf: values[start..<(start + dimension)])
        }
        return out
    }
}
