// Activations: the `Activation` fused into the kernels' epilogues, the same as types for the SIMD
// loops, and stand-alone ReLU and ReLU6, forward and backward.

/// Element-wise activation fused into convolution epilogues.
public enum Activation: Sendable, Equatable {
    case none, relu, relu6
}

// MARK: - Activations as types

/// An activation as a type. Kernels take one as a generic parameter and switch on `Activation`
/// once, outside their loops, so each activation gets its own loop with nothing to test inside: a run-time test of the activation inside an 8-wide loop is if-converted by the
/// compiler into computing every variant and selecting (measured: a depthwise convolution 3-4x
/// slower with no activation at all).
protocol ActivationKind {
    /// act(v), 8 values.
    static func apply(_ v: SIMD8<Float>) -> SIMD8<Float>
    /// act(v).
    static func apply(_ v: Float) -> Float
    /// g where act'(.) is 1 at the forward value v (the output y or the pre-activation value:
    /// both give the same mask), else 0. ReLU: v > 0; ReLU6: 0 < v < 6 (PyTorch's
    /// hardtanh_backward: the boundaries get no gradient).
    static func masked(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float>
    static func masked(_ g: Float, _ v: Float) -> Float
    static var isIdentity: Bool { get }
}

enum IdentityActivation: ActivationKind {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { v }
    @inline(__always) static func apply(_ v: Float) -> Float { v }
    @inline(__always) static func masked(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> { g }
    @inline(__always) static func masked(_ g: Float, _ v: Float) -> Float { g }
    static var isIdentity: Bool { true }
}

enum ReLUActivation: ActivationKind {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { v.replacing(with: 0, where: v .< 0) }
    @inline(__always) static func apply(_ v: Float) -> Float { max(v, 0) }
    @inline(__always) static func masked(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        g.replacing(with: 0, where: v .<= 0)
    }
    @inline(__always) static func masked(_ g: Float, _ v: Float) -> Float { v > 0 ? g : 0 }
    static var isIdentity: Bool { false }
}

enum ReLU6Activation: ActivationKind {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> {
        v.replacing(with: 0, where: v .< 0).replacing(with: 6, where: v .> 6)
    }
    @inline(__always) static func apply(_ v: Float) -> Float { min(max(v, 0), 6) }
    @inline(__always) static func masked(_ g: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
        g.replacing(with: 0, where: (v .<= 0) .| (v .>= 6))
    }
    @inline(__always) static func masked(_ g: Float, _ v: Float) -> Float { (v > 0 && v < 6) ? g : 0 }
    static var isIdentity: Bool { false }
}

// MARK: - Stand-alone ReLU and ReLU6

public func reluForward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = max(x[i], 0) }
}

/// ReLU backward from the layer's output: gradInput += gradOutput where output > 0.
public func reluBackward(gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
                         output: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { gradInput[i] += ReLUActivation.masked(gradOutput[i], output[i]) }
}

public func relu6Forward(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = min(max(x[i], 0), 6) }
}

/// ReLU6 backward from the layer's output: gradInput += gradOutput where 0 < output < 6
/// (PyTorch's hardtanh_backward: the boundaries get no gradient).
public func relu6Backward(gradInput: UnsafeMutablePointer<Float>, gradOutput: UnsafePointer<Float>,
                          output: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { gradInput[i] += ReLU6Activation.masked(gradOutput[i], output[i]) }
}
