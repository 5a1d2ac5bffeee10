// Winograd F(2x2, 3x3) for int8 convolutions (3x3, stride 1, padding 1, input zero points 0): see
// include/probe_int8.h. The input transform is integer arithmetic (the AVX-512 and AVX2 versions in
// 16-bit lanes, exact), the output transform one fixed sequence of IEEE operations per element (the
// SIMD versions the scalar one's, lane by lane), and the 16 products in between are probe_qconv's,
// exact on every version. So every version gives the same bytes.
#include "int8_internal.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define WINO_BINS (2 * PROBE_WINO_VMAX + 1)

int probe_wino_offset(int position) { return position == 5 ? 0 : 128; }

uint8_t probe_wino_quantize(int32_t v, int32_t mult, int32_t offset) {
    int32_t r = (((v * mult) >> 14) + 1) >> 1;
    r += offset;
    return (uint8_t)(r < 0 ? 0 : (r > 255 ? 255 : r));
}

// B^T d B of one 4x4 patch d (row-major), into v.
static inline __attribute__((always_inline)) void wino_transform(const int32_t d[16], int32_t v[16]) {
    int32_t r[16];
    for (int j = 0; j < 4; j++) {
        r[j] = d[j] - d[8 + j];
        r[4 + j] = d[4 + j] + d[8 + j];
        r[8 + j] = d[8 + j] - d[4 + j];
        r[12 + j] = d[4 + j] - d[12 + j];
    }
    for (int i = 0; i < 4; i++) {
        v[4 * i] = r[4 * i] - r[4 * i + 2];
        v[4 * i + 1] = r[4 * i + 1] + r[4 * i + 2];
        v[4 * i + 2] = r[4 * i + 2] - r[4 * i + 1];
        v[4 * i + 3] = r[4 * i + 1] - r[4 * i + 3];
    }
}

// The 16 input pixels of tile t (outside the image: `pad`, a pixel of zeros).
static inline __attribute__((always_inline)) void wino_patch(const uint8_t *input, const uint8_t *pad, int height, int width,
                                                              int cs, int t, const uint8_t *px[16]) {
    int tiles_w = (width + 1) / 2;
    int ty = t / tiles_w, tx = t % tiles_w;
    for (int i = 0; i < 4; i++) {
        int y = 2 * ty - 1 + i;
        for (int j = 0; j < 4; j++) {
            int x = 2 * tx - 1 + j;
            px[4 * i + j] = (y >= 0 && y < height && x >= 0 && x < width) ? input + ((size_t)y * width + x) * cs : pad;
        }
    }
}

// Input transform of channels [c0, c1) of one tile (its 16 pixels px) into o[p * pos_stride + c].
static inline __attribute__((always_inline)) void wino_input_channels(const uint8_t *const px[16], int c0, int c1,
                                                                       const int16_t *mult, uint8_t *o, size_t pos_stride) {
    for (int c = c0; c < c1; c++) {
        int32_t d[16], w[16];
        for (int k = 0; k < 16; k++) d[k] = px[k][c];
        wino_transform(d, w);
        for (int p = 0; p < 16; p++) o[(size_t)p * pos_stride + c] = probe_wino_quantize(w[p], mult[p], probe_wino_offset(p));
    }
}

// The 16 input pixels of tile t of a group of images (tile t % tpi of image t / tpi).
static inline __attribute__((always_inline)) void wino_group_patch(const uint8_t *input, size_t image_pixels, int height, int width,
                                                                    int cs, int tpi, int t, const uint8_t *px[16]) {
    const uint8_t *base = input + (size_t)(t / tpi) * image_pixels * cs;
    wino_patch(base, base + (size_t)height * width * cs, height, width, cs, t % tpi, px);
}

// Input transform of tiles [t0, t1) into v[p * pos_stride + (t - t0) * cs + c].
static void wino_input_scalar(const uint8_t *input, size_t image_pixels, int height, int width, int cs, int t0, int t1,
                              const int16_t *mult, uint8_t *v, size_t pos_stride) {
    const int tpi = ((height + 1) / 2) * ((width + 1) / 2);
    for (int t = t0; t < t1; t++) {
        const uint8_t *px[16];
        wino_group_patch(input, image_pixels, height, width, cs, tpi, t, px);
        wino_input_channels(px, 0, cs, mult, v + (size_t)(t - t0) * cs, pos_stride);
    }
}

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define ALWAYS_INLINE_W inline __attribute__((always_inline))

// The transform of one channel group in 16-bit lanes (|V| <= 1020), then vpmulhrsw (exactly
// probe_wino_quantize's rounding) and saturation to bytes: signed for the positions with offset
// 128 (then + 128 by flipping the top bit), unsigned for position 5 (never negative).
#define WINO_TRANSFORM(VEC, ADD, SUB)                                                                        \
    VEC r[16], w[16];                                                                                        \
    for (int j = 0; j < 4; j++) {                                                                            \
        r[j] = SUB(d[j], d[8 + j]);                                                                          \
        r[4 + j] = ADD(d[4 + j], d[8 + j]);                                                                  \
        r[8 + j] = SUB(d[8 + j], d[4 + j]);                                                                  \
        r[12 + j] = SUB(d[4 + j], d[12 + j]);                                                                \
    }                                                                                                        \
    for (int i = 0; i < 4; i++) {                                                                            \
        w[4 * i] = SUB(r[4 * i], r[4 * i + 2]);                                                              \
        w[4 * i + 1] = ADD(r[4 * i + 1], r[4 * i + 2]);                                                      \
        w[4 * i + 2] = SUB(r[4 * i + 2], r[4 * i + 1]);                                                      \
        w[4 * i + 3] = SUB(r[4 * i + 1], r[4 * i + 3]);                                                      \
    }

static TARGET_AVX512 void wino_input_avx512(const uint8_t *input, size_t image_pixels, int height, int width, int cs, int t0,
                                            int t1, const int16_t *mult, uint8_t *v, size_t pos_stride) {
    const int tpi = ((height + 1) / 2) * ((width + 1) / 2);
    __m512i mv[16];
    for (int p = 0; p < 16; p++) mv[p] = _mm512_set1_epi16(mult[p]);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const int cv = cs / 32 * 32;
    for (int t = t0; t < t1; t++) {
        const uint8_t *px[16];
        wino_group_patch(input, image_pixels, height, width, cs, tpi, t, px);
        uint8_t *o = v + (size_t)(t - t0) * cs;
        for (int c = 0; c < cv; c += 32) {
            __m512i d[16];
            for (int k = 0; k < 16; k++) d[k] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(px[k] + c)));
            WINO_TRANSFORM(__m512i, _mm512_add_epi16, _mm512_sub_epi16)
            for (int p = 0; p < 16; p++) {
                __m512i q = _mm512_mulhrs_epi16(w[p], mv[p]);
                __m256i b = p == 5 ? _mm512_cvtusepi16_epi8(q) : _mm256_xor_si256(_mm512_cvtsepi16_epi8(q), flip);
                _mm256_storeu_si256((__m256i *)(o + (size_t)p * pos_stride + c), b);
            }
        }
        wino_input_channels(px, cv, cs, mult, o, pos_stride);
    }
}

static TARGET_AVX2 void wino_input_avx2(const uint8_t *input, size_t image_pixels, int height, int width, int cs, int t0,
                                        int t1, const int16_t *mult, uint8_t *v, size_t pos_stride) {
    const int tpi = ((height + 1) / 2) * ((width + 1) / 2);
    __m256i mv[16];
    for (int p = 0; p < 16; p++) mv[p] = _mm256_set1_epi16(mult[p]);
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const int cv = cs / 16 * 16;
    for (int t = t0; t < t1; t++) {
        const uint8_t *px[16];
        wino_group_patch(input, image_pixels, height, width, cs, tpi, t, px);
        uint8_t *o = v + (size_t)(t - t0) * cs;
        for (int c = 0; c < cv; c += 16) {
            __m256i d[16];
            for (int k = 0; k < 16; k++) d[k] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(px[k] + c)));
            WINO_TRANSFORM(__m256i, _mm256_add_epi16, _mm256_sub_epi16)
            for (int p = 0; p < 16; p++) {
                __m256i q = _mm256_mulhrs_epi16(w[p], mv[p]);
                // packs work within 128-bit lanes: bytes 0-7 and 16-23 hold the 16 results
                __m256i packed = p == 5 ? _mm256_packus_epi16(q, q) : _mm256_packs_epi16(q, q);
                __m128i b = _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
                if (p != 5) b = _mm_xor_si128(b, flip);
                _mm_storeu_si128((__m128i *)(o + (size_t)p * pos_stride + c), b);
            }
        }
        wino_input_channels(px, cv, cs, mult, o, pos_stride);
    }
}
#endif

// Output transform of tiles [t0, t1) from the int32 sums m[p * pos_stride + (t - t0) * oc + o], each
// times its position's scale: A^T M A, then the
// epilogue of probe_qconv_args `e` (bias, residual, activation, u8 requantization or float).
// Channels [o0, o1) of one tile, one channel at a time (the scalar version; the SIMD versions'
// remainder).
static inline __attribute__((always_inline)) void wino_output_channels(const probe_qconv_args *e, const float *const scale[16],
                                                                        int height, int width, size_t image_pixels, int t,
                                                                        const int32_t *mt, size_t pos_stride, int o0, int o1) {
    const int tiles_w = (width + 1) / 2, tpi = ((height + 1) / 2) * tiles_w;
    const size_t first = (size_t)(t / tpi) * image_pixels;
    const int ty = t % tpi / tiles_w, tx = t % tpi % tiles_w;
    for (int o = o0; o < o1; o++) {
        float a[16], r0[4], r1[4], y[4];
        for (int p = 0; p < 16; p++) a[p] = (float)mt[(size_t)p * pos_stride + o] * scale[p][o];
        for (int j = 0; j < 4; j++) {
            r0[j] = a[j] + a[4 + j];
            r0[j] = r0[j] + a[8 + j];
            r1[j] = a[4 + j] - a[8 + j];
            r1[j] = r1[j] - a[12 + j];
        }
        y[0] = r0[0] + r0[1]; y[0] = y[0] + r0[2];
        y[1] = r0[1] - r0[2]; y[1] = y[1] - r0[3];
        y[2] = r1[0] + r1[1]; y[2] = y[2] + r1[2];
        y[3] = r1[1] - r1[2]; y[3] = y[3] - r1[3];
        for (int k = 0; k < 4; k++) {
            int yy = 2 * ty + k / 2, xx = 2 * tx + k % 2;
            if (yy >= height || xx >= width) continue;
            size_t pixel = first + (size_t)yy * width + xx;
            float val = y[k] + e->bias[o];
            if (e->residual) val = val + (float)((int32_t)e->residual[pixel * e->res_stride + o] - e->res_zero[o]) * e->res_scale[o];
            val = probe_activate(val, e->activation);
            if (e->out_f32) e->out_f32[pixel * e->out_stride + o] = val;
            else e->out_u8[pixel * e->out_stride + o] = probe_requantize(val, e->out_inv_scale[o], e->out_zero[o]);
        }
    }
}

static void wino_output_scalar(const probe_qconv_args *e, const float *const scale[16], int height, int width,
                               size_t image_pixels, int t0, int t1, const int32_t *m, size_t pos_stride) {
    for (int t = t0; t < t1; t++)
        wino_output_channels(e, scale, height, width, image_pixels, t, m + (size_t)(t - t0) * e->out_channels, pos_stride, 0,
                             e->out_channels);
}

#if defined(__x86_64__) || defined(_M_X64)
// The SIMD output transforms: the scalar sequence lane by lane (maxps(v, 0) is v > 0 ? v : 0,
// minps(r, 6) is r < 6 ? r : 6, cvtps2dq rounds to nearest even as rintf).
#define WINO_OUTPUT_SIMD(NAME, TARGET, W, VEC, IVEC, LOAD, ADD, SUB, MUL, MAX, MIN, SET1, CVT_I2F, CVT_F2I, IADD, IMAX, IMIN, \
                         ISET1, LOAD_U8_EPI32, LOAD_I32, STORE, STORE_U8)                                    \
    static TARGET void NAME(const probe_qconv_args *e, const float *const scale[16], int height, int width,          \
                            size_t image_pixels, int t0, int t1, const int32_t *m, size_t ps) {             \
        const int oc = e->out_channels, tiles_w = (width + 1) / 2, ov = oc / W * W, act = e->activation;   \
        const int tpi = ((height + 1) / 2) * tiles_w;                                                        \
        const VEC zero = SET1(0.0f), six = SET1(6.0f), lo = SET1(-512.0f), hi = SET1(512.0f);                \
        const IVEC qmin = ISET1(0), qmax = ISET1(PROBE_Q_MAX);                                               \
        for (int t = t0; t < t1; t++) {                                                                      \
            const int ty = t % tpi / tiles_w, tx = t % tpi % tiles_w;                                        \
            const size_t first = (size_t)(t / tpi) * image_pixels;                                           \
            const int32_t *mt = m + (size_t)(t - t0) * oc;                                                   \
            size_t pixel[4];                                                                                 \
            int valid[4];                                                                                    \
            for (int k = 0; k < 4; k++) {                                                                    \
                int yy = 2 * ty + k / 2, xx = 2 * tx + k % 2;                                                \
                valid[k] = yy < height && xx < width;                                                        \
                pixel[k] = first + (size_t)yy * width + xx;                                                  \
            }                                                                                                \
            for (int o = 0; o < ov; o += W) {                                                                \
                VEC a[16], r0[4], r1[4], y[4];                                                               \
                for (int p = 0; p < 16; p++) a[p] = MUL(CVT_I2F(LOAD_I32(mt + (size_t)p * ps + o)), LOAD(scale[p] + o)); \
                for (int j = 0; j < 4; j++) {                                                                \
                    r0[j] = ADD(ADD(a[j], a[4 + j]), a[8 + j]);                                              \
                    r1[j] = SUB(SUB(a[4 + j], a[8 + j]), a[12 + j]);                                         \
                }                                                                                            \
                y[0] = ADD(ADD(r0[0], r0[1]), r0[2]);                                                        \
                y[1] = SUB(SUB(r0[1], r0[2]), r0[3]);                                                        \
                y[2] = ADD(ADD(r1[0], r1[1]), r1[2]);                                                        \
                y[3] = SUB(SUB(r1[1], r1[2]), r1[3]);                                                        \
                const VEC bias = LOAD(e->bias + o);                                                          \
                VEC rs = zero, inv = zero;                                                                   \
                IVEC rz = qmin, oz = qmin;                                                                   \
                if (e->residual) { rs = LOAD(e->res_scale + o); rz = LOAD_I32(e->res_zero + o); }            \
                if (!e->out_f32) { inv = LOAD(e->out_inv_scale + o); oz = LOAD_I32(e->out_zero + o); }       \
                for (int k = 0; k < 4; k++) {                                                                \
                    if (!valid[k]) continue;                                                                 \
                    VEC v = ADD(y[k], bias);                                                                 \
                    if (e->residual) {                                                                       \
                        IVEC r = LOAD_U8_EPI32(e->residual + pixel[k] * e->res_stride + o);                 \
                        v = ADD(v, MUL(CVT_I2F(SUB##_I(r, rz)), rs));                                       \
                    }                                                                                        \
                    if (act != PROBE_ACT_NONE) v = MAX(v, zero);                                             \
                    if (act == PROBE_ACT_RELU6) v = MIN(v, six);                                             \
                    if (e->out_f32) {                                                                        \
                        STORE(e->out_f32 + pixel[k] * e->out_stride + o, v);                                 \
                    } else {                                                                                 \
                        VEC q = MIN(MAX(MUL(v, inv), lo), hi);                                               \
                        IVEC qi = IMIN(IMAX(IADD(CVT_F2I(q), oz), qmin), qmax);                              \
                        STORE_U8(e->out_u8 + pixel[k] * e->out_stride + o, qi);                              \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
            wino_output_channels(e, scale, height, width, image_pixels, t, mt, ps, ov, oc);                  \
        }                                                                                                    \
    }

#define _mm512_sub_ps_I _mm512_sub_epi32
#define _mm256_sub_ps_I _mm256_sub_epi32
static ALWAYS_INLINE_W TARGET_AVX512 __m512i wino_load_u8_512(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}
static ALWAYS_INLINE_W TARGET_AVX512 void wino_store_u8_512(uint8_t *p, __m512i q) {
    _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(q));
}
static ALWAYS_INLINE_W TARGET_AVX2 __m256i wino_load_u8_256(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}
static ALWAYS_INLINE_W TARGET_AVX2 void wino_store_u8_256(uint8_t *p, __m256i q) {
    // q in 0...255: to 16 bits (packs work within 128-bit halves: 64-bit pieces 0 and 2), then bytes
    __m128i w16 = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(q, q), 0x08));
    __m128i w = _mm_packus_epi16(w16, w16);
    _mm_storel_epi64((__m128i *)p, w);
}
static ALWAYS_INLINE_W TARGET_AVX512 __m512i wino_load_i32_512(const int32_t *p) { return _mm512_loadu_si512((const void *)p); }
static ALWAYS_INLINE_W TARGET_AVX2 __m256i wino_load_i32_256(const int32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

WINO_OUTPUT_SIMD(wino_output_avx512, TARGET_AVX512, 16, __m512, __m512i, _mm512_loadu_ps, _mm512_add_ps, _mm512_sub_ps,
                 _mm512_mul_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps, _mm512_cvtepi32_ps, _mm512_cvtps_epi32,
                 _mm512_add_epi32, _mm512_max_epi32, _mm512_min_epi32, _mm512_set1_epi32, wino_load_u8_512, wino_load_i32_512,
                 _mm512_storeu_ps, wino_store_u8_512)
WINO_OUTPUT_SIMD(wino_output_avx2, TARGET_AVX2, 8, __m256, __m256i, _mm256_loadu_ps, _mm256_add_ps, _mm256_sub_ps,
                 _mm256_mul_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps, _mm256_cvtepi32_ps, _mm256_cvtps_epi32,
                 _mm256_add_epi32, _mm256_max_epi32, _mm256_min_epi32, _mm256_set1_epi32, wino_load_u8_256, wino_load_i32_256,
                 _mm256_storeu_ps, wino_store_u8_256)
#endif

size_t probe_qwino_scratch_bytes(int block_tiles, int in_stride, int out_channels) {
    size_t v = (size_t)16 * block_tiles * in_stride, m = (size_t)16 * block_tiles * out_channels * sizeof(int32_t);
    size_t ind = (size_t)block_tiles * sizeof(int32_t);
    return ((v + 63) / 64 * 64) + m + ind + 64;
}

void probe_qwino(const probe_qwino_args *a, const uint8_t *input, int t0, int t1, void *scratch) {
    const int bt = a->block_tiles, cs = a->in_stride, oc = a->epilogue.out_channels;
    uint8_t *v = (uint8_t *)(((uintptr_t)scratch + 63) / 64 * 64);
    int32_t *m = (int32_t *)(v + ((size_t)16 * bt * cs + 63) / 64 * 64);
    const float *scale[16];
    for (int p = 0; p < 16; p++) scale[p] = a->gemm[p].scale;
    int32_t *ind = (int32_t *)(m + (size_t)16 * bt * oc);
    for (int i = 0; i < bt; i++) ind[i] = i * cs;
    const size_t ip = a->image_pixels > 0 ? (size_t)a->image_pixels : (size_t)a->height * a->width + 1;
    int kernel = probe_int8_kernel();
    for (int tb = t0; tb < t1; tb += bt) {
        int te = t1 - tb > bt ? tb + bt : t1;
        size_t vstride = (size_t)bt * cs, mstride = (size_t)bt * oc;
#if defined(__x86_64__) || defined(_M_X64)
        if (kernel == PROBE_INT8_VNNI) wino_input_avx512(input, ip, a->height, a->width, cs, tb, te, a->mult, v, vstride);
        else if (kernel == PROBE_INT8_AVX2) wino_input_avx2(input, ip, a->height, a->width, cs, tb, te, a->mult, v, vstride);
        else
#endif
            wino_input_scalar(input, ip, a->height, a->width, cs, tb, te, a->mult, v, vstride);
        for (int p = 0; p < 16; p++) {
            probe_qconv_args g = a->gemm[p];
            g.out_i32 = m + (size_t)p * mstride;
            g.out_f32 = NULL;
            g.out_u8 = NULL;
            g.out_stride = oc;
            g.residual = NULL;
            probe_qconv(&g, v + (size_t)p * vstride, ind, 0, te - tb);
        }
#if defined(__x86_64__) || defined(_M_X64)
        if (kernel == PROBE_INT8_VNNI) wino_output_avx512(&a->epilogue, scale, a->height, a->width, ip, tb, te, m, mstride);
        else if (kernel == PROBE_INT8_AVX2) wino_output_avx2(&a->epilogue, scale, a->height, a->width, ip, tb, te, m, mstride);
        else
#endif
            wino_output_scalar(&a->epilogue, scale, a->height, a->width, ip, tb, te, m, mstride);
    }
}

void probe_qwino_histogram(const uint8_t *input, int height, int width, int channels, int cs, int64_t *hist) {
    int tiles = ((height + 1) / 2) * ((width + 1) / 2);
    for (int t = 0; t < tiles; t++) {
        const uint8_t *px[16];
        wino_patch(input, NULL, height, width, cs, t, px);  // (outside: NULL, read as 0 below)
        for (int c = 0; c < channels; c++) {
            int32_t d[16], w[16];
            for (int k = 0; k < 16; k++) d[k] = px[k] ? px[k][c] : 0;
            wino_transform(d, w);
            for (int p = 0; p < 16; p++) hist[(size_t)p * WINO_BINS + (w[p] + PROBE_WINO_VMAX)] += 1;
        }
    }
}
