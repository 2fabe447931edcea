#!/usr/bin/env bash
# Creates the Python virtual environment the AMQP interoperability tests run aio-pika from:
# <repo>/.venv with aio-pika 9.6 (the version whose RPC pattern transport-amqp follows).
# Idempotent: does nothing when the venv already has it. Prints the venv's python path last.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="$VENV/bin/python"
WANTED="9.6"

has_aio_pika() {
    [ -x "$PYTHON" ] && "$PYTHON" - "$WANTED" <<'PY' 2>/dev/null
import sys
import aio_pika
sys.exit(0 if aio_pika.__version__.startswith(sys.argv[1] + ".") else 1)
PY
}

if ! has_aio_pika; then
    if [ ! -x "$PYTHON" ]; then
        python3 -m venv "$VENV" || {
            echo "python_venv: python3 -m venv failed (Debian: apt-get install -y python3-venv)" >&2
            exit 1
        }
    fi
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "aio-pika==$WANTED.*"
    has_aio_pika || { echo "python_venv: aio-pika $WANTED not importable after install" >&2; exit 1; }
fi
echo "$PYTHON"
