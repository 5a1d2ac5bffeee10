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

/// `act` applied to 8 values (ReLU: max(v, 0); ReLU6: min(max(v, 0), 6)). Written as two
/// loop-invariant tests rather than a switch: the switch form was not inlined into the depthwise
/// loops (a call per 8 outputs, 2.5x slower forward).
@inline(__always) func activated(_ v: SIMD8<Float>, _ act: Activation) -> SIMD8<Float> {
    var v = v
    if act != .none { v = v.replacing(with: 0, where: v .< 0) }
    if act == .relu6 { v = v.replacing(with: 6, where: v .> 6) }
    return v
}

/// `act` applied to one value.
@inline(__always) func activated(_ v: Float, _ act: Activation) -> Float {
    switch act {
    case .none: return v
    case .relu: return max(v, 0)
    case .relu6: return min(max(v, 0), 6)
    }
}
