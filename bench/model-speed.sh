#!/usr/bin/env bash
# Speed and memory of the published models (AST, CLAP HTSAT-tiny, PANNs CNN14) at full size on
# this machine, through the clip interface index and scan use, at their default windows (4 s every
# 2 s). Without the real checkpoints, the full-size weights come from the real checkpoints' key
# manifests (../shared/fixtures/manifests), drawn like a trained network's.
#
#   bench/model-speed.sh [SECONDS_PER_MODEL] [THREADS]
#
# Prints one JSON line per model and then a markdown table (stdout); progress on stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${1:-30}"
THREADS="${2:-2}"
BUILD="$ROOT/build-release"
bash "$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DEARMARK_BUILD_TESTS=OFF >&2
cmake --build "$BUILD" --target model_speed -j"$(nproc)" >&2
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
for kind in ast clap panns; do
  for batch in 1 4; do
    "$BUILD/model_speed" --kind "$kind" --threads "$THREADS" --batch "$batch" \
      --seconds "$SECONDS_EACH" | tee -a "$OUT"
  done
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print()
print("| model | dim | rate | batch | ms per window | x realtime (4 s every 2 s) | peak memory |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['kind']} | {r['dim']} | {r['rate'] // 1000} kHz | {r['batch']} | "
          f"{r['ms_per_window']:.0f} | {r['x_realtime']:.1f}x | {r['peak_rss_mb']:.0f} MB |")
PY
