#!/usr/bin/env bash
# The built-in demo: real game music and real desktop sound logos from Debian packages, a query
# video made of a music excerpt under speech plus a sound logo, and a scan that finds both.
#
#   scripts/demo.sh [EARMARK_BINARY] [WORK_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EARMARK="${1:-$ROOT/build/earmark}"
WORK="${2:-$ROOT/demo-out}"
MUSIC_PKG=a7xpg-data
LOGO_PKG=sound-theme-freedesktop
mkdir -p "$WORK/debs" "$WORK/pkg"
cd "$WORK"

for p in "$MUSIC_PKG" "$LOGO_PKG"; do
  if ! ls debs/"${p}"_*.deb >/dev/null 2>&1; then
    echo "demo: downloading $p (no install)" >&2
    (cd debs && apt-get download "$p" 2>&1 | grep -v 'unsandboxed' >&2 || true)
    ls debs/"${p}"_*.deb >/dev/null 2>&1 || { apt-get update -qq >&2 && (cd debs && apt-get download "$p" >&2); }
  fi
  if [ ! -d "pkg/$p" ]; then
    dpkg -x debs/"${p}"_*.deb "pkg/$p"
  fi
done
MUSIC_DIR="$(dirname "$(find "pkg/$MUSIC_PKG" -name '*.ogg' | sort | head -1)")"
LOGO_DIR="$(dirname "$(find "pkg/$LOGO_PKG" -name '*.oga' | sort | head -1)")"

echo "demo: indexing music from $MUSIC_PKG and sound logos from $LOGO_PKG" >&2
rm -rf index
mapfile -t TRACKS < <(find "$MUSIC_DIR" -name '*.ogg' | sort)
"$EARMARK" -i index index --type music "${TRACKS[@]}" >&2
# A few of the theme's sounds are under a quarter of a second: too short to identify, and
# reported as such; the rest are indexed.
"$EARMARK" -i index index --type trademark "$LOGO_DIR" >&2 ||
  echo "demo: the sounds listed above were not indexed" >&2

# The query: 4 s of speech alone, then 14 s of a track (from 40 s in) with speech over it at
# about the same level, 1 s of quiet, a sound logo, and black video around it all.
TRACK="$(find "$MUSIC_DIR" -name '*.ogg' | sort | sed -n 3p)"
LOGO="$LOGO_DIR/complete.oga"
[ -f "$LOGO" ] || LOGO="$(find "$LOGO_DIR" -name '*.oga' | sort | head -1)"
espeak-ng -v en-us -s 150 -w speech.wav \
  "Good evening. This is a demonstration of Earmark. A piece of music is playing under my voice, \
and in a moment you will hear a short sound logo. Earmark should tell you which recording \
it is, and where it starts and ends, in the video and in the reference." 2>/dev/null
ffmpeg -nostdin -loglevel error -y \
  -i speech.wav -ss 40 -t 14 -i "$TRACK" -i "$LOGO" \
  -f lavfi -i "color=black:s=320x240:r=25" \
  -filter_complex "[0:a]aresample=48000,aformat=channel_layouts=stereo,volume=1.0[s];\
[1:a]aresample=48000,aformat=channel_layouts=stereo,volume=0.6,adelay=4000|4000[m];\
[2:a]aresample=48000,aformat=channel_layouts=stereo,adelay=19000|19000[l];\
[s][m][l]amix=inputs=3:duration=longest:normalize=0[a]" \
  -map 3:v -map "[a]" -t 24 -c:v libx264 -pix_fmt yuv420p -c:a aac -b:a 96k query.mp4
echo "demo: query.mp4 = speech, then $(basename "$TRACK") from 40 s at 4-18 s, then $(basename "$LOGO") at 19 s" >&2
echo "demo: scanning" >&2
"$EARMARK" -i index scan --format table query.mp4
"$EARMARK" -i index scan --format json query.mp4 > matches.json
echo "demo: JSON written to $WORK/matches.json" >&2
