// The layer kernels, llm.c style: one plain function per layer and direction, pointers in,
// pointers out, no allocation, each layer's forward and backward side by side in the file named
// for it (Convolution, Depthwise, BatchNorm, Pooling, Linear, Dropout, SoftmaxCrossEntropy,
// Activation; Winograd and Winograd4 for the 3x3 convolutions by Winograd's transforms).
//
// Activation layout. A batch of N images with C channels of H x W is stored as C*N planes of
// H*W floats. Two plane orders are used:
//   NCHW (PyTorch's): plane (n, c) at offset (n*C + c)*H*W   -> imageStride = C*H*W, channelStride = H*W
//   CNHW (ours, inside networks): plane (c, n) at (c*N + n)*H*W -> imageStride = H*W,  channelStride = N*H*W
// CNHW makes a convolution over the whole batch ONE matrix product,
//   out[OC x N*OH*OW] = W[OC x IC*KH*KW] * col[IC*KH*KW x N*OH*OW],
// whose result is directly the CNHW output (each output channel one contiguous row), so the GEMMs
// stay large even for 7x7 maps, bias/activation epilogues run over contiguous rows, and 1x1
// stride-1 convolutions need no im2col at all. Plane-wise kernels (pooling, depthwise, BatchNorm)
// only need to know each plane's channel. `conv2dForward` reads either layout (see `PlaneLayout`),
// so the network input stays NCHW as PyTorch gives it.
//
// Conventions of every backward pass:
// - gradients are ACCUMULATED (+=) into gradInput / gradWeight / gradBias, so a tensor used by
//   several layers (residual connections) sums its gradients; callers zero a gradient once, or,
//   where a kernel takes `accumulate...: false`, let its first writer overwrite it (the memory need
//   not be zeroed: every value is written);
// - BLAS runs single-threaded (`setBLASThreads(1)`); the kernels split work between `workers`
//   themselves, along disjoint output blocks, so results do not depend on timing.

/// Where plane (image n, channel c) of an activation starts: n * imageStride + c * channelStride.
public struct PlaneLayout: Sendable, Equatable {
    public var imageStride: Int
    public var channelStride: Int
    public init(imageStride: Int, channelStride: Int) {
        self.imageStride = imageStride
        self.channelStride = channelStride
    }
    /// PyTorch's NCHW layout.
    public static func nchw(channels: Int, height: Int, width: Int) -> PlaneLayout {
        PlaneLayout(imageStride: channels * height * width, channelStride: height * width)
    }
    /// The channel-major CNHW layout used inside networks.
    public static func cnhw(batch: Int, height: Int, width: Int) -> PlaneLayout {
        PlaneLayout(imageStride: height * width, channelStride: batch * height * width)
    }
}
