#!/usr/bin/env bash
# Installs every Debian package Earmark needs to build, test, run the demo and the benchmark.
# Idempotent: does nothing when everything is present; runs `apt-get update` at most once.
set -euo pipefail

# libopenblas0-pthread: without it Debian's libtorch multiplies matrices with the reference BLAS,
# 10-20x slower (the published models are mostly matrix products).
PKGS=(
  build-essential cmake pkg-config
  libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
  libfftw3-dev libsqlite3-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libbenchmark-dev libtorch-dev libopenblas0-pthread librubberband-dev libfaiss-dev
  ffmpeg espeak-ng sox libsox-fmt-all rubberband-cli python3-numpy python3-torch unzip time
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
