import Foundation
import Parallelism

/// `torch.optim.SGD` over one flat parameter buffer (PyTorch's semantics, `foreach` or not):
///
///     d = grad + weightDecay * param
///     buf = d                                  (first step)
///     buf = momentum * buf + (1 - dampening) * d   (later steps)
///     d = nesterov ? d + momentum * buf : buf   (when momentum != 0)
///     param -= lr * d
///
/// The momentum buffer lives in `momentumBuffer` (same length as the parameters) and
/// `hasMomentum` says whether it has been initialised (PyTorch's "buf is None" state); both are
/// part of a checkpoint.
public struct SGDOptimizer: Sendable {
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool
    public var momentumBuffer: [Float]
    public var hasMomentum: Bool

    public init(parameterCount: Int, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        momentumBuffer = momentum != 0 ? [Float](repeating: 0, count: parameterCount) : []
        hasMomentum = false
    }

    /// One update of `params` (count floats) with `grads` at learning rate `lr`. Element-wise, so the
    /// `workers` that split the (memory-bound) pass do not change the result.
    public mutating func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, count: Int, lr: Float,
                              workers: Int = defaultWorkerCount) {
        let (momentum, dampening, weightDecay, nesterov, first) = (momentum, dampening, weightDecay, nesterov, !hasMomentum)
        if momentum == 0 {
            Self.update(params: params, grads: grads, momentumBuffer: nil, count: count, lr: lr, momentum: 0, dampening: dampening,
                        weightDecay: weightDecay, nesterov: nesterov, first: first, workers: workers)
            return
        }
        momentumBuffer.withUnsafeMutableBufferPointer { bp in
            Self.update(params: params, grads: grads, momentumBuffer: bp.baseAddress!, count: count, lr: lr, momentum: momentum,
                        dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, first: first, workers: workers)
        }
        hasMomentum = true
    }

    /// The update itself over raw buffers, for callers that keep their own parameters, gradients and
    /// momentum buffers (a head's weight and bias): `momentumBuffer` (count floats) may be nil when
    /// `momentum` is 0; `first` is PyTorch's "buf is None" (the buffer is set to the gradient). The
    /// gradients are read, never written.
    public static func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                              momentumBuffer: UnsafeMutablePointer<Float>?, count: Int, lr: Float, momentum: Float,
                              dampening: Float, weightDecay: Float, nesterov: Bool, first: Bool, workers: Int = 1) {
        let wd = weightDecay, mom = momentum, damp = 1 - dampening, nest = nesterov
        let wk = count >= 1 << 16 ? workers : 1
        if mom == 0 {
            let box = UncheckedSendable((params, grads))
            parallelSlices(count, workers: wk) { _, r in
                let (params, grads) = box.value
                for i in r {
                    var d = grads[i]
                    if wd != 0 { d += wd * params[i] }
                    params[i] -= lr * d
                }
            }
            return
        }
        let box = UncheckedSendable((params, grads, momentumBuffer!))
        parallelSlices(count, workers: wk) { _, r in
            let (params, grads, buf) = box.value
            for i in r {
                var d = grads[i]
                if wd != 0 { d += wd * params[i] }
                let b = first ? d : mom * buf[i] + damp * d
                buf[i] = b
                let u = nest ? d + mom * b : b
                params[i] -= lr * u
            }
        }
    }
}

/// `torch.optim.lr_scheduler.StepLR`: the learning rate of epoch e (counting from 0, the
/// scheduler stepped once per epoch) is `base * gamma^(e / stepSize)` (integer division).
public struct StepLR: Sendable, Equatable {
    public var baseLR: Float
    public var stepSize: Int
    public var gamma: Float

    public init(baseLR: Float, stepSize: Int, gamma: Float) {
        self.baseLR = baseLR
        self.stepSize = max(1, stepSize)
        self.gamma = gamma
    }

    /// The learning rate used during epoch `epoch`, computed like PyTorch's chainable form
    /// (multiplying by gamma at each step boundary, in float64 like Python floats, then float32).
    public func learningRate(epoch: Int) -> Float {
        var lr = Double(baseLR)
        let k = epoch / stepSize
        for _ in 0..<max(0, k) { lr *= Double(gamma) }
        return Float(lr)
    }
}
