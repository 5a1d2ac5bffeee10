// Unaligned 8-float loads and stores, and the fused activations, for the kernels' SIMD loops.

@inline(__always) func ld8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func ld8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func st8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
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
