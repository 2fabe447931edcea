#!/usr/bin/env bash
# install_debian.sh COMMAND PACKAGE [COMMAND PACKAGE ...]: installs each Debian PACKAGE whose
# COMMAND is not on PATH (needs root), e.g. `install_debian.sh chromium chromium wrk wrk`.
# Idempotent. Exits non-zero when a command is still missing, so that the test or benchmark
# that needs it fails loudly instead of skipping.
set -euo pipefail

missing=()
while (($# >= 2)); do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
done
((${#missing[@]} == 0)) && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install_debian: ${missing[*]} not installed and we are not root" >&2
    exit 1
fi
echo "install_debian: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
