#!/usr/bin/env bash
# Runs the already-built test suite once under each OpenBLAS kernel this CPU can execute
# (OPENBLAS_CORETYPE; OpenBLAS otherwise picks one kernel by CPU, and another kernel rounds
# differently). Each run must pass: the parity tolerances come from measured noise
# (tools/parity_noise.py), not from one kernel's rounding. Prints one line per core type.
# usage: tools/test_coretypes.sh [swift test arguments, e.g. --filter NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]]; }
types=()
if [ "$(uname -m)" = "x86_64" ]; then
  types+=(PRESCOTT)
  has avx && types+=(SANDYBRIDGE)
  has avx2 && has fma && types+=(HASWELL ZEN)
  has avx512f && has avx512bw && has avx512vl && has avx512dq && types+=(SKYLAKEX)
  has avx512_bf16 && types+=(COOPERLAKE)
fi
if [ ${#types[@]} -eq 0 ]; then echo "core types: none to choose on $(uname -m); skipped"; exit 0; fi
echo "core types this CPU can run: ${types[*]}"
failed=()
for t in "${types[@]}"; do
  log=$(mktemp)
  if OPENBLAS_CORETYPE=$t OPENBLAS_VERBOSE=2 swift test --skip-build -c release --no-parallel "$@" >"$log" 2>&1; then
    result="passed"
  else
    result="FAILED"; failed+=("$t")
  fi
  core=$(grep -m1 -o 'Core: [A-Za-z0-9]*' "$log" || echo "Core: ?")
  summary=$(grep -E 'Test run with [0-9]+ tests' "$log" | tail -1 | sed 's/^[^A-Za-z]*//')
  echo "OPENBLAS_CORETYPE=$t ($core): $result: $summary"
  # how close the parity tests came to their noise-derived tolerances
  # (no parity test in the filter: no margins; `|| true` keeps set -e/pipefail from ending the loop)
  margins=$(grep -oE '(mobilenet_v2 step|resnet(34|50) seeded step|step [01]):.*largest (gradient-norm )?deviation / tolerance [0-9.e-]+ at [^ ]+' "$log" |
            sed -E 's/^(mobilenet_v2 step|resnet(34|50) seeded step|step [01]):.*largest (gradient-norm )?deviation \/ tolerance ([0-9.e-]+) at (.*)$/\1 \4 (\5)/' |
            awk '{printf "%s%s", sep, $0; sep="; "}' || true)
  [ -n "$margins" ] && echo "  largest deviation / tolerance: $margins"
  if [ "$result" = "FAILED" ]; then grep -E '✘' "$log" | head -20; fi
  rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then echo "core types that failed: ${failed[*]}"; exit 1; fi
echo "core types: all passed"
