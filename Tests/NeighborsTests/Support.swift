import Digest
import Foundation
import NN
import Neighbors
@testable import Store
import Parallelism


func sha(_ s: String) -> String { SHA256.hex(Array(s.utf8)) }

extension FeatureStore {
    /// `loadIndex` with the loader's parallel threshold forced (1: in parts whatever the row count;
    /// .max: one connection).
    func loadIndex(backbone: StoredBackbone, filter: VectorFilter, parallelThreshold: Int,
                   workers: Int = defaultWorkerCount) throws -> VectorIndex {
        VectorIndex(matrix: try loadVectors(backbone: backbone, filter: filter, parallelThreshold: parallelThreshold, workers: workers),
                    workers: workers)
    }
}
