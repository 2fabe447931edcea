#!/usr/bin/env bash
# Refits the polarity head, apps/neural/data/head.json, from the VADER lexicon.
#
# Run by hand (never in tests or CI); commit the new head.json. Fetches the vaderSentiment
# wheel with pip into a temporary directory, checks its SHA-256, takes vader_lexicon.txt out
# of it with python's zipfile, and runs the train_head program on it. Needs the model files
# (./scripts/fetch_model.sh) and python3 with pip. Extra arguments go to train_head.
set -euo pipefail

CRATE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$CRATE_DIR/../.." && pwd)"
WHEEL_SPEC="vaderSentiment==3.3.2"
WHEEL_SHA256="3bf1d243b98b1afad575b9f22bc2cb1e212b94ff89ca74f8a23a588d024ea311"
PYTHON="${PYTHON:-python3}"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$TMP" "$WHEEL_SPEC"
WHEEL="$(find "$TMP" -maxdepth 1 -name '*.whl' | head -n 1)"
[[ -n "$WHEEL" ]] || { echo "error: pip downloaded no wheel for $WHEEL_SPEC" >&2; exit 1; }
GOT="$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$WHEEL")"
if [[ "$GOT" != "$WHEEL_SHA256" ]]; then
    echo "error: SHA-256 mismatch for $(basename "$WHEEL"): got $GOT, want $WHEEL_SHA256" >&2
    exit 1
fi
"$PYTHON" - "$WHEEL" "$TMP/vader_lexicon.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    data = zf.read("vaderSentiment/vader_lexicon.txt")
with open(sys.argv[2], "wb") as out:
    out.write(data)
PY

cd "$REPO_ROOT"
cargo run --release -p neural --bin train_head -- --lexicon "$TMP/vader_lexicon.txt" "$@"
