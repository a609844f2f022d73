#!/usr/bin/python3
"""Fetches the audio the fingerprint network may be trained on and writes the lists `earmark train`
reads: music.txt and noise.txt from ../shared/bench/training_packages.tsv (packages fetched with
`apt-get download`, unpacked with `dpkg -x`, zip/pk3 archives opened for their audio members only),
and speech.txt / ambient.txt from the benchmark's background sets (built by make_corpus.sh, the
files corpus_spec.tsv selects), which the training rules allow as augmentation material.

usage: prepare-training-data.py RULES_TSV BENCH_AUDIO16K OUT_DIR
  RULES_TSV       ../shared/bench/training_packages.tsv
  BENCH_AUDIO16K  ~/.cache/earmark-bench/corpus/audio16k (for bg_speech, bg_tts, bg_ambient)
  OUT_DIR         where packages are unpacked and the lists are written
Packages whose audio sits in Qt .rcc resources (gcompris-qt-data) are skipped.
"""
import os
import re
import subprocess
import sys
import zipfile

AUDIO = re.compile(r"\.(ogg|wav|mp3|flac|opus)$", re.I)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def duration(path):
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "csv=p=0", path], capture_output=True, text=True, timeout=60)
        return float(out.stdout.strip())
    except (ValueError, subprocess.TimeoutExpired):
        return 0.0


def fetch(package, debs, root):
    """Unpacks a package into root/package once; returns that folder."""
    dest = os.path.join(root, package)
    if os.path.exists(os.path.join(dest, ".done")):
        return dest
    os.makedirs(debs, exist_ok=True)
    have = [f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith(".deb")]
    if not have:
        log(f"downloading {package}")
        subprocess.run(["apt-get", "download", "-o", "DPkg::Lock::Timeout=900", package],
                       cwd=debs, check=True, stdout=subprocess.DEVNULL)
        have = [f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith(".deb")]
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["dpkg", "-x", os.path.join(debs, sorted(have)[-1]), dest], check=True)
    # Archives: X.zip / X.pk3 -> X_zip/ / X_pk3/, audio members only.
    for base, _, files in os.walk(dest):
        for f in files:
            if f.endswith((".zip", ".pk3")):
                arch = os.path.join(base, f)
                out = arch[:-4] + "_" + f[-3:]
                try:
                    with zipfile.ZipFile(arch) as z:
                        for m in z.namelist():
                            if AUDIO.search(m) and ".." not in m:
                                z.extract(m, out)
                except zipfile.BadZipFile:
                    log(f"warning: {arch} is not a zip archive")
    open(os.path.join(dest, ".done"), "w").close()
    return dest


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rules_path, bench_audio, out = sys.argv[1:]
    root, debs = os.path.join(out, "pkg"), os.path.join(out, "debs")
    lists = {"music": [], "effects": []}
    for line in open(rules_path):
        if line.startswith("#") or not line.strip():
            continue
        kind, package, regex, min_s = line.rstrip("\n").split("\t")
        if package == "gcompris-qt-data":
            log("skipping gcompris-qt-data (audio inside Qt .rcc resources)")
            continue
        dest = fetch(package, debs, root)
        pattern = re.compile(regex)
        found = 0
        for base, _, files in os.walk(dest):
            for f in sorted(files):
                path = os.path.join(base, f)
                rel = os.path.relpath(path, dest)
                if os.path.islink(path) or not AUDIO.search(f) or not pattern.search(rel):
                    continue
                if duration(path) >= float(min_s):
                    lists[kind].append(path)
                    found += 1
        log(f"{kind:8s} {package}: {found} files")
    # Byte-identical files once.
    for kind in lists:
        seen, kept = set(), []
        for p in sorted(lists[kind]):
            key = (os.path.getsize(p), open(p, "rb").read(65536))
            if key not in seen:
                seen.add(key)
                kept.append(p)
        lists[kind] = kept
    with open(os.path.join(out, "music.txt"), "w") as f:
        f.write("\n".join(lists["music"]) + "\n")
    bg = lambda s: sorted(os.path.join(bench_audio, s, x) for x in os.listdir(os.path.join(bench_audio, s)))
    with open(os.path.join(out, "noise.txt"), "w") as f:
        f.write("\n".join(lists["effects"] + bg("bg_ambient")) + "\n")
    with open(os.path.join(out, "speech.txt"), "w") as f:
        f.write("\n".join(bg("bg_speech") + bg("bg_tts")) + "\n")
    log(f"music {len(lists['music'])}, effects {len(lists['effects'])} files; lists in {out}")


if __name__ == "__main__":
    main()
