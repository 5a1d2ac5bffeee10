#!/bin/sh
# GMAC/s of probe's int8 convolution kernels (every version this CPU has) on ResNet-18's and
# MobileNetV2's convolution shapes, single-threaded, against a measured vpdpbusd peak and OpenBLAS
# sgemm (when -lopenblas links). Compiles Sources/CInt8/*.c with tools/bench_int8_kernels.c; prints
# figures, asserts nothing. The compiler: $CC, else clang (SwiftPM compiles the package's C with
# clang: the figures that matter), else cc. An argument: only the layers whose name contains it,
# without the (slow) scalar timing.
# -ffp-contract=off: belt and braces (the sources' pragmas already keep clang and gcc from fusing
# the epilogue's multiplies and adds, which would change the outputs: the "diffs" column).
set -e
cd "$(dirname "$0")/.."
if [ -z "$CC" ]; then
    if command -v clang >/dev/null 2>&1; then CC=clang
    elif [ -x /opt/swift/usr/bin/clang ]; then CC=/opt/swift/usr/bin/clang
    else CC=cc; fi
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
src="Sources/CInt8/int8.c Sources/CInt8/int8_x86.c tools/bench_int8_kernels.c"
if $CC -O2 -ffp-contract=off -DPROBE_BENCH_BLAS -ISources/CInt8/include $src -o "$out/bench" -lopenblas -lm 2>/dev/null; then :; else
    echo "(no OpenBLAS: sgemm column left out)"
    $CC -O2 -ffp-contract=off -ISources/CInt8/include $src -o "$out/bench" -lm
fi
"$out/bench" "$@"
