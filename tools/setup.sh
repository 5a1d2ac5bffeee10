#!/usr/bin/env bash
# Installs the system libraries probe builds against, when they are missing (Debian/Ubuntu).
# Needs root or sudo for apt-get; on macOS, Homebrew's jpeg-turbo and libpng are used instead.
set -euo pipefail
packages=(libsqlite3-dev libturbojpeg0-dev libpng-dev libopenblas-dev pkg-config)
if [ "$(uname)" = "Darwin" ]; then
  command -v brew >/dev/null && brew install jpeg-turbo libpng pkg-config >/dev/null || true
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "probe setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "probe setup: swift is not on PATH (Swift 6 toolchain needed)" >&2; exit 1; }
