import Parallelism

// MARK: - Decompositions that do not depend on the worker count

/// Kernels cut their work into pieces whose sizes depend only on the problem's shape, never on the
/// number of workers; the workers only choose which pieces they run. Every GEMM then has the same
/// shape and every sum the same order whatever the thread count, so results are bit-identical for
/// 1, 2 or 64 threads (tested with 1, 2, 3 and 7).
public enum Grain {
    /// Floats of scratch one piece of a convolution may use for its im2col or Winograd chunk.
    public static let chunkFloats = 1 << 20
    /// Split dimensions are cut into about this many pieces when they are large enough (balance for
    /// up to this many workers; more workers still help where pieces are plentiful).
    public static let targetPieces = 16
}

/// A block length that cuts `count` into about `pieces` blocks: a multiple of `multiple`, at least
/// `minimum` (and at least 1), at most `maximum`.
@inline(__always)
public func blockLength(_ count: Int, pieces: Int = Grain.targetPieces, multiple: Int = 16, minimum: Int = 16,
                        maximum: Int = .max) -> Int {
    let raw = (count + max(1, pieces) - 1) / max(1, pieces)
    let rounded = (raw + multiple - 1) / multiple * multiple
    return max(1, min(max(rounded, minimum), maximum))
}

/// Runs `body(worker, piece)` for pieces 0..<pieces, each worker taking a contiguous run of them.
@inline(__always)
public func parallelPieces(_ pieces: Int, workers: Int, _ body: (_ worker: Int, _ piece: Int) -> Void) {
    parallelSlices(pieces, workers: workers) { worker, slice in
        for p in slice { body(worker, p) }
    }
}
