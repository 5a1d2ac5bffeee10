// Inverted dropout, forward and backward.

/// Inverted dropout: output = input * mask, mask[i] = 0 with probability p, else 1 / (1 - p).
/// `uniform(i)` gives the i-th uniform draw in [0, 1) (the caller's seeded generator).
public func dropoutForward(
    output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
    count: Int, p: Float, uniform: () -> Float
) {
    let keep = 1 / (1 - p)
    for i in 0..<count {
        mask[i] = uniform() < p ? 0 : keep
        output[i] = input[i] * mask[i]
    }
}

/// Dropout backward: gradInput += gradOutput * mask.
public func dropoutBackward(gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
                            mask: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { gradInput[i] += gradOutput[i] * mask[i] }
}
