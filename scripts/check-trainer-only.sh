#!/usr/bin/env bash
# Builds earmark-train alone (-DEARMARK_TRAINER_ONLY=ON), as on a GPU machine against PyTorch's
# libtorch, and checks that it needs libtorch and nothing else of ours (no FFmpeg, FAISS, SQLite,
# librubberband, spdlog or fmt library), then trains a few steps on pairs the full CLI prepared:
# the weights must equal those of the full build's earmark-train.
# Usage: check-trainer-only.sh SOURCE_DIR EARMARK_CLI EARMARK_TRAIN [TORCH_PREFIX]
set -euo pipefail
src=$1 cli=$2 full_train=$3 prefix=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(-S "$src" -B "$work/build" -DEARMARK_TRAINER_ONLY=ON -DCMAKE_BUILD_TYPE=Release)
[[ -n $prefix ]] && args+=(-DCMAKE_PREFIX_PATH="$prefix")
cmake "${args[@]}" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j"$(nproc)" >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
bin=$work/build/earmark-train
needed=$(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
for lib in $needed; do
  case $lib in
    libtorch*|libc10*|libstdc++*|libm.so*|libgcc_s*|libc.so*|libpthread*|libdl*|libgomp*|libcuda*|libcudart*|libc10_cuda*) ;;
    *) echo "earmark-train needs $lib: the trainer-only build must need libtorch alone"; exit 1 ;;
  esac
done
# Six short synthetic tracks (tones with harmonics and a beat), the pairs, then 6 steps each way.
for i in 1 2 3 4 5 6; do
  f=$((200 + 70 * i))
  ffmpeg -nostdin -loglevel error -f lavfi \
    -i "aevalsrc=0.4*sin(2*PI*$f*t)*(0.6+0.4*sin(2*PI*2*t))+0.2*sin(2*PI*$((f * 3))*t):d=12:s=16000" \
    "$work/m$i.wav"
done
"$cli" train --prepare-only --music "$work"/m*.wav -o "$work/pairs" --pairs 64 --val-pairs 16 \
  --batch 16 -j 1 >/dev/null 2>"$work/prepare.log" || { cat "$work/prepare.log"; exit 1; }
tiny=(--steps 6 --batch 16 --channels 8,16,16 --dim 32 -j 1)
"$bin" --pairs "$work/pairs" -o "$work/alone" "${tiny[@]}" >/dev/null 2>"$work/alone.log" ||
  { cat "$work/alone.log"; exit 1; }
"$full_train" --pairs "$work/pairs" -o "$work/full" "${tiny[@]}" >/dev/null 2>"$work/full.log" ||
  { cat "$work/full.log"; exit 1; }
cmp "$work/alone/fingerprint_net.safetensors" "$work/full/fingerprint_net.safetensors"
echo "earmark-train alone: needs $(echo $needed | tr '\n' ' '); trained weights identical"
