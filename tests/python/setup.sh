#!/usr/bin/env bash
# Creates the virtualenv the app-net compatibility tests (tests/appnet.rs) run Python
# app-net 0.6.2 from: <repo>/target/appnet-venv. Does nothing when it is already there.
# Usage: bash tests/python/setup.sh   (from anywhere; .ci/run calls it before cargo test)
#
# It never imports app-net: importing it starts a server on the host's address and pings
# ports there (see tests/python/appnet_loopback.py, which confines it to 127.0.0.1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/appnet-venv"
python="$venv/bin/python"
version_check='import importlib.metadata as m, sys; sys.exit(m.version("app-net") != "0.6.2")'

if [ -x "$python" ] && "$python" -c "$version_check" 2>/dev/null; then
    echo "appnet venv: app-net 0.6.2 already in $venv"
    exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "appnet venv: python3 with the venv module is needed (Debian: apt-get install python3-venv)" >&2
    exit 1
fi

rm -rf "$venv"
python3 -m venv "$venv"
# six is app-net's only dependency; pip resolves it from the same registry.
"$venv/bin/pip" install --quiet --disable-pip-version-check app-net==0.6.2
"$python" -c "$version_check"
echo "appnet venv: installed app-net 0.6.2 into $venv"
