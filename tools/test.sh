#!/usr/bin/env bash
# The test command: installs what is missing, builds and runs every test.
# Tests that need ../shared (data, weights, PyTorch references) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
# Kernels compiled for this machine's CPU (see Package.swift); a plain `swift build` is portable.
export PROBE_NATIVE=1
tools/setup.sh
swift build --build-tests -c release -Xswiftc -enable-testing
# --no-parallel: the backbones and finetuning set OpenBLAS's process-wide thread count around their
# passes; tests running concurrently in one process can change each other's summation order and
# break the bit-identical resume checks.
swift test --skip-build -c release --no-parallel
