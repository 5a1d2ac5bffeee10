// The x86 versions of probe_qconv: AVX2 (vpmaddubsw + vpmaddwd) and AVX-512 VNNI (vpdpbusd),
// compiled with per-function target attributes and chosen at run time (int8.c). Until they are
// written they run the scalar version.
#include "int8_internal.h"
#if defined(__x86_64__) || defined(_M_X64)

#pragma STDC FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

void probe_qconv_avx2(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1) {
    probe_qconv_scalar(a, input, ind, p0, p1);
}

void probe_qconv_vnni(const probe_qconv_args *a, const uint8_t *input, const int32_t *ind, int p0, int p1) {
    probe_qconv_scalar(a, input, ind, p0, p1);
}
#endif
