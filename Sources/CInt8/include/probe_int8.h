// probe's int8 kernels: the instructions Swift cannot express (vpmaddubsw on AVX2, vpdpbusd on
// AVX-512 VNNI), chosen at run time by the CPU's features, with a portable scalar
// version that defines the results. Every version gives the same bytes:
//   - activations are unsigned 8-bit (0...255) and weights signed 8-bit in -127...127; every sum of
//     products is exact in int32, whatever its order (vpdpbusd sums in 32 bits; the AVX2 version
//     sums pairs of products in 16 bits with vpmaddubsw when the weights' pairs are bounded, see
//     probe_qconv_pairs_bounded, else widens activations and weights to int16 for vpmaddwd);
//   - the float epilogue is one fixed sequence of IEEE operations per element (no contraction
//     into fused multiply-adds: see the pragma in int8.c), the same in every version.
//
// Layouts. An activation tensor is HWC: pixel p's channel c at x[p * stride + c], with the pixel
// stride a multiple of 4 (channels past the tensor's hold 0: their weights are 0). Weights are packed by
// `probe_qconv_pack` in blocks of 16 output channels x 4 consecutive reduction values.
#ifndef PROBE_INT8_H
#define PROBE_INT8_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The largest activation value (activations are 0...PROBE_Q_MAX).
#define PROBE_Q_MAX 255

/// Kernel versions.
enum {
    PROBE_INT8_SCALAR = 0,
    PROBE_INT8_AVX2 = 1,     // vpmaddubsw, vpmaddwd (x86-64 with AVX2)
    PROBE_INT8_VNNI = 2,     // vpdpbusd on 512-bit registers (AVX-512 F/BW/VL + VNNI)
};

/// The best version this CPU has.
int probe_int8_best_kernel(void);
/// The version in use (by default the best; see probe_int8_use_kernel).
int probe_int8_kernel(void);
/// Uses `kernel` from now on when this CPU has it; returns 0 then, -1 when it does not (nothing changes).
int probe_int8_use_kernel(int kernel);
/// "scalar", "avx2", "avx512-vnni".
const char *probe_int8_kernel_name(int kernel);

/// Activation functions of the epilogue: none; relu v > 0 ? v : 0; relu6 min(relu(v), 6) as
/// (r < 6 ? r : 6) — the semantics of x86's maxps(v, 0) and minps(r, 6).
enum { PROBE_ACT_NONE = 0, PROBE_ACT_RELU = 1, PROBE_ACT_RELU6 = 2 };

/// Bytes of `probe_qconv_pack`'s output for `oc` output channels and a reduction of `taps` x `cin_stride`.
size_t probe_qconv_packed_size(int oc, int taps, int cin_stride);
/// Packs w[oc][taps][cin] (int8, in -127...127) for the kernels: output channels in blocks of 16
/// (the last block zero-padded), reduction index k = tap * cin_stride + c in groups of 4
/// (channels cin...cin_stride-1 zero), each group of a block as 16 x 4 bytes:
/// packed[((block * taps * cin_stride/4 + k/4) * 16 + o % 16) * 4 + k % 4].
void probe_qconv_pack(const int8_t *w, int oc, int taps, int cin, int cin_stride, int8_t *packed);

/// One quantized convolution (any kernel size, stride, padding), its bias, residual addition,
/// activation and requantization. For output pixel p and output channel o:
///   acc    = sum over tap t and c < cin_stride of x[indirection[p * taps + t] + c] * w[o][t][c]   (int32, exact)
///   v      = (float)(acc + acc_offset[o]) * scale[o] + bias[o]
///   v      = v + (float)((int)residual[p * res_stride + o] - res_zero[o]) * res_scale[o]    (when residual)
///   v      = act(v)
///   output : out_f32[p * out_stride + o] = v, or
///            out_u8[p * out_stride + o] = clamp((int)rint(clamp(v * out_inv_scale[o], -512, 512)) + out_zero[o], 0, 255), or
///            out_i32[p * out_stride + o] = acc + acc_offset[o] (the sum itself: no scale, bias, residual or activation)
/// Activations are quantized per channel (each channel its scale and zero point): an input
/// channel's scale is folded into the weights, its zero point into acc_offset.
/// An indirection entry is a byte offset into `input` of a pixel's first channel; padding taps
/// point at a pixel holding the input's zero points (acc_offset[o] = -sum over t, c of
/// zero_in[c] * w[o][t][c] then makes padding exactly zero). Floats go through the sequence above in this order, each
/// operation rounded to float (v * s, then + b, ...).
typedef struct {
    int32_t out_channels;
    int32_t taps;
    int32_t cin_stride;          // input pixel stride in bytes, a multiple of 4 (the reduction per tap)
    const int8_t *weights;       // probe_qconv_pack's layout
    const int32_t *acc_offset;   // [out_channels]
    const float *scale;          // [out_channels]: input scale x weight scale of the channel
    const float *bias;           // [out_channels]
    int32_t activation;          // PROBE_ACT_*
    const uint8_t *residual;     // NULL: none
    int32_t res_stride;
    const int32_t *res_zero;     // [out_channels]
    const float *res_scale;      // [out_channels]
    uint8_t *out_u8;             // exactly one of out_u8 / out_f32 (or out_i32, below)
    float *out_f32;
    int32_t out_stride;          // >= out_channels
    const float *out_inv_scale;  // [out_channels] (u8 output only)
    const int32_t *out_zero;     // [out_channels] (u8 output only)
    int32_t pairs_bounded;       // probe_qconv_pairs_bounded(weights, ...): 1 lets AVX2 use vpmaddubsw
    int32_t *out_i32;            // when not NULL, the output instead of out_u8 / out_f32 (scale, bias unused)
} probe_qconv_args;

/// 1 when the packed weights of `oc` output channels (a reduction of taps x cin_stride) have
/// |w[k]| + |w[k+1]| <= 128 for every output channel and every even k where w[k] and w[k+1] have the
/// same sign (PROBE_PAIR_MAX), else 0. Then every sum x[k] * w[k] + x[k+1] * w[k+1] of two u8
/// activations is within 255 * 128 = 32640, and AVX2's vpmaddubsw (pair sums saturated to int16) is
/// exact: the AVX2 convolution uses it only when `pairs_bounded` says so (the same bytes either way).
int probe_qconv_pairs_bounded(const int8_t *packed, int oc, int taps, int cin_stride);
#define PROBE_PAIR_MAX 128

/// Output pixels [pixel_begin, pixel_end) of `a` (others untouched: workers may split the pixels).
void probe_qconv(const probe_qconv_args *a, const uint8_t *input, const int32_t *indirection,
                 int pixel_begin, int pixel_end);

/// Depthwise 3x3 convolution, padding 1, stride 1 or 2, on `channels` channels (pixel stride
/// `stride_c` for input and output, a multiple of 4), zero points of the input 0 (post-ReLU
/// tensors: padding contributes nothing), weights w[tap][c] int8. Same epilogue as probe_qconv
/// (acc_offset, scale, bias, activation, u8 requantization per channel; no residual, no float
/// output); output channels channels...stride_c-1 are set to 0.
/// Output rows [row_begin, row_end).
void probe_qdwconv3x3(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                      const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                      int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *output,
                      int row_begin, int row_end);

/// Max pooling 3x3, stride 2, padding 1 (padding ignored), HWC u8 with pixel stride `stride_c`.
void probe_qmaxpool3x3s2(const uint8_t *input, int height, int width, int stride_c, uint8_t *output);

/// Quantizes a CHW float image (channels planes of height x width) to HWC u8 with pixel
/// stride `stride_c` (channels..stride_c-1 set to 0), per channel c:
/// clamp(rint(clamp(x * inv_scale[c], -512, 512)) + zero[c], 0, 255).
void probe_quantize_chw(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                        int stride_c, uint8_t *output);

/// Winograd F(2x2, 3x3) (Lavin & Gray 2016) for a 3x3 convolution with stride 1 and padding 1
/// whose input's zero points are all 0 (a post-ReLU tensor): each 2x2 block of output pixels
/// ("tile" t: rows 2 * (t / tw), columns 2 * (t % tw), tw = (width + 1) / 2) is
///   Y = A^T [ sum over c of U[c] (.) V[c] ] A   (16 products per tile and channel pair instead of 36),
/// V[c] = B^T d B of the tile's 4x4 input patch d of channel c (pixels outside the image: 0), U the
/// weights' transform G g G^T, quantized in the Winograd domain:
///   - V is an integer in [-PROBE_WINO_VMAX, PROBE_WINO_VMAX]; position p (p = 4 * row + column) is
///     requantized to a byte by probe_wino_quantize(V, mult[p], probe_wino_offset(p)): V * mult[p] /
///     2^15 rounded (vpmulhrsw's rounding), plus 128 (position 5, the only one that is never negative:
///     plus 0), clamped to 0...255; mult[p] in 1...32767 is calibrated (a position's range);
///   - the 16 products are probe_qconv's (1x1, one tile per pixel, int32 output), gemm[p] with
///     position p's packed int8 weights and acc_offset (-offset x the weights' sum); with its scale
///     (weight scale / (mult[p] / 2^15)): M[p] = (float)(acc + acc_offset) * scale, a float;
///   - the output transform, in this order per element: r0[j] = (M[0][j] + M[1][j]) + M[2][j],
///     r1[j] = (M[1][j] - M[2][j]) - M[3][j] (M[i][j] = position 4i + j), y00 = (r0[0] + r0[1]) + r0[2],
///     y01 = (r0[1] - r0[2]) - r0[3], y10 and y11 the same of r1; then probe_qconv's epilogue from its
///     bias on (`epilogue`: bias, residual, activation, u8 requantization or float output).
#define PROBE_WINO_VMAX 1020
typedef struct {
    int32_t height, width;            // input size = output size
    int32_t in_stride;                // input pixel stride (a multiple of 4)
    int32_t block_tiles;              // tiles per pass (scratch: probe_qwino_scratch_bytes)
    int32_t image_pixels;             // several images: image i's input, output and residual pixels
                                      // start at pixel i x image_pixels (>= height x width + 1, the
                                      // input's padding pixel after each image's); 0: height x width + 1
    const int16_t *mult;              // [16]
    const probe_qconv_args *gemm;     // [16]: taps 1, cin_stride in_stride, scale (outputs set by probe_qwino)
    probe_qconv_args epilogue;        // out_channels, bias, activation, residual and outputs
} probe_qwino_args;

/// The requantization of a transformed input value (see probe_qwino_args).
uint8_t probe_wino_quantize(int32_t v, int32_t mult, int32_t offset);
/// 128, or 0 for position 5.
int probe_wino_offset(int position);
/// Bytes of one worker's scratch for probe_qwino.
size_t probe_qwino_scratch_bytes(int block_tiles, int in_stride, int out_channels);
/// Tiles [tile_begin, tile_end) of the convolution `a`: tile t is tile t % T of image t / T (T tiles
/// an image); each image's input has one more pixel after its height x width, all zeros: the
/// padding. `scratch`: probe_qwino_scratch_bytes, one per worker.
void probe_qwino(const probe_qwino_args *a, const uint8_t *input, int tile_begin, int tile_end, void *scratch);
/// Adds the transformed values V of every tile and channel < `channels` of an input (as above) to
/// hist[p * (2 * PROBE_WINO_VMAX + 1) + V + PROBE_WINO_VMAX] (calibration of mult).
void probe_qwino_histogram(const uint8_t *input, int height, int width, int channels, int cs, int64_t *hist);

#ifdef __cplusplus
}
#endif
#endif
