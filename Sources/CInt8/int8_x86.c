// The x86 versions of the int8 kernels: AVX2 (vpmaddubsw, vpmaddwd) and AVX-512 VNNI (vpdpbusd)
// for probe_qconv and probe_qdwconv3x3, and vector versions of probe_qmaxpool3x3s2 and
// probe_quantize_chw; compiled with per-function target attributes (the package has no compiler
// flags) and chosen at run time (int8.c). Their sums of products are exact int32
// (include/probe_int8.h), and their epilogue is the scalar one's sequence of IEEE operations lane
// by lane:
//   (float)(acc + acc_offset) * scale, + bias, + (float)(residual - res_zero) * res_scale,
//   relu = maxps(v, 0), relu6 = minps(maxps(v, 0), 6),
//   requantization maxps(v * inv_scale, -512), minps(., 512), cvtps2dq (round to nearest even, as
//   rintf in the default rounding mode), + zero, clamped to 0...255 (in int32, or by saturating
//   packs: the same); every per-channel term (scale, bias, offsets, zero points) loaded by channel;
//   the VNNI versions start their int32 sums from acc_offset (exact in any order) and leave out
//   the clamps that provably change nothing (their requantization modes: VNNI_Q_*);
// maxps(a, b) is a > b ? a : b and minps(a, b) is a < b ? a : b (NaN and signed zero included),
// exactly the scalar's comparisons. Multiplies and adds stay separate instructions: no fused
// multiply-adds (the pragmas below, for clang and gcc).
//
// The convolution is a matrix product over an indirection buffer: a micro-kernel keeps MR output
// pixels x NB blocks of 16 output channels of int32 accumulators in registers and, for each tap and
// each group of 4 input channels, broadcasts a pixel's 4 activation bytes (one 32-bit broadcast)
// against the 64 bytes (16 channels x 4) of the block's packed weights. (AVX2's 8-bit product sum,
// vpmaddubsw, sums pairs in 16 bits: exact only on bounded weight pairs; see avx2_tile.)
#include "int8_internal.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
// gcc ignores the standard pragma and contracts by default (-ffp-contract=fast), and the AVX-512
// target has FMA: vector multiplies and adds would fuse.
#pragma GCC optimize("fp-contract=off")
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
// Full unrolling of the loops over a tile's pixels and blocks (constant trip counts): the
// accumulators must be indexed by constants to live in registers.
#define UNROLL _Pragma("GCC unroll 16")
#define TARGET_AVX2 __attribute__((target("avx2")))
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

static ALWAYS_INLINE int32_t load_u32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// Pixels per chunk: a chunk's activations (taps x cin_stride bytes per output pixel, an upper
// bound: neighbouring pixels share input pixels) stay in L2 while every block group of the weights
// passes over them; within a chunk, one block group's weights stay in L1/L2 while all of the
// chunk's pixel tiles pass. Large maps with small weights: many chunks, each with all the weights;
// small maps with large weights (7x7x512): one chunk, the weights streamed once.
static int chunk_pixels(const probe_qconv_args *a, int mr) {
    size_t per_pixel = (size_t)a->taps * a->cin_stride;
    size_t n = ((size_t)256 << 10) / (per_pixel ? per_pixel : 1);
    if (n < (size_t)4 * mr) n = (size_t)4 * mr;
    if (n > 1 << 20) n = 1 << 20;
    return (int)((n + mr - 1) / mr * mr);
}

// MARK: - AVX-512 VNNI

#define VNNI_MR 6 // output pixels per tile
#define VNNI_NB 4 // blocks of 16 output channels per tile (24 zmm accumulators)

// The activation and the requantization to u8 (probe_activate, probe_requantize) on 16 floats.
static ALWAYS_INLINE TARGET_VNNI __m512 vnni_activate(__m512 v, int act) {
    if (act == PROBE_ACT_RELU || act == PROBE_ACT_RELU6) v = _mm512_max_ps(v, _mm512_setzero_ps());
    if (act == PROBE_ACT_RELU6) v = _mm512_min_ps(v, _mm512_set1_ps(6.0f));
    return v;
}

// Requantization before the final clamp to 0...255: rint(clamp(v * inv_scale, -512, 512)) + zero.
static ALWAYS_INLINE TARGET_VNNI __m512i vnni_quantize_unclamped(__m512 v, __m512 inv_scale, __m512i zero) {
    __m512 t = _mm512_mul_ps(v, inv_scale);
    t = _mm512_max_ps(t, _mm512_set1_ps(-512.0f));
    t = _mm512_min_ps(t, _mm512_set1_ps(512.0f));
    return _mm512_add_epi32(_mm512_cvtps_epi32(t), zero);
}

static ALWAYS_INLINE TARGET_VNNI __m512i vnni_requantize_epi32(__m512 v, __m512 inv_scale, __m512i zero) {
    __m512i q = vnni_quantize_unclamped(v, inv_scale, zero);
    return _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(PROBE_Q_MAX));
}

static ALWAYS_INLINE TARGET_VNNI __m128i vnni_requantize(__m512 v, __m512 inv_scale, __m512i zero) {
    return _mm512_cvtepi32_epi8(vnni_requantize_epi32(v, inv_scale, zero));
}

// Requantization modes: which of the float clamps of t = v * inv_scale are no-ops, left out.
//   VNNI_Q_FULL: both (the general case);
//   VNNI_Q_NOLOW: maxps(t, -512) is t: the activation is relu or relu6 (v >= +0 after maxps(v, 0),
//     never NaN) and 0 < inv_scale < inf, so t is in [+0, +inf] (not NaN);
//   VNNI_Q_RELU6: the same for relu6, whose minps(r, 6) then goes into the upper clamp: with r in
//     [+0, +inf] and 0 < inv_scale < inf, x -> x * inv_scale is non-decreasing (rounding is
//     monotonic), so min(min(r, 6) * inv_scale, 512) = min(r * inv_scale, hi) with the channel's
//     hi = min(6 * inv_scale, 512) (vnni_relu6_high): maxps(v, 0), mulps, minps.
//   VNNI_Q_RELU6Z: VNNI_Q_RELU6 with every zero point 0 (relu6 outputs): q = rint(min(hi, v * inv))
//     with no maxps(v, 0) and no + zero, the negatives (and NaN, INT_MIN after cvtps2dq; minps(hi, x)
//     keeps x's NaN) clamped to 0 by the narrowing (saturating packs, or max(q, 0)): for v < 0, -0,
//     -inf or NaN, where the scalar's relu gives 0 and q = 0, rint(v * inv) <= 0 or INT_MIN; for
//     v >= +0 the VNNI_Q_RELU6 value.
enum { VNNI_Q_FULL = 0, VNNI_Q_NOLOW = 1, VNNI_Q_RELU6 = 2, VNNI_Q_RELU6Z = 3 };

// The mode of 16 channels (masked-off lanes of inv_scale: 1, of zero: 0).
static ALWAYS_INLINE TARGET_VNNI int vnni_requantize_mode(int act, __m512 inv, __m512i zero) {
    if (act != PROBE_ACT_RELU && act != PROBE_ACT_RELU6) return VNNI_Q_FULL;
    __mmask16 ok = _mm512_cmp_ps_mask(inv, _mm512_setzero_ps(), _CMP_GT_OQ)
                 & _mm512_cmp_ps_mask(inv, _mm512_set1_ps(__builtin_inff()), _CMP_LT_OQ);
    if (ok != (__mmask16)0xFFFF) return VNNI_Q_FULL;
    if (act != PROBE_ACT_RELU6) return VNNI_Q_NOLOW;
    return _mm512_test_epi32_mask(zero, zero) == 0 ? VNNI_Q_RELU6Z : VNNI_Q_RELU6;
}

// The mode of channels [0, n) (inv_scale NULL: float output, VNNI_Q_FULL); the modes' order:
// each one's conditions imply the previous one's.
static TARGET_VNNI int vnni_requantize_mode_of(int act, const float *inv_scale, const int32_t *zero, int n) {
    if (!inv_scale) return VNNI_Q_FULL;
    int mode = VNNI_Q_RELU6Z;
    for (int c = 0; c < n && mode > VNNI_Q_FULL; c += 16) {
        __mmask16 m = n - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - c)) - 1);
        int mc = vnni_requantize_mode(act, _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, inv_scale + c),
                                      _mm512_maskz_loadu_epi32(m, zero + c));
        mode = mc < mode ? mc : mode;
    }
    return mode;
}

// VNNI_Q_RELU6's upper clamp of a channel: min(6 * inv_scale, 512).
static ALWAYS_INLINE TARGET_VNNI __m512 vnni_relu6_high(__m512 inv_scale) {
    return _mm512_min_ps(_mm512_mul_ps(_mm512_set1_ps(6.0f), inv_scale), _mm512_set1_ps(512.0f));
}

// The activation and vnni_quantize_unclamped, with what `mode` leaves out (hi: VNNI_Q_RELU6 and
// VNNI_Q_RELU6Z only; VNNI_Q_RELU6Z's negatives are left to the caller's clamp to 0).
static ALWAYS_INLINE TARGET_VNNI __m512i vnni_act_quantize(__m512 v, int act, __m512 inv_scale, __m512 hi, __m512i zero,
                                                          const int mode) {
    __m512 t;
    if (mode == VNNI_Q_RELU6Z) return _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_mul_ps(v, inv_scale)));
    if (mode == VNNI_Q_RELU6) {
        t = _mm512_min_ps(_mm512_mul_ps(_mm512_max_ps(v, _mm512_setzero_ps()), inv_scale), hi);
    } else {
        t = _mm512_mul_ps(vnni_activate(v, act), inv_scale);
        if (mode == VNNI_Q_FULL) t = _mm512_max_ps(t, _mm512_set1_ps(-512.0f));
        t = _mm512_min_ps(t, _mm512_set1_ps(512.0f));
    }
    return _mm512_add_epi32(_mm512_cvtps_epi32(t), zero);
}

// The epilogue of a tile: acc[i][j] holds pixel p+i's channels (block0+j)*16 ... +15, acc_offset
// included (the tile's accumulators start from it); pixels i < np and channels below out_channels
// are stored. The blocks' parameters are loaded once for the tile. u8 output: a pixel's (up to) 4
// blocks of int32 are narrowed together (packssdw, packuswb: exact saturation to 0...255 = the
// clamp) into one 64-byte store; `mode` (a constant): the requantization's clamps left out.
static ALWAYS_INLINE TARGET_VNNI void vnni_epilogue_body(const probe_qconv_args *a, const __m512i acc[][VNNI_NB], int p, int np,
                                                        int block0, const int nb, const int f32, const int res, const int mode) {
    // The arguments as locals (stores through out_u8 could otherwise alias *a: reloads).
    const int act = a->activation;
    const size_t out_stride = (size_t)a->out_stride, res_stride = (size_t)a->res_stride;
    uint8_t *const out_u8 = a->out_u8;
    float *const out_f32 = a->out_f32;
    const uint8_t *const residual = a->residual;
    __m512i zero[VNNI_NB], res_zero[VNNI_NB];
    __m512 scale[VNNI_NB], bias[VNNI_NB], inv[VNNI_NB], hi[VNNI_NB], res_scale[VNNI_NB];
    __mmask16 m[VNNI_NB];
    __mmask64 mbytes = 0;
    UNROLL
    for (int j = 0; j < VNNI_NB; j++) {
        int n = j < nb ? a->out_channels - (block0 + j) * 16 : 0;
        m[j] = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        mbytes |= (__mmask64)m[j] << (16 * j);
        scale[j] = _mm512_maskz_loadu_ps(m[j], a->scale + (block0 + j) * 16);
        bias[j] = _mm512_maskz_loadu_ps(m[j], a->bias + (block0 + j) * 16);
        if (!f32) {
            inv[j] = _mm512_maskz_loadu_ps(m[j], a->out_inv_scale + (block0 + j) * 16);
            zero[j] = _mm512_maskz_loadu_epi32(m[j], a->out_zero + (block0 + j) * 16);
            hi[j] = vnni_relu6_high(inv[j]);
        }
        if (res) {
            res_scale[j] = _mm512_maskz_loadu_ps(m[j], a->res_scale + (block0 + j) * 16);
            res_zero[j] = _mm512_maskz_loadu_epi32(m[j], a->res_zero + (block0 + j) * 16);
        }
    }
    // packs work within 128-bit lanes: lane l of the packed bytes holds elements 4l...4l+3 of each
    // block in turn; this permutation of dwords puts block j's 16 bytes at 16j.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int i = 0; i < np; i++) {
        size_t pi = (size_t)(p + i);
        __m512i q[VNNI_NB];
        UNROLL
        for (int j = 0; j < VNNI_NB; j++) {
            q[j] = _mm512_setzero_si512();
            if (j >= nb) continue;
            int o = (block0 + j) * 16;
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[i][j]), scale[j]);
            v = _mm512_add_ps(v, bias[j]);
            if (res) {
                __m128i r8 = _mm_maskz_loadu_epi8(m[j], residual + pi * res_stride + o);
                __m512i r = _mm512_sub_epi32(_mm512_cvtepu8_epi32(r8), res_zero[j]);
                v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_cvtepi32_ps(r), res_scale[j]));
            }
            if (f32) _mm512_mask_storeu_ps(out_f32 + pi * out_stride + o, m[j], vnni_activate(v, act));
            else q[j] = vnni_act_quantize(v, act, inv[j], hi[j], zero[j], mode);
        }
        if (!f32) {
            __m512i b = _mm512_packus_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
            b = _mm512_permutexvar_epi32(order, b);
            _mm512_mask_storeu_epi8(out_u8 + pi * out_stride + block0 * 16, mbytes, b);
        }
    }
}

// The epilogue of a tile of nb blocks (a constant: one function each), its kind of output and
// requantization mode as constants in each branch.
#define VNNI_EPILOGUE(NB_) \
    static NOINLINE TARGET_VNNI void vnni_epilogue_##NB_(const probe_qconv_args *a, const __m512i acc[][VNNI_NB], int p, int np, \
                                                         int block0, int mode) { \
        if (a->out_f32) vnni_epilogue_body(a, acc, p, np, block0, NB_, 1, a->residual != NULL, VNNI_Q_FULL); \
        else if (a->residual) vnni_epilogue_body(a, acc, p, np, block0, NB_, 0, 1, VNNI_Q_FULL); \
        else if (mode == VNNI_Q_RELU6Z) vnni_epilogue_body(a, acc, p, np, block0, NB_, 0, 0, VNNI_Q_RELU6Z); \
        else if (mode == VNNI_Q_RELU6) vnni_epilogue_body(a, acc, p, np, block0, NB_, 0, 0, VNNI_Q_RELU6); \
        else if (mode == VNNI_Q_NOLOW) vnni_epilogue_body(a, acc, p, np, block0, NB_, 0, 0, VNNI_Q_NOLOW); \
        else vnni_epilogue_body(a, acc, p, np, block0, NB_, 0, 0, VNNI_Q_FULL); \
    }
VNNI_EPILOGUE(1) VNNI_EPILOGUE(2) VNNI_EPILOGUE(3) VNNI_EPILOGUE(4)

// One tile: pixels p...p+np-1 (np <= mr; rows past np repeat the last pixel and are not stored)
// x blocks block0...block0+nb-1. mr and nb are constants after inlining.
static ALWAYS_INLINE TARGET_VNNI void vnni_tile(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind,
                                                int p, int np, int block0, int mode, const int mr, const int nb) {
    const int taps = a->taps, gpt = a->cin_stride / 4;
    const size_t bstride = (size_t)taps * gpt * 64; // bytes of one block's packed weights
    const int8_t *w = a->weights + (size_t)block0 * bstride;
    const int32_t *rows[VNNI_MR];
    __m512i acc[VNNI_MR][VNNI_NB], off[VNNI_NB];
    // The sums start from acc_offset (int32 sums are exact in any order).
    UNROLL
    for (int j = 0; j < nb; j++) {
        int n = a->out_channels - (block0 + j) * 16;
        off[j] = _mm512_maskz_loadu_epi32(n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1), a->acc_offset + (block0 + j) * 16);
    }
    UNROLL
    for (int i = 0; i < mr; i++) {
        rows[i] = ind + (size_t)(p + (i < np ? i : np - 1)) * taps;
        UNROLL
        for (int j = 0; j < nb; j++) acc[i][j] = off[j];
    }
    for (int t = 0; t < taps; t++) {
        const uint8_t *x[VNNI_MR];
        UNROLL
        for (int i = 0; i < mr; i++) x[i] = input + rows[i][t];
        for (int g = 0; g < gpt; g++, w += 64) {
            __m512i wv[VNNI_NB];
            UNROLL
            for (int j = 0; j < nb; j++) wv[j] = _mm512_loadu_si512((const void *)(w + j * bstride));
            UNROLL
            for (int i = 0; i < mr; i++) {
                __m512i xv = _mm512_set1_epi32(load_u32(x[i] + 4 * g));
                UNROLL
                for (int j = 0; j < nb; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, wv[j]);
            }
        }
    }
    if (a->out_i32) {
        // the sums themselves (acc_offset included)
        UNROLL
        for (int i = 0; i < mr; i++) {
            if (i >= np) break;
            UNROLL
            for (int j = 0; j < nb; j++) {
                int n = a->out_channels - (block0 + j) * 16;
                _mm512_mask_storeu_epi32(a->out_i32 + (size_t)(p + i) * a->out_stride + (block0 + j) * 16,
                                         n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1), acc[i][j]);
            }
        }
        return;
    }
    // A copy for the epilogue (whose pointer argument would otherwise keep acc in memory).
    __m512i out[VNNI_MR][VNNI_NB];
    UNROLL
    for (int i = 0; i < mr; i++)
        UNROLL
        for (int j = 0; j < nb; j++) out[i][j] = acc[i][j];
    if (nb == 4) vnni_epilogue_4(a, out, p, np, block0, mode);
    else if (nb == 3) vnni_epilogue_3(a, out, p, np, block0, mode);
    else if (nb == 2) vnni_epilogue_2(a, out, p, np, block0, mode);
    else vnni_epilogue_1(a, out, p, np, block0, mode);
}

#define VNNI_TILE(MR_, NB_) \
    static TARGET_VNNI void vnni_tile_##MR_##x##NB_(const probe_qconv_args *a, const uint8_t *input, \
                                                    const int32_t *ind, int p, int np, int block0, int mode) { \
        vnni_tile(a, input, ind, p, np, block0, mode, MR_, NB_); \
    }
VNNI_TILE(6, 4) VNNI_TILE(6, 3) VNNI_TILE(6, 2) VNNI_TILE(6, 1)
VNNI_TILE(5, 4) VNNI_TILE(4, 4) VNNI_TILE(3, 4) VNNI_TILE(2, 4) VNNI_TILE(1, 4)

void probe_qconv_vnni(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1) {
    const int blocks = (a->out_channels + 15) / 16;
    const int chunk = chunk_pixels(a, VNNI_MR);
    const int mode = a->out_f32 || a->out_i32 ? VNNI_Q_FULL : vnni_requantize_mode_of(a->activation, a->out_inv_scale, a->out_zero,
                                                                          a->out_channels);
    for (int pc = p0; pc < p1; pc += chunk) {
        int pe = p1 - pc > chunk ? pc + chunk : p1;
        // Block groups of balanced sizes (9 blocks: 3 + 3 + 3, not 4 + 4 + 1).
        const int ngroups = (blocks + VNNI_NB - 1) / VNNI_NB;
        for (int gi = 0, b = 0; gi < ngroups; gi++) {
            int nb = blocks / ngroups + (gi < blocks % ngroups);
            for (int p = pc; p < pe; p += VNNI_MR) {
                int np = pe - p < VNNI_MR ? pe - p : VNNI_MR;
                if (nb == 4) {
                    // A full block group: the pixel remainder gets its own tile height.
                    switch (np) {
                    case 6: vnni_tile_6x4(a, input, ind, p, np, b, mode); break;
                    case 5: vnni_tile_5x4(a, input, ind, p, np, b, mode); break;
                    case 4: vnni_tile_4x4(a, input, ind, p, np, b, mode); break;
                    case 3: vnni_tile_3x4(a, input, ind, p, np, b, mode); break;
                    case 2: vnni_tile_2x4(a, input, ind, p, np, b, mode); break;
                    default: vnni_tile_1x4(a, input, ind, p, np, b, mode); break;
                    }
                } else if (nb == 3) {
                    vnni_tile_6x3(a, input, ind, p, np, b, mode);
                } else if (nb == 2) {
                    vnni_tile_6x2(a, input, ind, p, np, b, mode);
                } else {
                    vnni_tile_6x1(a, input, ind, p, np, b, mode);
                }
            }
            b += nb;
        }
    }
}

// MARK: - AVX2

// A tile is AVX2_MR output pixels x one block of 16 output channels.
#define AVX2_MR 5 // bounded: 10 ymm accumulators, 2 per pixel, the block's 2 weights, ones, the
                  // pixel's broadcast and a product; the widened way: 4 pixels

// The activation and the requantization to u8 (8 bytes in the low half) on 8 floats.
static ALWAYS_INLINE TARGET_AVX2 __m256 avx2_activate(__m256 v, int act) {
    if (act == PROBE_ACT_RELU || act == PROBE_ACT_RELU6) v = _mm256_max_ps(v, _mm256_setzero_ps());
    if (act == PROBE_ACT_RELU6) v = _mm256_min_ps(v, _mm256_set1_ps(6.0f));
    return v;
}

static ALWAYS_INLINE TARGET_AVX2 __m256i avx2_quantize_unclamped(__m256 v, __m256 inv_scale, __m256i zero) {
    __m256 t = _mm256_mul_ps(v, inv_scale);
    t = _mm256_max_ps(t, _mm256_set1_ps(-512.0f));
    t = _mm256_min_ps(t, _mm256_set1_ps(512.0f));
    return _mm256_add_epi32(_mm256_cvtps_epi32(t), zero);
}

static ALWAYS_INLINE TARGET_AVX2 __m256i avx2_requantize_epi32(__m256 v, __m256 inv_scale, __m256i zero) {
    __m256i q = avx2_quantize_unclamped(v, inv_scale, zero);
    return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(PROBE_Q_MAX));
}

static ALWAYS_INLINE TARGET_AVX2 __m128i avx2_requantize(__m256 v, __m256 inv_scale, __m256i zero) {
    __m256i q = avx2_requantize_epi32(v, inv_scale, zero);
    // 8 int32 in 0...255 -> 8 bytes (the packs do not saturate them).
    __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    return _mm_packus_epi16(q16, q16);
}

// The AVX2 requantization modes (of a convolution's channels, or a depthwise chunk's): which of the requantization's clamps can be left out.
// The narrowing is packssdw then packuswb, whose saturations are the clamp to 0...255.
//   AVX2_Q_FULL: none (the general case: any zero point).
//   AVX2_Q_ZP: every zero point in 0...255: the lower clamp maxps(t, -512) is left out and the
//     upper one is minps(512, t) (512 < t ? 512 : t: a NaN t stays NaN). For t NaN, -inf or
//     t < -512 the scalar's value is -512 + zero < 0, clamped to 0; here cvtps2dq gives
//     rint(t) <= -512 or INT_MIN (NaN, out of range), and + zero (at most 255) stays negative:
//     0 as well. Otherwise t is as in the scalar.
//   AVX2_Q_RELU6: relu6, every zero point in 0...255 and 0 < inv_scale < inf: as VNNI_Q_RELU6,
//     q = rint(min(max(v, 0) * inv_scale, hi)) + zero with hi = min(6 * inv_scale, 512).
//   AVX2_Q_RELU6Z: AVX2_Q_RELU6 with every zero point 0: as VNNI_Q_RELU6Z, q = rint(minps(hi, v *
//     inv_scale)), the negatives (NaN, -0 and -inf included: rint <= 0 or INT_MIN) clamped to 0
//     by the packs, where the scalar's relu gives 0.
enum { AVX2_Q_FULL = 0, AVX2_Q_ZP = 1, AVX2_Q_RELU6 = 2, AVX2_Q_RELU6Z = 3 };

// The mode of channels with output inverse scales inv[] and zero points zero[] (n of them).
static int avx2_requantize_mode(int act, const float *inv, const int32_t *zero, int n) {
    int zp = 1, pos = 1, z0 = 1;
    for (int c = 0; c < n; c++) {
        zp &= zero[c] >= 0 && zero[c] <= PROBE_Q_MAX;
        pos &= inv[c] > 0.0f && inv[c] < __builtin_inff();
        z0 &= zero[c] == 0;
    }
    if (!zp) return AVX2_Q_FULL;
    if (act != PROBE_ACT_RELU6 || !pos) return AVX2_Q_ZP;
    return z0 ? AVX2_Q_RELU6Z : AVX2_Q_RELU6;
}

// The activation and the requantization of 8 epilogue values before the narrowing's clamp to
// 0...255, with what `mode` leaves out (hi: min(6 * inv, 512), AVX2_Q_RELU6 and AVX2_Q_RELU6Z only).
static ALWAYS_INLINE TARGET_AVX2 __m256i avx2_act_quantize(__m256 v, int act, __m256 inv, __m256 hi, __m256i zero, const int mode) {
    if (mode == AVX2_Q_FULL) return avx2_quantize_unclamped(avx2_activate(v, act), inv, zero);
    if (mode == AVX2_Q_ZP) {
        __m256 t = _mm256_mul_ps(avx2_activate(v, act), inv);
        return _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_set1_ps(512.0f), t)), zero);
    }
    if (mode == AVX2_Q_RELU6) {
        __m256 t = _mm256_mul_ps(_mm256_max_ps(v, _mm256_setzero_ps()), inv);
        return _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(t, hi)), zero);
    }
    return _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_mul_ps(v, inv)));
}

// Lanes i < n of 8 (n may be <= 0 or >= 8): the mask of maskload/maskstore.
static ALWAYS_INLINE TARGET_AVX2 __m256i avx2_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The epilogue of a tile (one block of 16 channels), as vnni_epilogue_body: acc[i][h] holds pixel
// p+i's channels block0*16+h*8 ... +7, acc_offset included (the tile's sums start from it); the
// block's parameters loaded once (a partial block's by masked loads: lanes past out_channels are
// neither read nor stored). u8 output: the two halves narrowed together (packssdw, packuswb: the
// clamp to 0...255; one permute) into one 16-byte store. f32, res and mode are constants.
static ALWAYS_INLINE TARGET_AVX2 void avx2_epilogue_body(const probe_qconv_args *a, const __m256i acc[][2], int p, int np,
                                                        int block0, const int f32, const int res, const int mode) {
    // The arguments as locals (stores through out_u8 could otherwise alias *a: reloads).
    const int act = a->activation, o = block0 * 16;
    const int n = a->out_channels - o < 16 ? a->out_channels - o : 16; // channels stored, 1...16
    const size_t out_stride = (size_t)a->out_stride, res_stride = (size_t)a->res_stride;
    uint8_t *const out_u8 = a->out_u8;
    float *const out_f32 = a->out_f32;
    const uint8_t *const residual = a->residual;
    __m256i m[2], zero[2], res_zero[2];
    __m256 scale[2], bias[2], inv[2], hi[2], res_scale[2];
    for (int h = 0; h < 2; h++) {
        m[h] = avx2_lanes(n - 8 * h);
        scale[h] = _mm256_maskload_ps(a->scale + o + 8 * h, m[h]);
        bias[h] = _mm256_maskload_ps(a->bias + o + 8 * h, m[h]);
        if (!f32) {
            inv[h] = _mm256_maskload_ps(a->out_inv_scale + o + 8 * h, m[h]);
            zero[h] = _mm256_maskload_epi32(a->out_zero + o + 8 * h, m[h]);
            hi[h] = _mm256_min_ps(_mm256_mul_ps(_mm256_set1_ps(6.0f), inv[h]), _mm256_set1_ps(512.0f));
        }
        if (res) {
            res_scale[h] = _mm256_maskload_ps(a->res_scale + o + 8 * h, m[h]);
            res_zero[h] = _mm256_maskload_epi32(a->res_zero + o + 8 * h, m[h]);
        }
    }
    // After the packs, dword 0 of 128-bit lane l holds bytes 4l...4l+3 of half 0, dword 1 those of half 1.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int i = 0; i < np; i++) {
        size_t pi = (size_t)(p + i);
        __m256 v[2];
        UNROLL
        for (int h = 0; h < 2; h++) v[h] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][h]), scale[h]), bias[h]);
        if (res) {
            const uint8_t *resp = residual + pi * res_stride + o;
            uint8_t res_t[16] = {0};
            if (n < 16) {
                memcpy(res_t, resp, n);
                resp = res_t;
            }
            UNROLL
            for (int h = 0; h < 2; h++) {
                __m256i r = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(resp + 8 * h))), res_zero[h]);
                v[h] = _mm256_add_ps(v[h], _mm256_mul_ps(_mm256_cvtepi32_ps(r), res_scale[h]));
            }
        }
        if (f32) {
            float *out = out_f32 + pi * out_stride + o;
            UNROLL
            for (int h = 0; h < 2; h++) _mm256_maskstore_ps(out + 8 * h, m[h], avx2_activate(v[h], act));
        } else {
            __m256i q0 = avx2_act_quantize(v[0], act, inv[0], hi[0], zero[0], mode);
            __m256i q1 = avx2_act_quantize(v[1], act, inv[1], hi[1], zero[1], mode);
            __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(_mm256_packs_epi32(q0, q1), _mm256_setzero_si256()), order);
            uint8_t *out = out_u8 + pi * out_stride + o;
            if (n == 16) {
                _mm_storeu_si128((__m128i *)out, _mm256_castsi256_si128(b));
            } else {
                uint8_t t8[16];
                _mm_storeu_si128((__m128i *)t8, _mm256_castsi256_si128(b));
                memcpy(out, t8, n);
            }
        }
    }
}

// The epilogue of a tile, its kind of output and requantization mode as constants in each branch.
static NOINLINE TARGET_AVX2 void avx2_epilogue(const probe_qconv_args *a, const __m256i acc[][2], int p, int np, int block0,
                                              int mode) {
#define AVX2_EPI(RES) \
    switch (mode) { \
    case AVX2_Q_RELU6Z: avx2_epilogue_body(a, acc, p, np, block0, 0, RES, AVX2_Q_RELU6Z); break; \
    case AVX2_Q_RELU6: avx2_epilogue_body(a, acc, p, np, block0, 0, RES, AVX2_Q_RELU6); break; \
    case AVX2_Q_ZP: avx2_epilogue_body(a, acc, p, np, block0, 0, RES, AVX2_Q_ZP); break; \
    default: avx2_epilogue_body(a, acc, p, np, block0, 0, RES, AVX2_Q_FULL); break; \
    }
    if (a->out_f32) {
        if (a->residual) avx2_epilogue_body(a, acc, p, np, block0, 1, 1, AVX2_Q_FULL);
        else avx2_epilogue_body(a, acc, p, np, block0, 1, 0, AVX2_Q_FULL);
    } else if (a->residual) {
        AVX2_EPI(1)
    } else {
        AVX2_EPI(0)
    }
#undef AVX2_EPI
}

// One tile, as vnni_tile, on AVX2: pixels p...p+np-1 x block block0 (16 channels: two halves of 8,
// a ymm each), mr a constant. Two ways to an exact int32 sum of u8 x s8 products:
// - `bounded` (a->pairs_bounded: probe_qconv_pairs_bounded): vpmaddubsw sums each channel's pairs of
//   products (k0, k1) and (k2, k3) into int16, exact because each pair sum is within
//   255 * PROBE_PAIR_MAX = 32640; vpmaddwd against ones adds the two into int32. 32 MACs per
//   vpmaddubsw + vpmaddwd + vpaddd.
// - otherwise (a pair sum could reach 2 * 255 * 127 and saturate), both sides widened to int16:
//   a 32-byte half of a block's weight group (8 channels x bytes k0 k1 k2 k3) gives, by shifts of
//   its 16-bit words, wv_even = the channels' (k0, k2) words and wv_odd = their (k1, k3) words; the
//   pixel's 4 bytes (one 32-bit broadcast) give x_even = (a0, a2) (and 0x00FF00FF) and x_odd =
//   (a1, a3) (16-bit shift by 8) in each dword; then vpmaddwd(x_even, wv_even) + vpmaddwd(x_odd,
//   wv_odd) is each channel's 4 products: 16 MACs per vpmaddwd + vpaddd. (Measured on Zen 4, 3x3
//   layers: about 76 GMAC/s against about 110 for the bounded way.)
// The weights are loaded (and widened) once per group for the tile's pixels.
static ALWAYS_INLINE TARGET_AVX2 void avx2_tile(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind,
                                                int p, int np, int block0, int mode, const int mr, const int bounded) {
    const int taps = a->taps, gpt = a->cin_stride / 4;
    const int8_t *w = a->weights + (size_t)block0 * taps * gpt * 64;
    const int32_t *rows[AVX2_MR];
    __m256i acc[AVX2_MR][2];
    const __m256i even_bytes = _mm256_set1_epi32(0x00FF00FF), ones = _mm256_set1_epi16(1);
    // The sums start from acc_offset (int32 sums are exact in any order).
    const int n = a->out_channels - block0 * 16;
    const __m256i off0 = _mm256_maskload_epi32(a->acc_offset + block0 * 16, avx2_lanes(n)),
                  off1 = _mm256_maskload_epi32(a->acc_offset + block0 * 16 + 8, avx2_lanes(n - 8));
    UNROLL
    for (int i = 0; i < mr; i++) {
        rows[i] = ind + (size_t)(p + (i < np ? i : np - 1)) * taps;
        acc[i][0] = off0, acc[i][1] = off1;
    }
    for (int t = 0; t < taps; t++) {
        const uint8_t *x[AVX2_MR];
        UNROLL
        for (int i = 0; i < mr; i++) x[i] = input + rows[i][t];
        for (int g = 0; g < gpt; g++, w += 64) {
            __m256i wv[2], w_odd[2];
            UNROLL
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(w + 32 * h));
                if (bounded) {
                    wv[h] = v;
                } else {
                    wv[h] = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);
                    w_odd[h] = _mm256_srai_epi16(v, 8);
                }
            }
            UNROLL
            for (int i = 0; i < mr; i++) {
                __m256i xv = _mm256_set1_epi32(load_u32(x[i] + 4 * g));
                if (bounded) {
                    UNROLL
                    for (int h = 0; h < 2; h++)
                        acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(_mm256_maddubs_epi16(xv, wv[h]), ones));
                } else {
                    __m256i x_even = _mm256_and_si256(xv, even_bytes), x_odd = _mm256_srli_epi16(xv, 8);
                    UNROLL
                    for (int h = 0; h < 2; h++)
                        acc[i][h] = _mm256_add_epi32(_mm256_add_epi32(acc[i][h], _mm256_madd_epi16(x_even, wv[h])),
                                                     _mm256_madd_epi16(x_odd, w_odd[h]));
                }
            }
        }
    }
    if (a->out_i32) {
        // the sums themselves (acc_offset included)
        UNROLL
        for (int i = 0; i < mr; i++) {
            if (i >= np) break;
            int32_t *o = a->out_i32 + (size_t)(p + i) * a->out_stride + block0 * 16;
            _mm256_maskstore_epi32(o, avx2_lanes(n), acc[i][0]);
            _mm256_maskstore_epi32(o + 8, avx2_lanes(n - 8), acc[i][1]);
        }
        return;
    }
    __m256i out[AVX2_MR][2];
    UNROLL
    for (int i = 0; i < mr; i++) out[i][0] = acc[i][0], out[i][1] = acc[i][1];
    avx2_epilogue(a, out, p, np, block0, mode);
}

#define AVX2_TILE(MR_) \
    static TARGET_AVX2 void avx2_tile_##MR_(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p, \
                                            int np, int block0, int mode) { \
        avx2_tile(a, input, ind, p, np, block0, mode, MR_, 0); \
    } \
    static TARGET_AVX2 void avx2_tile_bounded_##MR_(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, \
                                                    int p, int np, int block0, int mode) { \
        avx2_tile(a, input, ind, p, np, block0, mode, MR_, 1); \
    }
AVX2_TILE(5) AVX2_TILE(4) AVX2_TILE(3) AVX2_TILE(2) AVX2_TILE(1)

void probe_qconv_avx2(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1) {
    const int blocks = (a->out_channels + 15) / 16;
    const int chunk = chunk_pixels(a, AVX2_MR);
    typedef void (*tile_fn)(const probe_qconv_args *, const uint8_t *, const int32_t *, int, int, int, int);
    const int mode = a->out_f32 || a->out_i32 ? AVX2_Q_FULL : avx2_requantize_mode(a->activation, a->out_inv_scale, a->out_zero, a->out_channels);
    // tiles[bounded][np - 1]
    static const tile_fn tiles[2][AVX2_MR] = {
        {avx2_tile_1, avx2_tile_2, avx2_tile_3, avx2_tile_4, avx2_tile_5},
        {avx2_tile_bounded_1, avx2_tile_bounded_2, avx2_tile_bounded_3, avx2_tile_bounded_4, avx2_tile_bounded_5},
    };
    const int bounded = a->pairs_bounded != 0;
    // The widened way keeps 4 pixels (its widened weights and activations take more registers).
    const int mr = bounded ? AVX2_MR : 4;
    for (int pc = p0; pc < p1; pc += chunk) {
        int pe = p1 - pc > chunk ? pc + chunk : p1;
        for (int b = 0; b < blocks; b++) {
            for (int p = pc; p < pe; p += mr) {
                int np = pe - p < mr ? pe - p : mr;
                tiles[bounded][np - 1](a, input, ind, p, np, b, mode);
            }
        }
    }
}
// MARK: - Depthwise 3x3

// Depthwise 3x3 (probe_qdwconv3x3): for each block of up to 8 output rows, chunks of 16 channels
// with their 9 taps' weights widened in registers (or, AVX2, a chunk's set-up in memory), then the
// rows' pixels, the interior 4 at a time, sharing input columns. VNNI: a product is the input byte
// zero-extended to an int32 lane against the weight sign-extended to one (vpdpbusd: x * w + 0 *
// (sign bytes), exact); AVX2: two taps per vpmaddwd (see "The AVX2 version" below). Taps outside the input are
// skipped (VNNI) or read as 0 (AVX2), as the scalar version's skipped taps (zero point 0). Channels
// past a multiple of 16 in the AVX2 version: 8 with one product per dword (dw_avx2_row8), the rest
// through the scalar code below.

// The valid taps of output coordinate y (or x): k in [*k0, *k1) with 0 <= y * stride + k - 1 < size.
static ALWAYS_INLINE void dw_tap_range(int y, int stride, int size, int *k0, int *k1) {
    int i = y * stride - 1;
    *k0 = i < 0 ? -i : 0;
    *k1 = size - i < 3 ? size - i : 3;
}

// The scalar version's arithmetic for channels [c0, c1) of output pixel (y, x).
static void dw_scalar_channels(const uint8_t *input, int height, int width, int stride_c, int stride, int channels,
                               const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                               int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *out, int y, int x,
                               int c0, int c1) {
    int ky0, ky1, kx0, kx1;
    dw_tap_range(y, stride, height, &ky0, &ky1);
    dw_tap_range(x, stride, width, &kx0, &kx1);
    for (int c = c0; c < c1; c++) {
        int32_t acc = 0;
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                size_t ip = (size_t)(y * stride + ky - 1) * width + (x * stride + kx - 1);
                acc += (int32_t)input[ip * stride_c + c] * w[(ky * 3 + kx) * channels + c];
            }
        float v = (float)(acc + acc_offset[c]) * scale[c];
        v = v + bias[c];
        out[c] = probe_requantize(probe_activate(v, activation), out_inv_scale[c], out_zero[c]);
    }
}

// The epilogue of 16 depthwise sums, acc_offset included (the scalar sequence), to u8. `mode`
// (dw_requantize_mode): the requantization's clamps left out.
static ALWAYS_INLINE TARGET_VNNI __m128i dw_vnni_epilogue(__m512i sum, __m512 sc, __m512 bi, int act, __m512 inv, __m512 hi,
                                                         __m512i zero, const int mode) {
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum), sc), bi);
    if (mode == VNNI_Q_FULL) return vnni_requantize(vnni_activate(v, act), inv, zero);
    if (mode == VNNI_Q_RELU6Z)
        return _mm512_cvtusepi32_epi8(_mm512_max_epi32(vnni_act_quantize(v, act, inv, hi, zero, mode), _mm512_setzero_si512()));
    // t >= +0 (vnni_requantize_mode) and zero >= 0: q = rint(t) + zero >= 0, so max(q, 0) is q,
    // and vpmovusdb's unsigned saturation is the min(q, 255).
    return _mm512_cvtusepi32_epi8(vnni_act_quantize(v, act, inv, hi, zero, mode));
}

// A chunk's requantization mode: vnni_requantize_mode, when each of its channels has
// 0 <= zero <= 255 (masked-off lanes: inv 1, zero 0); else VNNI_Q_FULL.
static ALWAYS_INLINE TARGET_VNNI int dw_requantize_mode(int act, __m512 inv, __m512i zero) {
    if (_mm512_cmple_epu32_mask(zero, _mm512_set1_epi32(PROBE_Q_MAX)) != (__mmask16)0xFFFF) return VNNI_Q_FULL;
    return vnni_requantize_mode(act, inv, zero);
}

// 16 input channels of one pixel, zero-extended to int32 lanes (`full`: an unmasked load,
// folded into vpmovzxbd).
static ALWAYS_INLINE TARGET_VNNI __m512i dw_vnni_load(const uint8_t *p, __mmask16 m, const int full) {
    return _mm512_cvtepu8_epi32(full ? _mm_loadu_si128((const __m128i *)p) : _mm_maskz_loadu_epi8(m, p));
}

// Output pixels x...x+nx-1 of row y (nx <= DW_X, all taps inside the input horizontally), one
// chunk of 16 channels: each input column the pixels read is loaded and converted once (stride 1,
// 4 pixels: 6 columns instead of 12; stride 2: 9), each pixel's sum in two chains (kernel rows 0
// and 2, row 1; the first starts from acc_offset), added in int32 (exact).
#define DW_X 4
static ALWAYS_INLINE TARGET_VNNI void dw_vnni_pixels(const uint8_t *in_c, int width, int stride_c, const int s, int y, int x,
                                                     int ky0, int ky1, const __m512i wv[9], __mmask16 m, const int full,
                                                     const int nx, __m512i off, __m512i sum[DW_X]) {
    __m512i acc[DW_X][2];
    UNROLL
    for (int u = 0; u < nx; u++) acc[u][0] = off, acc[u][1] = _mm512_setzero_si512();
    UNROLL
    for (int ky = 0; ky < 3; ky++) {
        if (ky < ky0 || ky >= ky1) continue;
        const uint8_t *row = in_c + ((size_t)(y * s + ky - 1) * width + (size_t)(x * s - 1)) * stride_c;
        __m512i col[(DW_X - 1) * 2 + 3];
        UNROLL
        for (int j = 0; j < (nx - 1) * s + 3; j++) col[j] = dw_vnni_load(row + (size_t)j * stride_c, m, full);
        UNROLL
        for (int u = 0; u < nx; u++)
            UNROLL
            for (int kx = 0; kx < 3; kx++)
                acc[u][ky & 1] = _mm512_dpbusd_epi32(acc[u][ky & 1], col[u * s + kx], wv[ky * 3 + kx]);
    }
    UNROLL
    for (int u = 0; u < nx; u++) sum[u] = _mm512_add_epi32(acc[u][0], acc[u][1]);
}

// dw_vnni_pixels, their epilogues and stores.
static ALWAYS_INLINE TARGET_VNNI void dw_vnni_group(const uint8_t *in_c, int width, int stride_c, const int s, int y, int x,
                                                    int ky0, int ky1, const __m512i wv[9], __mmask16 m, const int full,
                                                    const int nx, __m512i off, __m512 sc, __m512 bi, int act, __m512 inv,
                                                    __m512 hi, __m512i zero, const int mode, uint8_t *out_c) {
    __m512i sum[DW_X];
    dw_vnni_pixels(in_c, width, stride_c, s, y, x, ky0, ky1, wv, m, full, nx, off, sum);
    UNROLL
    for (int u = 0; u < nx; u++) {
        __m128i q = dw_vnni_epilogue(sum[u], sc, bi, act, inv, hi, zero, mode);
        if (full) _mm_storeu_si128((__m128i *)(out_c + (size_t)(x + u) * stride_c), q);
        else _mm_mask_storeu_epi8(out_c + (size_t)(x + u) * stride_c, m, q);
    }
}

// One output pixel (any x: taps outside the input skipped), one chunk.
static ALWAYS_INLINE TARGET_VNNI __m512i dw_vnni_pixel(const uint8_t *in_c, int height, int width, int stride_c, int s, int y,
                                                       int x, int ky0, int ky1, const __m512i wv[9], __mmask16 m, const int full,
                                                       __m512i off) {
    int kx0, kx1;
    dw_tap_range(x, s, width, &kx0, &kx1);
    (void)height;
    __m512i acc[3] = {off, _mm512_setzero_si512(), _mm512_setzero_si512()};
    UNROLL
    for (int ky = 0; ky < 3; ky++) {
        if (ky < ky0 || ky >= ky1) continue;
        const uint8_t *row = in_c + (size_t)(y * s + ky - 1) * width * stride_c;
        UNROLL
        for (int kx = 0; kx < 3; kx++) {
            if (kx < kx0 || kx >= kx1) continue;
            const uint8_t *px = row + (size_t)(x * s + kx - 1) * stride_c;
            acc[ky] = _mm512_dpbusd_epi32(acc[ky], dw_vnni_load(px, m, full), wv[ky * 3 + kx]);
        }
    }
    return _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), acc[2]);
}

// One output row, one chunk of 16 channels (s, full, mode: constants after inlining): the
// interior pixels DW_X at a time, the others one by one.
static ALWAYS_INLINE TARGET_VNNI void dw_vnni_row(const uint8_t *in_c, int height, int width, int stride_c, const int s, int y,
                                                  int ky0, int ky1, const __m512i wv[9], __mmask16 m, const int full,
                                                  __m512i off, __m512 sc, __m512 bi, int act, __m512 inv, __m512 hi, __m512i zero,
                                                  const int mode, uint8_t *out_c, int ow) {
    // Interior: x >= 1 and x * s + 1 <= width - 1.
    const int xi1 = (width - 2) / s + 1 < ow ? (width - 2) / s + 1 : ow;
    int x = 0;
    for (; x < ow && x < 1; x++) { // x = 0: the left padding
        __m512i sum = dw_vnni_pixel(in_c, height, width, stride_c, s, y, x, ky0, ky1, wv, m, full, off);
        __m128i q = dw_vnni_epilogue(sum, sc, bi, act, inv, hi, zero, mode);
        if (full) _mm_storeu_si128((__m128i *)(out_c + (size_t)x * stride_c), q);
        else _mm_mask_storeu_epi8(out_c + (size_t)x * stride_c, m, q);
    }
    for (; x + DW_X <= xi1; x += DW_X) dw_vnni_group(in_c, width, stride_c, s, y, x, ky0, ky1, wv, m, full, DW_X,
                                                     off, sc, bi, act, inv, hi, zero, mode, out_c);
    if (x + 2 <= xi1) { // the interior's last 2 or 3 pixels (7-pixel rows: 1 + 4 + 2)
        dw_vnni_group(in_c, width, stride_c, s, y, x, ky0, ky1, wv, m, full, 2, off, sc, bi, act, inv, hi, zero, mode, out_c);
        x += 2;
    }
    for (; x < ow; x++) {
        __m512i sum = dw_vnni_pixel(in_c, height, width, stride_c, s, y, x, ky0, ky1, wv, m, full, off);
        __m128i q = dw_vnni_epilogue(sum, sc, bi, act, inv, hi, zero, mode);
        if (full) _mm_storeu_si128((__m128i *)(out_c + (size_t)x * stride_c), q);
        else _mm_mask_storeu_epi8(out_c + (size_t)x * stride_c, m, q);
    }
}

// Output rows [y0, y1) of one chunk (out_c: the chunk's first channel in the output tensor).
#define DW_ROWS(NAME, S, FULL, MODE) \
    static NOINLINE TARGET_VNNI void NAME(const uint8_t *in_c, int height, int width, int stride_c, int y0, int y1, \
                                          const __m512i wv[9], __mmask16 m, __m512i off, __m512 sc, __m512 bi, int act, \
                                          __m512 inv, __m512 hi, __m512i zero, uint8_t *out_c, int ow) { \
        for (int y = y0; y < y1; y++) { \
            int ky0, ky1; \
            dw_tap_range(y, S, height, &ky0, &ky1); \
            dw_vnni_row(in_c, height, width, stride_c, S, y, ky0, ky1, wv, m, FULL, off, sc, bi, act, inv, hi, zero, MODE, \
                        out_c + (size_t)y * ow * stride_c, ow); \
        } \
    }
// Full chunks by requantization mode; a partial chunk (the last, masked) in the general mode.
DW_ROWS(dw_vnni_rows_s1_relu6z, 1, 1, VNNI_Q_RELU6Z) DW_ROWS(dw_vnni_rows_s1_relu6, 1, 1, VNNI_Q_RELU6) DW_ROWS(dw_vnni_rows_s1_nolow, 1, 1, VNNI_Q_NOLOW)
DW_ROWS(dw_vnni_rows_s1_full, 1, 1, VNNI_Q_FULL) DW_ROWS(dw_vnni_rows_s1_part, 1, 0, VNNI_Q_FULL)
DW_ROWS(dw_vnni_rows_s2_relu6z, 2, 1, VNNI_Q_RELU6Z) DW_ROWS(dw_vnni_rows_s2_relu6, 2, 1, VNNI_Q_RELU6) DW_ROWS(dw_vnni_rows_s2_nolow, 2, 1, VNNI_Q_NOLOW)
DW_ROWS(dw_vnni_rows_s2_full, 2, 1, VNNI_Q_FULL) DW_ROWS(dw_vnni_rows_s2_part, 2, 0, VNNI_Q_FULL)

#define DW_ROW_BLOCK 8 // output rows per pass over the chunks (a chunk's weights and parameters set up once per pass)

TARGET_VNNI void probe_qdwconv3x3_vnni(const uint8_t *input, int height, int width, int channels, int stride_c,
                                       int stride, const int8_t *w, const int32_t *acc_offset, const float *scale,
                                       const float *bias, int activation, const float *out_inv_scale, const int32_t *out_zero,
                                       uint8_t *output, int r0, int r1) {
    const int oh = (height - 1) / stride + 1, ow = (width - 1) / stride + 1;
    if (r1 > oh) r1 = oh;
    for (int y0 = r0; y0 < r1; y0 += DW_ROW_BLOCK) {
        const int y1 = r1 - y0 < DW_ROW_BLOCK ? r1 : y0 + DW_ROW_BLOCK;
        for (int c = 0; c < channels; c += 16) {
            int n = channels - c;
            const int full = n >= 16;
            __mmask16 m = full ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
            __m512i wv[9];
            for (int t = 0; t < 9; t++) wv[t] = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, w + t * channels + c));
            __m512i off = _mm512_maskz_loadu_epi32(m, acc_offset + c);
            __m512 sc = _mm512_maskz_loadu_ps(m, scale + c), bi = _mm512_maskz_loadu_ps(m, bias + c);
            __m512 inv = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, out_inv_scale + c);
            __m512i zero = _mm512_maskz_loadu_epi32(m, out_zero + c);
            __m512 hi = vnni_relu6_high(inv);
            const uint8_t *in_c = input + c;
            uint8_t *out_c = output + c;
            const int mode = full ? dw_requantize_mode(activation, inv, zero) : VNNI_Q_FULL;
#define DW_CALL(NAME) NAME(in_c, height, width, stride_c, y0, y1, wv, m, off, sc, bi, activation, inv, hi, zero, out_c, ow)
            if (stride == 1) {
                if (!full) DW_CALL(dw_vnni_rows_s1_part);
                else if (mode == VNNI_Q_RELU6Z) DW_CALL(dw_vnni_rows_s1_relu6z);
                else if (mode == VNNI_Q_RELU6) DW_CALL(dw_vnni_rows_s1_relu6);
                else if (mode == VNNI_Q_NOLOW) DW_CALL(dw_vnni_rows_s1_nolow);
                else DW_CALL(dw_vnni_rows_s1_full);
            } else {
                if (!full) DW_CALL(dw_vnni_rows_s2_part);
                else if (mode == VNNI_Q_RELU6Z) DW_CALL(dw_vnni_rows_s2_relu6z);
                else if (mode == VNNI_Q_RELU6) DW_CALL(dw_vnni_rows_s2_relu6);
                else if (mode == VNNI_Q_NOLOW) DW_CALL(dw_vnni_rows_s2_nolow);
                else DW_CALL(dw_vnni_rows_s2_full);
            }
#undef DW_CALL
        }
        if (stride_c > channels)
            for (size_t p = (size_t)y0 * ow; p < (size_t)y1 * ow; p++) memset(output + p * stride_c + channels, 0, stride_c - channels);
    }
}

// The AVX2 version: chunks of 16 channels, two taps per vpmaddwd. A column (one input pixel's 16
// channels) is zero-extended to 16 int16 (vpmovzxbw); vpunpcklwd/vpunpckhwd of two columns give
// dwords (x_a, x_b) of one channel, lo: channels 0-3 and 8-11, hi: channels 4-7 and 12-15 (the
// unpacks work within 128-bit lanes), and the same unpacks of the sign-extended weights give
// (w_a, w_b); vpmaddwd is then x_a * w_a + x_b * w_b per channel, exact (|product| <= 255 * 127).
// A pixel's 9 taps in 5 such pairs: kernel rows 0 and 1 paired vertically, column by column
// ((x_0k, x_1k) . (w_0k, w_1k), k = 0, 1, 2), row 2 horizontally ((x_20, x_21) . (w_20, w_21)
// and (x_21, x_22) . (0, w_22)), so the interior pixels, 4 at a time, share their input columns'
// widening and interleaving (stride 1: 6 columns instead of 12; stride 2: 9). The sums start from
// acc_offset (exact in any order) and keep the lo/hi channel order through the epilogue, whose
// packssdw of (lo, hi) puts the channels back in order (then packuswb of its two 128-bit lanes).
// A chunk's weight pairs and parameters (in the lo/hi order) are set up once per block of
// DW_ROW_BLOCK rows. Taps outside the input: zero columns (their products are 0). Channels past a
// multiple of 16: 8 at a time (one product per dword) and the scalar code.


// A chunk of 16 channels set up for the rows: w[k] the weight pairs (k = 0, 1, 2: (w_0k, w_1k);
// 3: (w_20, w_21); 4: (0, w_22)), every vector in the lo/hi channel order ([0]: lo, [1]: hi).
typedef struct {
    __m256i w[5][2];
    __m256i off[2], zero[2];
    __m256 sc[2], bi[2], inv[2], hi[2];
} dw_avx2_chunk;

// 16 int32 or floats at p in the lo/hi order.
static ALWAYS_INLINE TARGET_AVX2 void dw_avx2_load_lohi(const void *p, __m256i v[2]) {
    __m256i a = _mm256_loadu_si256((const __m256i *)p), b = _mm256_loadu_si256((const __m256i *)p + 1);
    v[0] = _mm256_permute2x128_si256(a, b, 0x20);
    v[1] = _mm256_permute2x128_si256(a, b, 0x31);
}

static TARGET_AVX2 int dw_avx2_setup(dw_avx2_chunk *k, const int8_t *w, int channels, int c, const int32_t *acc_offset,
                                     const float *scale, const float *bias, int act, const float *out_inv_scale,
                                     const int32_t *out_zero) {
    __m256i t[9];
    for (int j = 0; j < 9; j++) t[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + j * channels + c)));
    const __m256i z = _mm256_setzero_si256();
    const __m256i a[5] = {t[0], t[1], t[2], t[6], z}, b[5] = {t[3], t[4], t[5], t[7], t[8]};
    for (int j = 0; j < 5; j++) {
        k->w[j][0] = _mm256_unpacklo_epi16(a[j], b[j]);
        k->w[j][1] = _mm256_unpackhi_epi16(a[j], b[j]);
    }
    __m256i v[2];
    dw_avx2_load_lohi(acc_offset + c, k->off);
    dw_avx2_load_lohi(out_zero + c, k->zero);
    dw_avx2_load_lohi(scale + c, v), k->sc[0] = _mm256_castsi256_ps(v[0]), k->sc[1] = _mm256_castsi256_ps(v[1]);
    dw_avx2_load_lohi(bias + c, v), k->bi[0] = _mm256_castsi256_ps(v[0]), k->bi[1] = _mm256_castsi256_ps(v[1]);
    dw_avx2_load_lohi(out_inv_scale + c, v), k->inv[0] = _mm256_castsi256_ps(v[0]), k->inv[1] = _mm256_castsi256_ps(v[1]);
    for (int h = 0; h < 2; h++) k->hi[h] = _mm256_min_ps(_mm256_mul_ps(_mm256_set1_ps(6.0f), k->inv[h]), _mm256_set1_ps(512.0f));
    return avx2_requantize_mode(act, out_inv_scale + c, out_zero + c, 16);
}

// The epilogue of a pixel's 16 sums (acc_offset included; lo/hi order) to 16 bytes in channel
// order (the scalar sequence, with what `mode` leaves out).
static ALWAYS_INLINE TARGET_AVX2 __m128i dw_avx2_epilogue(const __m256i sum[2], const dw_avx2_chunk *k, int act, const int mode) {
    __m256i q[2];
    UNROLL
    for (int h = 0; h < 2; h++)
        q[h] = avx2_act_quantize(_mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum[h]), k->sc[h]), k->bi[h]), act, k->inv[h],
                                 k->hi[h], k->zero[h], mode);
    // packssdw: lane 0 = channels 0-3 (lo), 4-7 (hi); lane 1 = 8-11, 12-15.
    __m256i p = _mm256_packs_epi32(q[0], q[1]);
    return _mm_packus_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}

// One input column: 16 channels zero-extended to int16, or 0 when not `valid`.
static ALWAYS_INLINE TARGET_AVX2 __m256i dw_avx2_col(const uint8_t *p, int valid) {
    return valid ? _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p)) : _mm256_setzero_si256();
}

// Output pixels x...x+nx-1 of row y, one chunk: input columns j = 0...(nx-1)*s+2 (input x = x*s-1+j),
// each loaded and widened once per kernel row. `edge` (a constant): kernel rows outside [ky0, ky1)
// and columns outside [kx0, kx1) (single pixels only, nx = 1) read as zero; otherwise every tap is
// inside the input.
#define DW_COLS ((DW_X - 1) * 2 + 3)
static ALWAYS_INLINE TARGET_AVX2 void dw_avx2_pixels(const uint8_t *in_c, int height, int width, int stride_c, const int s,
                                                     int y, int x, int ky0, int ky1, int kx0, int kx1, const int edge,
                                                     const dw_avx2_chunk *k, const int nx, __m256i sum[DW_X][2]) {
    const uint8_t *row[3];
    int rv[3];
    UNROLL
    for (int r = 0; r < 3; r++) {
        rv[r] = !edge || (r >= ky0 && r < ky1);
        int iy = y * s + r - 1;
        iy = iy < 0 ? 0 : iy >= height ? height - 1 : iy; // the row pointer stays inside (unread when invalid)
        row[r] = in_c + (size_t)iy * width * stride_c;
    }
    (void)height;
    UNROLL
    for (int u = 0; u < nx; u++) sum[u][0] = k->off[0], sum[u][1] = k->off[1];
    __m256i prev2 = _mm256_setzero_si256();
    UNROLL
    for (int j = 0; j < (nx - 1) * s + 3; j++) {
        const int ix = x * s - 1 + j;
        const int cv = nx > 1 || !edge || (j >= kx0 && j < kx1);
        const size_t off = (size_t)(cv ? ix : 0) * stride_c;
        __m256i c0 = dw_avx2_col(row[0] + off, cv && rv[0]), c1 = dw_avx2_col(row[1] + off, cv && rv[1]);
        __m256i c2 = dw_avx2_col(row[2] + off, cv && rv[2]);
        __m256i v[2] = {_mm256_unpacklo_epi16(c0, c1), _mm256_unpackhi_epi16(c0, c1)};
        UNROLL
        for (int u = 0; u < nx; u++) {
            const int kx = j - u * s;
            if (kx < 0 || kx > 2) continue;
            UNROLL
            for (int h = 0; h < 2; h++) sum[u][h] = _mm256_add_epi32(sum[u][h], _mm256_madd_epi16(v[h], k->w[kx][h]));
        }
        if (j > 0) { // row 2: columns (j-1, j) for the pixels whose kernel column 0 or 1 is j-1
            __m256i hv[2] = {_mm256_unpacklo_epi16(prev2, c2), _mm256_unpackhi_epi16(prev2, c2)};
            UNROLL
            for (int u = 0; u < nx; u++) {
                const int kx = j - 1 - u * s;
                if (kx < 0 || kx > 1) continue;
                UNROLL
                for (int h = 0; h < 2; h++)
                    sum[u][h] = _mm256_add_epi32(sum[u][h], _mm256_madd_epi16(hv[h], k->w[3 + kx][h]));
            }
        }
        prev2 = c2;
    }
}

// dw_avx2_pixels, their epilogues and stores.
static ALWAYS_INLINE TARGET_AVX2 void dw_avx2_group(const uint8_t *in_c, int height, int width, int stride_c, const int s, int y,
                                                    int x, int ky0, int ky1, int kx0, int kx1, const int edge,
                                                    const dw_avx2_chunk *k, const int nx, int act, const int mode, uint8_t *out_c) {
    __m256i sum[DW_X][2];
    dw_avx2_pixels(in_c, height, width, stride_c, s, y, x, ky0, ky1, kx0, kx1, edge, k, nx, sum);
    UNROLL
    for (int u = 0; u < nx; u++)
        _mm_storeu_si128((__m128i *)(out_c + (size_t)(x + u) * stride_c), dw_avx2_epilogue(sum[u], k, act, mode));
}

// One output row, one chunk (s, edge, mode: constants after inlining): the interior pixels DW_X at
// a time, then 2, the others one by one. `edge`: some kernel rows outside the input (ky0, ky1).
static ALWAYS_INLINE TARGET_AVX2 void dw_avx2_row(const uint8_t *in_c, int height, int width, int stride_c, const int s, int y,
                                                  int ky0, int ky1, const int edge, const dw_avx2_chunk *k, int act,
                                                  const int mode, uint8_t *out_c, int ow) {
    const int xi1 = (width - 2) / s + 1 < ow ? (width - 2) / s + 1 : ow; // interior: x >= 1 and x * s + 1 <= width - 1
    int x = 0, kx0, kx1;
    for (; x < ow && x < 1; x++) { // x = 0: the left padding
        dw_tap_range(x, s, width, &kx0, &kx1);
        dw_avx2_group(in_c, height, width, stride_c, s, y, x, ky0, ky1, kx0, kx1, 1, k, 1, act, mode, out_c);
    }
    for (; x + DW_X <= xi1; x += DW_X)
        dw_avx2_group(in_c, height, width, stride_c, s, y, x, ky0, ky1, 0, 3, edge, k, DW_X, act, mode, out_c);
    if (x + 2 <= xi1) { // the interior's last 2 or 3 pixels
        dw_avx2_group(in_c, height, width, stride_c, s, y, x, ky0, ky1, 0, 3, edge, k, 2, act, mode, out_c);
        x += 2;
    }
    for (; x < ow; x++) {
        dw_tap_range(x, s, width, &kx0, &kx1);
        dw_avx2_group(in_c, height, width, stride_c, s, y, x, ky0, ky1, kx0, kx1, 1, k, 1, act, mode, out_c);
    }
}

// Output rows [y0, y1) of one chunk (out_c: the chunk's first channel in the output tensor).
#define DW_AVX2_ROWS(NAME, S, MODE) \
    static NOINLINE TARGET_AVX2 void NAME(const uint8_t *in_c, int height, int width, int stride_c, int y0, int y1, \
                                          const dw_avx2_chunk *k, int act, uint8_t *out_c, int ow) { \
        for (int y = y0; y < y1; y++) { \
            int ky0, ky1; \
            dw_tap_range(y, S, height, &ky0, &ky1); \
            uint8_t *out_row = out_c + (size_t)y * ow * stride_c; \
            if (ky0 == 0 && ky1 == 3) dw_avx2_row(in_c, height, width, stride_c, S, y, ky0, ky1, 0, k, act, MODE, out_row, ow); \
            else dw_avx2_row(in_c, height, width, stride_c, S, y, ky0, ky1, 1, k, act, MODE, out_row, ow); \
        } \
    }
DW_AVX2_ROWS(dw_avx2_rows_s1_full, 1, AVX2_Q_FULL) DW_AVX2_ROWS(dw_avx2_rows_s1_zp, 1, AVX2_Q_ZP)
DW_AVX2_ROWS(dw_avx2_rows_s1_relu6, 1, AVX2_Q_RELU6) DW_AVX2_ROWS(dw_avx2_rows_s1_relu6z, 1, AVX2_Q_RELU6Z)
DW_AVX2_ROWS(dw_avx2_rows_s2_full, 2, AVX2_Q_FULL) DW_AVX2_ROWS(dw_avx2_rows_s2_zp, 2, AVX2_Q_ZP)
DW_AVX2_ROWS(dw_avx2_rows_s2_relu6, 2, AVX2_Q_RELU6) DW_AVX2_ROWS(dw_avx2_rows_s2_relu6z, 2, AVX2_Q_RELU6Z)

// Channels [c, c + 8) of output row y, one product per dword (the input byte zero-extended to an
// int32 lane against the weight sign-extended to one: vpmaddwd's x * w + 0 * (-1 or 0)), every
// pixel on its own, the full epilogue sequence.
static TARGET_AVX2 void dw_avx2_row8(const uint8_t *input, int height, int width, int channels, int stride_c, int stride,
                                     const int8_t *w, const int32_t *acc_offset, const float *scale, const float *bias,
                                     int activation, const float *out_inv_scale, const int32_t *out_zero, uint8_t *out_row,
                                     int ow, int y, int c) {
    int ky0, ky1;
    dw_tap_range(y, stride, height, &ky0, &ky1);
    __m256i wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(w + t * channels + c)));
    __m256i off = _mm256_loadu_si256((const __m256i *)(acc_offset + c));
    __m256 sc = _mm256_loadu_ps(scale + c), bi = _mm256_loadu_ps(bias + c);
    __m256 inv = _mm256_loadu_ps(out_inv_scale + c);
    __m256i zero = _mm256_loadu_si256((const __m256i *)(out_zero + c));
    for (int x = 0; x < ow; x++) {
        int kx0, kx1;
        dw_tap_range(x, stride, width, &kx0, &kx1);
        __m256i acc[3] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        UNROLL
        for (int ky = 0; ky < 3; ky++) {
            if (ky < ky0 || ky >= ky1) continue;
            const uint8_t *row = input + (size_t)(y * stride + ky - 1) * width * stride_c + c;
            UNROLL
            for (int kx = 0; kx < 3; kx++) {
                if (kx < kx0 || kx >= kx1) continue;
                const uint8_t *px = row + (size_t)(x * stride + kx - 1) * stride_c;
                __m256i xv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)px));
                acc[ky] = _mm256_add_epi32(acc[ky], _mm256_madd_epi16(xv, wv[ky * 3 + kx]));
            }
        }
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), acc[2]);
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(sum, off)), sc);
        v = avx2_activate(_mm256_add_ps(v, bi), activation);
        _mm_storel_epi64((__m128i *)(out_row + (size_t)x * stride_c + c), avx2_requantize(v, inv, zero));
    }
}

TARGET_AVX2 void probe_qdwconv3x3_avx2(const uint8_t *input, int height, int width, int channels, int stride_c,
                                       int stride, const int8_t *w, const int32_t *acc_offset, const float *scale,
                                       const float *bias, int activation, const float *out_inv_scale, const int32_t *out_zero,
                                       uint8_t *output, int r0, int r1) {
    const int oh = (height - 1) / stride + 1, ow = (width - 1) / stride + 1;
    const int c16 = channels / 16 * 16, c8 = channels / 8 * 8;
    if (r1 > oh) r1 = oh;
    for (int y0 = r0; y0 < r1; y0 += DW_ROW_BLOCK) {
        const int y1 = r1 - y0 < DW_ROW_BLOCK ? r1 : y0 + DW_ROW_BLOCK;
        for (int c = 0; c < c16; c += 16) {
            dw_avx2_chunk k;
            const int mode = dw_avx2_setup(&k, w, channels, c, acc_offset, scale, bias, activation, out_inv_scale, out_zero);
            const uint8_t *in_c = input + c;
            uint8_t *out_c = output + c;
#define DW_CALL(NAME) NAME(in_c, height, width, stride_c, y0, y1, &k, activation, out_c, ow)
            if (stride == 1) {
                if (mode == AVX2_Q_RELU6Z) DW_CALL(dw_avx2_rows_s1_relu6z);
                else if (mode == AVX2_Q_RELU6) DW_CALL(dw_avx2_rows_s1_relu6);
                else if (mode == AVX2_Q_ZP) DW_CALL(dw_avx2_rows_s1_zp);
                else DW_CALL(dw_avx2_rows_s1_full);
            } else {
                if (mode == AVX2_Q_RELU6Z) DW_CALL(dw_avx2_rows_s2_relu6z);
                else if (mode == AVX2_Q_RELU6) DW_CALL(dw_avx2_rows_s2_relu6);
                else if (mode == AVX2_Q_ZP) DW_CALL(dw_avx2_rows_s2_zp);
                else DW_CALL(dw_avx2_rows_s2_full);
            }
#undef DW_CALL
        }
        for (int y = y0; y < y1; y++) {
            uint8_t *out_row = output + (size_t)y * ow * stride_c;
            if (c16 < c8)
                dw_avx2_row8(input, height, width, channels, stride_c, stride, w, acc_offset, scale, bias, activation,
                             out_inv_scale, out_zero, out_row, ow, y, c16);
            for (int x = 0; x < ow && (c8 < channels || stride_c > channels); x++) {
                uint8_t *out = out_row + (size_t)x * stride_c;
                if (c8 < channels)
                    dw_scalar_channels(input, height, width, stride_c, stride, channels, w, acc_offset, scale, bias, activation,
                                       out_inv_scale, out_zero, out, y, x, c8, channels);
                if (stride_c > channels) memset(out + channels, 0, stride_c - channels);
            }
        }
    }
}
// MARK: - Quantizing the input image

// probe_quantize_chw for images of up to 4 channels with a pixel stride of 4 (the network's
// input: RGB plus one channel of the zero point): 16 (VNNI) or 8 (AVX2) pixels at a time, each
// channel plane requantized and its bytes shifted into place in the pixels' 32-bit words. Other
// layouts, and the last pixels in the AVX2 version, go through the scalar version.
TARGET_VNNI void probe_quantize_chw_vnni(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                                         int stride_c, uint8_t *output) {
    if (stride_c != 4 || channels > 4) {
        probe_quantize_chw_scalar(x, channels, height, width, inv_scale, zero, stride_c, output);
        return;
    }
    const size_t hw = (size_t)height * width;
    for (size_t p = 0; p < hw; p += 16) {
        size_t n = hw - p;
        __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        __m512i word = _mm512_setzero_si512(); // channels channels...3: 0
        for (int c = 0; c < channels; c++) {
            __m512i q = vnni_requantize_epi32(_mm512_maskz_loadu_ps(m, x + (size_t)c * hw + p), _mm512_set1_ps(inv_scale[c]),
                                              _mm512_set1_epi32(zero[c]));
            word = _mm512_or_si512(word, _mm512_slli_epi32(q, 8 * c));
        }
        _mm512_mask_storeu_epi32(output + p * 4, m, word);
    }
}

TARGET_AVX2 void probe_quantize_chw_avx2(const float *x, int channels, int height, int width, const float *inv_scale, const int32_t *zero,
                                         int stride_c, uint8_t *output) {
    if (stride_c != 4 || channels > 4) {
        probe_quantize_chw_scalar(x, channels, height, width, inv_scale, zero, stride_c, output);
        return;
    }
    const size_t hw = (size_t)height * width, full = hw / 8 * 8;
    for (size_t p = 0; p < full; p += 8) {
        __m256i word = _mm256_setzero_si256(); // channels channels...3: 0
        for (int c = 0; c < channels; c++) {
            __m256i q = avx2_requantize_epi32(_mm256_loadu_ps(x + (size_t)c * hw + p), _mm256_set1_ps(inv_scale[c]),
                                              _mm256_set1_epi32(zero[c]));
            word = _mm256_or_si256(word, _mm256_sll_epi32(q, _mm_cvtsi32_si128(8 * c)));
        }
        _mm256_storeu_si256((__m256i *)(output + p * 4), word);
    }
    for (size_t p = full; p < hw; p++) {
        uint8_t *out = output + p * 4;
        for (int c = 0; c < channels; c++) out[c] = probe_requantize(x[(size_t)c * hw + p], inv_scale[c], zero[c]);
        for (int c = channels; c < 4; c++) out[c] = 0;
    }
}
// MARK: - Max pooling

// probe_qmaxpool3x3s2: the maximum of the valid taps (max is exact, the order does not matter; the
// scalar version starts from 0, a no-op on u8) over 64 (AVX-512, the last chunk masked) or 32 and
// 16 (AVX2, then single bytes) channels at a time.
TARGET_VNNI void probe_qmaxpool3x3s2_vnni(const uint8_t *input, int height, int width, int stride_c, uint8_t *output) {
    const int oh = (height - 1) / 2 + 1, ow = (width - 1) / 2 + 1;
    for (int y = 0; y < oh; y++) {
        int ky0, ky1;
        dw_tap_range(y, 2, height, &ky0, &ky1);
        for (int x = 0; x < ow; x++) {
            int kx0, kx1;
            dw_tap_range(x, 2, width, &kx0, &kx1);
            uint8_t *out = output + ((size_t)y * ow + x) * stride_c;
            for (int c = 0; c < stride_c; c += 64) {
                int n = stride_c - c;
                __mmask64 m = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
                __m512i v = _mm512_setzero_si512();
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        size_t ip = (size_t)(2 * y + ky - 1) * width + (2 * x + kx - 1);
                        v = _mm512_max_epu8(v, _mm512_maskz_loadu_epi8(m, input + ip * stride_c + c));
                    }
                _mm512_mask_storeu_epi8(out + c, m, v);
            }
        }
    }
}

TARGET_AVX2 void probe_qmaxpool3x3s2_avx2(const uint8_t *input, int height, int width, int stride_c, uint8_t *output) {
    const int oh = (height - 1) / 2 + 1, ow = (width - 1) / 2 + 1;
    for (int y = 0; y < oh; y++) {
        int ky0, ky1;
        dw_tap_range(y, 2, height, &ky0, &ky1);
        for (int x = 0; x < ow; x++) {
            int kx0, kx1;
            dw_tap_range(x, 2, width, &kx0, &kx1);
            uint8_t *out = output + ((size_t)y * ow + x) * stride_c;
            int c = 0;
            for (; c + 32 <= stride_c; c += 32) {
                __m256i v = _mm256_setzero_si256();
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        size_t ip = (size_t)(2 * y + ky - 1) * width + (2 * x + kx - 1);
                        v = _mm256_max_epu8(v, _mm256_loadu_si256((const __m256i *)(input + ip * stride_c + c)));
                    }
                _mm256_storeu_si256((__m256i *)(out + c), v);
            }
            for (; c + 16 <= stride_c; c += 16) {
                __m128i v = _mm_setzero_si128();
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        size_t ip = (size_t)(2 * y + ky - 1) * width + (2 * x + kx - 1);
                        v = _mm_max_epu8(v, _mm_loadu_si128((const __m128i *)(input + ip * stride_c + c)));
                    }
                _mm_storeu_si128((__m128i *)(out + c), v);
            }
            for (; c < stride_c; c++) {
                uint8_t v = 0;
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        size_t ip = (size_t)(2 * y + ky - 1) * width + (2 * x + kx - 1);
                        uint8_t b = input[ip * stride_c + c];
                        v = b > v ? b : v;
                    }
                out[c] = v;
            }
        }
    }
}
#endif
