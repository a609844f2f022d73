#!/usr/bin/env bash
# Identification benchmark through the CLI, the interface every stage is measured with.
#
#   bench/run-benchmark.sh CATALOGUE_TSV QUERY_DIR OUT_DIR
#
# Builds a release `earmark` (in build-release/) if needed, indexes CATALOGUE_TSV into a fresh
# OUT_DIR/index, scans every file of QUERY_DIR/queries.txt in ONE scan process, and writes
#   OUT_DIR/results.jsonl  one line per query, in the format ../shared/bench/score.py reads
#   OUT_DIR/timing.json    indexing and scanning speed and memory
# TSV rows: id<TAB>path[<TAB>content type]; without a type, paths containing "jingle" are
# indexed as trademarks, the rest as music. Paths are relative to the TSV's / list's folder.
# EARMARK_INDEX_ARGS / EARMARK_SCAN_ARGS are split into words and appended to the commands.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 CATALOGUE_TSV QUERY_DIR OUT_DIR" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TSV="$(realpath "$1")"
QDIR="$(realpath "$2")"
OUT="$3"
[ -f "$TSV" ] || { echo "no catalogue list: $TSV" >&2; exit 2; }
[ -f "$QDIR/queries.txt" ] || { echo "no $QDIR/queries.txt" >&2; exit 2; }
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
BUILD="$ROOT/build-release"
bash "$ROOT/scripts/install-deps.sh"
if [ ! -x "$BUILD/earmark" ] || [ -n "$(find "$ROOT/src" "$ROOT/cli" "$ROOT/CMakeLists.txt" -newer "$BUILD/earmark" -print -quit)" ]; then
  echo "building release earmark in $BUILD" >&2
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DEARMARK_BUILD_TESTS=OFF >&2
  cmake --build "$BUILD" -j"$(nproc)" --target earmark_cli >&2
fi
EARMARK="$BUILD/earmark"
read -r -a INDEX_ARGS <<< "${EARMARK_INDEX_ARGS:-}"
read -r -a SCAN_ARGS <<< "${EARMARK_SCAN_ARGS:-}"

# Catalogue with absolute paths and content types.
TSV_DIR="$(dirname "$TSV")"
awk -F'\t' -v OFS='\t' -v base="$TSV_DIR" '
  /^#/ || NF < 2 { next }
  { p = ($2 ~ /^\//) ? $2 : base "/" $2
    t = (NF >= 3 && $3 != "") ? $3 : (($2 ~ /jingle/) ? "trademark" : "music")
    print $1, p, t }' "$TSV" > "$OUT/catalogue.tsv"

rm -rf "$OUT/index"
echo "indexing $(wc -l < "$OUT/catalogue.tsv") references" >&2
/usr/bin/time -v -o "$OUT/index.time" "$EARMARK" -i "$OUT/index" index "$OUT/catalogue.tsv" \
  "${INDEX_ARGS[@]}" > "$OUT/index.json"
"$EARMARK" -i "$OUT/index" stats > "$OUT/stats.json"

echo "scanning $(grep -c . "$QDIR/queries.txt") queries" >&2
set +e
/usr/bin/time -v -o "$OUT/scan.time" "$EARMARK" -i "$OUT/index" scan --list "$QDIR/queries.txt" \
  --format jsonl --timing "$OUT/scan-timing.json" "${SCAN_ARGS[@]}" > "$OUT/scan.jsonl"
rc=$?
set -e
[ $rc -le 1 ] || { echo "scan failed (exit $rc)" >&2; exit $rc; }

/usr/bin/python3 - "$OUT" "$QDIR" <<'PY'
import json, os, sys
out, qdir = sys.argv[1], sys.argv[2]

def time_v(path):
    vals = {}
    for line in open(path):
        k, _, v = line.strip().rpartition(': ')
        vals[k] = v
    def secs(s):
        parts = [float(x) for x in s.split(':')]
        t = 0.0
        for p in parts:
            t = t * 60 + p
        return t
    return {'wall': secs(vals['Elapsed (wall clock) time (h:mm:ss or m:ss)']),
            'cpu': float(vals['User time (seconds)']) + float(vals['System time (seconds)']),
            'rss_mb': int(vals['Maximum resident set size (kbytes)']) / 1024.0}

# results.jsonl: the query path as listed in queries.txt, ref = catalogue id.
listed = [l.strip() for l in open(os.path.join(qdir, 'queries.txt')) if l.strip()]
by_abs = {os.path.normpath(os.path.join(qdir, q)): q for q in listed}
with open(os.path.join(out, 'results.jsonl'), 'w') as fh:
    for line in open(os.path.join(out, 'scan.jsonl')):
        r = json.loads(line)
        q = by_abs.get(os.path.normpath(r['query']), r['query'])
        ms = [{'ref': m['ref'], 'score': m['score'], 'query_start': m['query_start'],
               'ref_start': m['ref_start'], 'query_end': m['query_end'], 'ref_end': m['ref_end'],
               'speed': m['speed'], 'pitch': m['pitch']} for m in r.get('matches', [])]
        o = {'query': q, 'matches': ms}
        if 'error' in r:
            o['error'] = r['error']
        fh.write(json.dumps(o) + '\n')

idx, scan = time_v(os.path.join(out, 'index.time')), time_v(os.path.join(out, 'scan.time'))
stats = json.load(open(os.path.join(out, 'stats.json')))
per = json.load(open(os.path.join(out, 'scan-timing.json')))['queries']
walls = sorted(q['total_ms'] for q in per)
def pct(v, p):
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else 0.0
after = [q['total_ms'] - q['decode_ms'] for q in per if q['duration_s'] >= 9.5]
timing = {
    'audio_seconds_indexed': round(stats['audio_hours'] * 3600.0, 1),
    'index_wall_s': idx['wall'], 'index_cpu_s': idx['cpu'],
    'index_bytes': stats['segment_bytes'] + stats['catalogue_bytes'],
    'index_peak_rss_mb': round(idx['rss_mb'], 1),
    'queries': len(per),
    'scan_wall_s': scan['wall'], 'scan_cpu_s': scan['cpu'],
    'scan_peak_rss_mb': round(scan['rss_mb'], 1),
    'query_wall_ms': {'mean': round(sum(walls) / max(1, len(walls)), 2),
                      'p50': round(pct(walls, 50), 2), 'p99': round(pct(walls, 99), 2)},
    'query_decode_ms': {'mean': round(sum(q['decode_ms'] for q in per) / max(1, len(per)), 2)},
    'query_10s_after_decode_ms': {'mean': round(sum(after) / max(1, len(after)), 2),
                                  'p99': round(pct(sorted(after), 99), 2)},
    'index_realtime_factor': round(stats['audio_hours'] * 3600.0 / max(idx['wall'], 1e-9), 1),
    'index_mb_per_hour': stats['mb_per_hour'],
}
json.dump(timing, open(os.path.join(out, 'timing.json'), 'w'), indent=2)
print(json.dumps(timing, indent=2))
PY
