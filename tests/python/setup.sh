#!/usr/bin/env bash
# Creates the virtualenv the Python-side tests run in: <repo>/target/appnet-venv, with
# app-net 0.6.2 (the app-net compatibility tests, tests/it/appnet.rs) and noiseprotocol
# 0.3.1 (tests/clients/noise_check.py, the secure handshake written from PROTOCOL.md).
# Does nothing when both are already there.
# Usage: bash tests/python/setup.sh   (from anywhere; .ci/run calls it before cargo test)
#
# It never imports app-net: importing it starts a server on the host's address and pings
# ports there (see tests/python/appnet_loopback.py, which confines it to 127.0.0.1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/appnet-venv"
python="$venv/bin/python"
version_check='import importlib.metadata as m, sys
sys.exit(m.version("app-net") != "0.6.2" or m.version("noiseprotocol") != "0.3.1")'

if [ -x "$python" ] && "$python" -c "$version_check" 2>/dev/null; then
    echo "appnet venv: app-net 0.6.2 and noiseprotocol 0.3.1 already in $venv"
    exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "appnet venv: python3 with the venv module is needed (Debian: apt-get install python3-venv)" >&2
    exit 1
fi

[ -x "$python" ] || python3 -m venv "$venv"
# six is app-net's only dependency, cryptography noiseprotocol's; pip resolves them from
# the same registry.
"$venv/bin/pip" install --quiet --disable-pip-version-check app-net==0.6.2 noiseprotocol==0.3.1
"$python" -c "$version_check"
echo "appnet venv: installed app-net 0.6.2 and noiseprotocol 0.3.1 into $venv"
