#!/usr/bin/env bash
# `make bench`: installs what is missing (Debian: webdis, nginx-light, libnginx-mod-nchan, wrk,
# redis-server, redis-tools; pip: matplotlib into .venv), builds release herald and herald-bench
# in .build-bench, then runs bench.py, which starts a private Redis (also on a TLS port, with a
# CA and certificate it makes with openssl), Herald, a second Herald over rediss://, Webdis and
# Nchan on free loopback ports, runs every scenario side by side and writes bench-results/.
#
# Environment: BENCH_RUNS (3) repetitions, BENCH_SCALE (1) multiplies subscriber counts,
# BENCH_DURATION (5) seconds per measurement, BENCH_QUICK=1 a smoke run (1 run, scale 0.1, 2 s),
# BENCH_ONLY=a,b to run some scenarios, HERALD_BIN / HERALD_BENCH_BIN to use other binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."

. scripts/apt-missing.sh
apt_install_missing bench webdis nginx-light libnginx-mod-nchan wrk redis-server redis-tools
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  echo "bench: installing matplotlib into .venv"
  .venv/bin/pip install -q --disable-pip-version-check matplotlib
fi

SWIFT="${SWIFT:-swift}"
if [ -z "${HERALD_BIN:-}" ] || [ -z "${HERALD_BENCH_BIN:-}" ]; then
  echo "bench: building release herald and herald-bench (scratch path .build-bench)"
  "$SWIFT" build -c release --scratch-path .build-bench --product herald
  "$SWIFT" build -c release --scratch-path .build-bench --product herald-bench
fi
export HERALD_BIN="${HERALD_BIN:-.build-bench/release/herald}"
export HERALD_BENCH_BIN="${HERALD_BENCH_BIN:-.build-bench/release/herald-bench}"
exec .venv/bin/python scripts/bench/bench.py "$@"
