#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Reproducible

@inline(__always)
func Foundation_log(_ x: Double) -> Double { log(x) }

/// The tutorial's per-epoch log (train_model's prints) for an SGD run:
///
///     Epoch 0/24
///     ----------
///     train Loss: 0.6171 Acc: 0.6680
///     val Loss: 0.2342 Acc: 0.9216
///
///     ...
///     Training complete in 0m 0s
///     Best val Acc: 0.954248
public func formatTutorialLog(_ result: SGDResult) -> String {
    var out = ""
    let last = result.epochs.count - 1
    for m in result.epochs {
        out += "Epoch \(m.epoch)/\(last)\n----------\n"
        out += "train Loss: \(fixed(m.trainLoss, 4)) Acc: \(fixed(m.trainAccuracy, 4))\n"
        if let vl = m.validationLoss, let va = m.validationAccuracy {
            out += "val Loss: \(fixed(vl, 4)) Acc: \(fixed(va, 4))\n"
        }
        out += "\n"
    }
    let t = result.seconds
    out += "Training complete in \(cFormat((t / 60).rounded(.down), 0))m \(cFormat(t.truncatingRemainder(dividingBy: 60), 0))s\n"
    if let best = result.bestValidationAccuracy {
        out += "Best val Acc: \(fixed(best, 6))\n"
    }
    return out
}

@inline(__always) func _exp(_ x: Double) -> Double { exp(x) }
@inline(__always) func _log(_ x: Double) -> Double { log(x) }
