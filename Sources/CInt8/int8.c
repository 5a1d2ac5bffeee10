// probe's int8 kernels: the portable scalar version (which defines the results), run-time dispatch.
// The SIMD versions live in int8_x86.c. See include/probe_int8.h.
#include "probe_int8.h"
#include "int8_internal.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

#pragma STDC FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") // gcc ignores the standard pragma (and contracts with -march=native)
#endif

// MARK: - Dispatch

static int chosen = -1;

int probe_int8_best_kernel(void) {
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512vnni")) return PROBE_INT8_VNNI;
    if (__builtin_cpu_supports("avx2")) return PROBE_INT8_AVX2;
#endif
    return PROBE_INT8_SCALAR;
}

int probe_int8_kernel(void) {
    int k = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (k < 0) {
        k = probe_int8_best_kernel();
        __atomic_store_n(&chosen, k, __ATOMIC_RELAXED);
    }
    return k;
}

int probe_int8_use_kernel(int kernel) {
    if (kernel < PROBE_INT8_SCALAR || kernel > probe_int8_best_kernel()) return -1;
    __atomic_store_n(&chosen, kernel, __ATOMIC_RELAXED);
    return 0;
}

const char *probe_int8_kernel_name(int kernel) {
    switch (kernel) {
    case PROBE_INT8_SCALAR: return "scalar";
    case PROBE_INT8_AVX2: return "avx2";
    case PROBE_INT8_VNNI: return "avx512-vnni";
    default: return "unknown";
    }
}

// MARK: - Packing

size_t probe_qconv_packed_size(int oc, int taps, int cin_stride) {
    size_t blocks = (size_t)(oc + 15) / 16;
    return blocks * (size_t)taps * (size_t)cin_stride * 16;
}

void probe_qconv_pack(const int8_t *w, int oc, int taps, int cin, int cin_stride, int8_t *packed) {
    size_t groups = (size_t)taps * cin_stride / 4;
    memset(packed, 0, probe_qconv_packed_size(oc, taps, cin_stride));
    for (int o = 0; o < oc; o++) {
        size_t block = o / 16;
        for (int t = 0; t < taps; t++) {
            for (int c = 0; c < cin; c++) {
                size_t k = (size_t)t * cin_stride + c;
                packed[((block * groups + k / 4) * 16 + o % 16) * 4 + k % 4] = w[((size_t)o * taps + t) * cin + c];
            }
        }
    }
}

int probe_qconv_pairs_bounded(const int8_t *packed, int oc, int taps, int cin_stride) {
    size_t n = probe_qconv_packed_size(oc, taps, cin_stride);
    // Pairs are bytes (2i, 2i + 1) of the packed buffer: each output channel's 4 consecutive
    // reduction values k = 4g ... 4g + 3 sit together, k even first.
    for (size_t i = 0; i + 1 < n; i += 2) {
        int a = packed[i], b = packed[i + 1];
        if ((a > 0 && b > 0 && a + b > PROBE_PAIR_MAX) || (a < 0 && b < 0 && -(a + b) > PROBE_PAIR_MAX)) return 0;
    }
    return 1;
}

// MARK: - The epilogue (shared by every version: the SIMD versions call it or mirror it exactly)

float probe_epilogue_value(int32_t acc, const probe_qconv_args *a, int o, const uint8_t *res_pixel) {
    float v = (float)(acc + a->acc_offset[o]) * a->scale[o];
    v = v + a->bias[o];
    if (res_pixel) {
        float r = (float)((int32_t)res_pixel[o] - a->res_zero[o]) * a->res_scale[o];
        v = v + r;
    }
    return probe_activate(v, a->activation);
}

// MARK: - Scalar kernels

void probe_qconv_scalar(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1) {
    int oc = a->out_channels, taps = a->taps, cs = a->cin_stride;
    size_t groups = (size_t)taps * cs / 4;
    for (int p = p0; p < p1; p++) {
        const uint8_t *res = a->residual ? a->residual + (size_t)p * a->res_stride : NULL;
        for (int o = 0; o < oc; o++) {
            const int8_t *wb = a->weights + (size_t)(o / 16) * groups * 64 + (o % 16) * 4;
            int32_t acc = 0;
            for (int t = 0; t < taps; t++) {
                const uint8_t *x = input + ind[(size_t)p * taps + t];
                const int8_t *wt = wb + (size_t)t * (cs / 4) * 64;
                for (int g = 0; g < cs / 4; g++) {
                    const int8_t *wg = wt + (size_t)g * 64;
                    acc += (int32_t)x[4 * g] * wg[0] + (int32_t)x[4 * g + 1] * wg[1]
                         + (int32_t)x[4 * g + 2] * wg[2] + (int32_t)x[4 * g + 3] * wg[3];
                }
            }
            if (a->out_i32) { a->out_i32[(size_t)p * a->out_stride + o] = acc + a->acc_offset[o]; continue; }
            float v = probe_epilogue_value(acc, a, o, res);
            if (a->out_f32) a->out_f32[(size_t)p * a->out_stride + o] = v;
            else a->out_u8[(size_t)p * a->out_stride + o] = probe_requantize(v, a->out_inv_scale[o], a->out_zero[o]);
        }
    }
}

void probe_qconv(const probe_qconv_args *a, const uint8_t *input, const int32_t *indirection, int p0, int p1) {
    if (p1 <= p0) return;
#if defined(__x86_64__) || defined(_M_X64)
    switch (probe_int8_kernel()) {
    case PROBE_INT8_VNNI: probe_qconv_vnni(a, input, indirection, p0, p1); return;
    case PROBE_INT8_AVX2: probe_qconv_avx2(a, input, indirection, p0, p1); return;
    default: break;
    }
#endif
    probe_qconv_scalar(a, input, indirection, p0, p1);
}

void probe_qdwconv3x3_scalar(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                             const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                             int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *output, int r0, int r1) {
    int oh = (height - 1) / stride + 1, ow = (width - 1) / stride + 1;
    if (r1 > oh) r1 = oh;
    for (int y = r0; y < r1; y++) {
        for (int x = 0; x < ow; x++) {
            uint8_t *out = output + ((size_t)y * ow + x) * stride_c;
            for (int c = 0; c < channels; c++) {
                int32_t acc = 0;
                for (int ky = 0; ky < 3; ky++) {
                    int iy = y * stride + ky - 1;
                    if (iy < 0 || iy >= height) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        int ix = x * stride + kx - 1;
                        if (ix < 0 || ix >= width) continue;
                        acc += (int32_t)input[((size_t)iy * width + ix) * stride_c + c] * w[(ky * 3 + kx) * channels + c];
                    }
                }
                float v = (float)(acc + acc_offset[c]) * scale[c];
                v = v + bias[c];
                out[c] = probe_requantize(probe_activate(v, activation), out_inv_scale[c], out_zero[c]);
            }
            for (int c = channels; c < stride_c; c++) out[c] = 0;
        }
    }
}

void probe_qdwconv3x3(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                      const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                      int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *output, int r0, int r1) {
#if defined(__x86_64__) || defined(_M_X64)
    switch (probe_int8_kernel()) {
    case PROBE_INT8_VNNI:
        probe_qdwconv3x3_vnni(input, height, width, channels, stride_c, stride, w, acc_offset, scale, bias, activation,
                              out_inv_scale, out_zero, output, r0, r1);
        return;
    case PROBE_INT8_AVX2:
        probe_qdwconv3x3_avx2(input, height, width, channels, stride_c, stride, w, acc_offset, scale, bias, activation,
                              out_inv_scale, out_zero, output, r0, r1);
        return;
    default: break;
    }
#endif
    probe_qdwconv3x3_scalar(input, height, width, channels, stride_c, stride, w, acc_offset, scale, bias, activation,
                            out_inv_scale, out_zero, output, r0, r1);
}

void probe_qmaxpool3x3s2_scalar(const uint8_t *input, int height, int width, int stride_c, uint8_t *output) {
    int oh = (height - 1) / 2 + 1, ow = (width - 1) / 2 + 1;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            uint8_t *out = output + ((size_t)y * ow + x) * stride_c;
            memset(out, 0, stride_c);
            for (int ky = 0; ky < 3; ky++) {
                int iy = 2 * y + ky - 1;
                if (iy < 0 || iy >= height) continue;
                for (int kx = 0; kx < 3; kx++) {
                    int ix = 2 * x + kx - 1;
                    if (ix < 0 || ix >= width) continue;
                    const uint8_t *in = input + ((size_t)iy * width + ix) * stride_c;
                    for (int c = 0; c < stride_c; c++) if (in[c] > out[c]) out[c] = in[c];
                }
            }
        }
    }
}

void probe_qmaxpool3x3s2(const uint8_t *input, int height, int width, int stride_c, uint8_t *output) {
#if defined(__x86_64__) || defined(_M_X64)
    switch (probe_int8_kernel()) {
    case PROBE_INT8_VNNI: probe_qmaxpool3x3s2_vnni(input, height, width, stride_c, output); return;
    case PROBE_INT8_AVX2: probe_qmaxpool3x3s2_avx2(input, height, width, stride_c, output); return;
    default: break;
    }
#endif
    probe_qmaxpool3x3s2_scalar(input, height, width, stride_c, output);
}

void probe_quantize_chw_scalar(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                               int stride_c, uint8_t *output) {
    size_t hw = (size_t)height * width;
    for (size_t p = 0; p < hw; p++) {
        uint8_t *out = output + p * stride_c;
        for (int c = 0; c < channels; c++) out[c] = probe_requantize(x[(size_t)c * hw + p], inv_scale[c], zero[c]);
        for (int c = channels; c < stride_c; c++) out[c] = 0;
    }
}

void probe_quantize_chw(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                        int stride_c, uint8_t *output) {
#if defined(__x86_64__) || defined(_M_X64)
    switch (probe_int8_kernel()) {
    case PROBE_INT8_VNNI: probe_quantize_chw_vnni(x, channels, height, width, inv_scale, zero, stride_c, output); return;
    case PROBE_INT8_AVX2: probe_quantize_chw_avx2(x, channels, height, width, inv_scale, zero, stride_c, output); return;
    default: break;
    }
#endif
    probe_quantize_chw_scalar(x, channels, height, width, inv_scale, zero, stride_c, output);
}
