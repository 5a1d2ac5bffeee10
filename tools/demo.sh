#!/usr/bin/env bash
# The main job: installs what is missing, builds probe (release) and runs the ants-vs-bees tutorial
# end to end (extract features once, train a head with the tutorial's settings, evaluate, report).
# Extra arguments go to `probe demo` (e.g. --data DIR, --backbone mobilenet_v2 --weights FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
# Kernels compiled for this machine's CPU (see Package.swift); a plain `swift build` is portable.
export PROBE_NATIVE=1
tools/setup.sh
swift build -c release --product probe
.build/release/probe demo "$@"
