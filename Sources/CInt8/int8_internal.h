// Shared by the scalar and SIMD versions (not part of the module's interface).
#ifndef PROBE_INT8_INTERNAL_H
#define PROBE_INT8_INTERNAL_H
#include "probe_int8.h"
#include <math.h>

static inline float probe_activate(float v, int act) {
    if (act == PROBE_ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (act == PROBE_ACT_RELU6) { float r = v > 0.0f ? v : 0.0f; return r < 6.0f ? r : 6.0f; }
    return v;
}

static inline uint8_t probe_requantize(float v, float inv_scale, int zero) {
    float t = v * inv_scale;
    t = t > -512.0f ? t : -512.0f;
    t = t < 512.0f ? t : 512.0f;
    int q = (int)rintf(t) + zero;
    return (uint8_t)(q < 0 ? 0 : (q > PROBE_Q_MAX ? PROBE_Q_MAX : q));
}

float probe_epilogue_value(int32_t acc, const probe_qconv_args *a, int o, const uint8_t *res_pixel);
void probe_qconv_scalar(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1);
void probe_qdwconv3x3_scalar(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                             const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                             int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *output, int r0, int r1);
void probe_quantize_chw_scalar(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                               int stride_c, uint8_t *output);
void probe_qmaxpool3x3s2_scalar(const uint8_t *input, int height, int width, int stride_c, uint8_t *output);
#if defined(__x86_64__) || defined(_M_X64)
void probe_qmaxpool3x3s2_avx2(const uint8_t *input, int height, int width, int stride_c, uint8_t *output);
void probe_qmaxpool3x3s2_vnni(const uint8_t *input, int height, int width, int stride_c, uint8_t *output);
void probe_quantize_chw_avx2(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                             int stride_c, uint8_t *output);
void probe_quantize_chw_vnni(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                             int stride_c, uint8_t *output);
void probe_qdwconv3x3_avx2(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                           const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                           int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *output, int r0, int r1);
void probe_qdwconv3x3_vnni(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                           const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                           int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *output, int r0, int r1);
void probe_qconv_avx2(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1);
void probe_qconv_vnni(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1);
#endif
#endif
