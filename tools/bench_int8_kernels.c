// Benchmark of probe's int8 convolution kernels (tools/bench_int8_kernels.sh builds and runs it):
// GMAC/s of probe_qconv, single-threaded, for every kernel version this CPU has, on ResNet-18's
// convolutions at 224x224 and MobileNetV2 1x1 expansions and projections, with the fraction of
// the version's measured peak (a tight loop of independent vpdpbusd, or vpmaddubsw + vpmaddwd +
// vpaddd, on registers: best of 7, measured again before each layer). The random weights have
// their same-sign pairs bounded (probe_qconv_pairs_bounded), as the quantization makes them: the
// "avx2" column times the AVX2 kernel's general way (16-bit products widened for vpmaddwd, 16 MACs
// per vpmaddwd + vpaddd), "avx2 bounded" its vpmaddubsw way (32 MACs per vpmaddubsw + vpmaddwd +
// vpaddd), which the networks' layers take. OpenBLAS sgemm of the same
// matrix products (M = pixels, N = output channels, K = taps x input channels; im2col not
// counted) for the int8 / float32 ratio (the fastest int8 version over sgemm). MACs count the
// real input channels (3 for the stem, whose pixels are padded to 4). Median of 7 repetitions of
// >= 20 ms. Prints figures, asserts nothing (it does count the u8 outputs that differ from the
// scalar version's: "diffs", 0 unless broken).
#include "probe_int8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef PROBE_BENCH_BLAS
#include <cblas.h>
void openblas_set_num_threads(int);
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static unsigned next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (unsigned)(rng >> 11); }

#define REPS 7
// Seconds per call of fn(ctx) over REPS repetitions of >= 20 ms each: the median, or the minimum
// (for the peak: what the core does when nothing else runs on it; the machine may be shared).
static double time_of(void (*fn)(void *), void *ctx, int minimum) {
    double t[REPS];
    fn(ctx); // warm-up
    for (int r = 0; r < REPS; r++) {
        int n = 0;
        double t0 = now(), t1;
        do { fn(ctx); n++; t1 = now(); } while (t1 - t0 < 0.02);
        t[r] = (t1 - t0) / n;
    }
    qsort(t, REPS, sizeof(double), cmp_double);
    return minimum ? t[0] : t[REPS / 2];
}
static double median_time(void (*fn)(void *), void *ctx) { return time_of(fn, ctx, 0); }

// MARK: - Peak

#if defined(__x86_64__)
#define PEAK_ITERS 20000000L
// The loops are assembly: a compiler would share the identical products between accumulators.
#define R4(m, a, b, c, d) m(a) m(b) m(c) m(d)
#define DP(r) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #r "\n\t"
static __attribute__((noinline)) void peak_vnni(long iters) {
    // 24 independent accumulators (zmm0-23), operands zmm30/zmm31.
    __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                     "1:\n\t" R4(DP, 0, 1, 2, 3) R4(DP, 4, 5, 6, 7) R4(DP, 8, 9, 10, 11)
                     R4(DP, 12, 13, 14, 15) R4(DP, 16, 17, 18, 19) R4(DP, 20, 21, 22, 23)
                     "dec %0\n\tjnz 1b\n\tvzeroupper"
                     : "+r"(iters) : : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
                       "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm30", "xmm31");
}
#define MADD(r) "vpmaddubsw %%ymm14, %%ymm15, %%ymm12\n\tvpmaddwd %%ymm13, %%ymm12, %%ymm12\n\t" \
                "vpaddd %%ymm12, %%ymm" #r ", %%ymm" #r "\n\t"
static __attribute__((noinline)) void peak_avx2(long iters) {
    // 12 independent accumulators (ymm0-11), operands ymm13-15, product ymm12 (renamed).
    __asm__ volatile("vpxor %%ymm13, %%ymm13, %%ymm13\n\tvpxor %%ymm14, %%ymm14, %%ymm14\n\t"
                     "vpxor %%ymm15, %%ymm15, %%ymm15\n\t"
                     "1:\n\t" R4(MADD, 0, 1, 2, 3) R4(MADD, 4, 5, 6, 7) R4(MADD, 8, 9, 10, 11)
                     "dec %0\n\tjnz 1b\n\tvzeroupper"
                     : "+r"(iters) : : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

static void run_peak_vnni(void *ctx) { (void)ctx; peak_vnni(PEAK_ITERS / 100); }
static void run_peak_avx2(void *ctx) { (void)ctx; peak_avx2(PEAK_ITERS / 100); }
#endif
// MARK: - Layers

typedef struct {
    const char *name;
    int h, w, cin, cout, k, stride, pad;
} layer;

static const layer layers[] = {
    {"resnet18 stem 7x7/2 3->64 @112", 224, 224, 3, 64, 7, 2, 3},
    {"resnet18 3x3 64->64 @56", 56, 56, 64, 64, 3, 1, 1},
    {"resnet18 3x3 128->128 @28", 28, 28, 128, 128, 3, 1, 1},
    {"resnet18 3x3 256->256 @14", 14, 14, 256, 256, 3, 1, 1},
    {"resnet18 3x3 512->512 @7", 7, 7, 512, 512, 3, 1, 1},
    {"resnet18 1x1/2 128->256 @14", 28, 28, 128, 256, 1, 2, 0},
    {"mobilenetv2 stem 3x3/2 3->32 @112", 224, 224, 3, 32, 3, 2, 1},
    {"mobilenetv2 1x1 24->144 @56", 56, 56, 24, 144, 1, 1, 0},
    {"mobilenetv2 1x1 160->960 @7", 7, 7, 160, 960, 1, 1, 0},
    {"mobilenetv2 1x1 144->24 @56", 56, 56, 144, 24, 1, 1, 0},
    {"mobilenetv2 1x1 960->320 @7", 7, 7, 960, 320, 1, 1, 0},
};

typedef struct {
    probe_qconv_args a;
    const uint8_t *input;
    const int32_t *ind;
    int pixels;
    // sgemm
    const float *A, *B;
    float *C;
    int M, N, K;
} conv_ctx;

static void run_qconv(void *ctx) {
    conv_ctx *c = ctx;
    probe_qconv(&c->a, c->input, c->ind, 0, c->pixels);
}

#ifdef PROBE_BENCH_BLAS
static void run_sgemm(void *ctx) {
    conv_ctx *c = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->M, c->N, c->K, 1.0f, c->A, c->K, c->B, c->N, 0.0f, c->C, c->N);
}
#endif

static void measure_peaks(int best, double *peak_of, double *peak_max) {
#if defined(__x86_64__)
    if (best >= PROBE_INT8_VNNI) peak_of[PROBE_INT8_VNNI] = 24.0 * 64 * (PEAK_ITERS / 100) / time_of(run_peak_vnni, NULL, 1) * 1e-9;
    if (best >= PROBE_INT8_AVX2) peak_of[PROBE_INT8_AVX2] = 12.0 * 32 * (PEAK_ITERS / 100) / time_of(run_peak_avx2, NULL, 1) * 1e-9;
#endif
    for (int k = 0; k < 3; k++) if (peak_of[k] > peak_max[k]) peak_max[k] = peak_of[k];
}

int main(int argc, char **argv) {
    // An argument: only the layers whose name contains it, and no scalar version (quick runs).
    const char *only = argc > 1 ? argv[1] : NULL;
    int best = probe_int8_best_kernel();
    // The peaks, measured again before each layer (the machine may be shared: the fraction of peak
    // compares figures taken under the same conditions); the highest seen is printed at the end.
    double peak_of[3] = {0, 0, 0}, peak_max[3] = {0, 0, 0};
#define MEASURE_PEAKS() measure_peaks(best, peak_of, peak_max)
    MEASURE_PEAKS(); // a warm-up (the first figures came out low), then the first measurement
    MEASURE_PEAKS();
#if defined(__x86_64__)
    if (best >= PROBE_INT8_VNNI) printf("measured peak avx512-vnni (24 independent vpdpbusd zmm, best of %d): %.1f GMAC/s\n", REPS, peak_of[PROBE_INT8_VNNI]);
    if (best >= PROBE_INT8_AVX2)
        printf("measured peak avx2 (12 independent vpmaddubsw+vpmaddwd+vpaddd ymm, best of %d): %.1f GMAC/s\n", REPS,
               peak_of[PROBE_INT8_AVX2]);
#endif
#ifdef PROBE_BENCH_BLAS
    openblas_set_num_threads(1);
#endif
    printf("\n%-34s %8s", "layer (GMAC/s, 1 thread)", "MMAC");
    for (int k = 0; k <= best; k++) printf(peak_of[k] > 0 ? " %18s" : " %8s", probe_int8_kernel_name(k));
    if (best >= PROBE_INT8_AVX2) printf(" %18s", "avx2 bounded");
#ifdef PROBE_BENCH_BLAS
    printf(" %12s %9s", "sgemm f32", "int8/f32");
#endif
    printf(" %6s\n", "diffs");

    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const layer *L = &layers[li];
        if (only && !strstr(L->name, only)) continue;
        int cs = (L->cin + 3) / 4 * 4, taps = L->k * L->k;
        int oh = (L->h + 2 * L->pad - L->k) / L->stride + 1, ow = (L->w + 2 * L->pad - L->k) / L->stride + 1;
        int pixels = oh * ow, zero_in = 3;
        size_t in_pixels = (size_t)L->h * L->w + 1; // the last one: the padding pixel
        uint8_t *input = malloc(in_pixels * cs);
        for (size_t i = 0; i < in_pixels * cs; i++) input[i] = (uint8_t)(next() % 256);
        memset(input + (in_pixels - 1) * cs, zero_in, cs);
        int32_t *ind = malloc(sizeof(int32_t) * pixels * taps);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                for (int ky = 0; ky < L->k; ky++)
                    for (int kx = 0; kx < L->k; kx++) {
                        int iy = y * L->stride + ky - L->pad, ix = x * L->stride + kx - L->pad;
                        size_t pix = (iy < 0 || iy >= L->h || ix < 0 || ix >= L->w) ? in_pixels - 1 : (size_t)iy * L->w + ix;
                        ind[((size_t)y * ow + x) * taps + ky * L->k + kx] = (int32_t)(pix * cs);
                    }
        size_t wn = (size_t)L->cout * taps * L->cin;
        int8_t *w = malloc(wn);
        for (size_t i = 0; i < wn; i++) w[i] = (int8_t)((int)(next() % 255) - 127);
        // Same-sign pairs of input channels (2m, 2m + 1) over PROBE_PAIR_MAX scaled down, as the
        // quantization's per-channel scales make them: the AVX2 kernel's vpmaddubsw way (the
        // "avx2 bounded" column; the others compute the same sums).
        for (size_t i = 0; i + 1 < wn; i += 2) {
            if ((size_t)(i % L->cin) + 1 >= (size_t)L->cin) { i--; continue; } // odd cin: the last channel pairs with padding
            int x0 = w[i], x1 = w[i + 1];
            if (x0 * x1 > 0 && abs(x0 + x1) > PROBE_PAIR_MAX) {
                w[i] = (int8_t)(x0 * PROBE_PAIR_MAX / abs(x0 + x1));
                w[i + 1] = (int8_t)(x1 * PROBE_PAIR_MAX / abs(x0 + x1));
            }
        }
        int8_t *packed = malloc(probe_qconv_packed_size(L->cout, taps, cs));
        probe_qconv_pack(w, L->cout, taps, L->cin, cs, packed);
        int32_t *off = malloc(sizeof(int32_t) * L->cout);
        float *scale = malloc(sizeof(float) * L->cout), *bias = malloc(sizeof(float) * L->cout), *inv = malloc(sizeof(float) * L->cout);
        int32_t *zero_out = malloc(sizeof(int32_t) * L->cout);
        for (int o = 0; o < L->cout; o++) {
            off[o] = -zero_in * 100; scale[o] = 1e-4f; bias[o] = 0.01f * (o % 7); inv[o] = 1.0f / 0.05f; zero_out[o] = 0;
        }
        uint8_t *out = malloc((size_t)pixels * L->cout), *ref = malloc((size_t)pixels * L->cout);
        conv_ctx c = {0};
        c.a = (probe_qconv_args){L->cout, taps, cs, packed, off, scale, bias, PROBE_ACT_RELU, NULL, 0, NULL, NULL,
                                 out, NULL, L->cout, inv, zero_out, 0};
        int bounded = probe_qconv_pairs_bounded(packed, L->cout, taps, cs);
        c.input = input, c.ind = ind, c.pixels = pixels;
        double macs = (double)pixels * L->cout * taps * L->cin;
        if (li > 0) MEASURE_PEAKS();
        printf("%-34s %8.1f", L->name, macs * 1e-6);
        double best_rate = 0;
        long diffs = 0;
        for (int k = 0; k <= best; k++) {
            probe_int8_use_kernel(k);
            if (only && k == PROBE_INT8_SCALAR) {
                run_qconv(&c);
                memcpy(ref, out, (size_t)pixels * L->cout);
                printf(" %8s", "-");
                continue;
            }
            double t = median_time(run_qconv, &c);
            double rate = macs / t * 1e-9;
            if (k == best) best_rate = rate;
            if (peak_of[k] > 0) printf(" %9.1f (%3.0f%% pk)", rate, 100 * rate / peak_of[k]);
            else printf(" %8.1f", rate);
            if (k == 0) memcpy(ref, out, (size_t)pixels * L->cout);
            else for (size_t i = 0; i < (size_t)pixels * L->cout; i++) diffs += out[i] != ref[i];
        }
        if (best >= PROBE_INT8_AVX2) {
            probe_int8_use_kernel(PROBE_INT8_AVX2);
            c.a.pairs_bounded = bounded;
            double rate = macs / median_time(run_qconv, &c) * 1e-9;
            printf(" %9.1f (%3.0f%% pk)", rate, 100 * rate / peak_of[PROBE_INT8_AVX2]);
            for (size_t i = 0; i < (size_t)pixels * L->cout; i++) diffs += out[i] != ref[i];
            c.a.pairs_bounded = 0;
        }
#ifdef PROBE_BENCH_BLAS
        c.M = pixels, c.N = L->cout, c.K = taps * L->cin;
        float *A = malloc(sizeof(float) * c.M * c.K), *B = malloc(sizeof(float) * c.K * c.N), *C = malloc(sizeof(float) * c.M * c.N);
        for (size_t i = 0; i < (size_t)c.M * c.K; i++) A[i] = (float)(next() % 100) * 0.01f;
        for (size_t i = 0; i < (size_t)c.K * c.N; i++) B[i] = (float)(next() % 100) * 0.01f - 0.5f;
        c.A = A, c.B = B, c.C = C;
        double ts = median_time(run_sgemm, &c);
        double srate = macs / ts * 1e-9;
        printf(" %12.1f %8.1fx", srate, best_rate / srate);
        free(A), free(B), free(C);
#endif
        printf(" %6ld\n", diffs);
        probe_int8_use_kernel(best);
        free(input), free(ind), free(w), free(packed), free(off), free(scale), free(bias), free(inv), free(zero_out), free(out), free(ref);
    }
#if defined(__x86_64__)
    printf("\nhighest peaks measured (GMAC/s):");
    for (int k = 1; k <= best; k++) printf(" %s %.1f", probe_int8_kernel_name(k), peak_max[k]);
    printf("\n");
#endif
    return 0;
}
