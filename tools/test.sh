#!/usr/bin/env bash
# The test command: installs what is missing, builds and runs every test.
# Tests that need ../shared (data, weights, PyTorch references) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build --build-tests -c release -Xswiftc -enable-testing
swift test --skip-build -c release
