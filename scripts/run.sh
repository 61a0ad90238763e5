#!/usr/bin/env bash
# `make run`: serve Herald on HERALD_PORT (8080) against HERALD_REDIS_URL. When no Redis answers
# there, start a private redis-server on that address for this session (installing Debian's
# package if needed) and stop it when Herald stops. The demo page's "Watched key" card needs
# Redis's keyspace notifications: the private Redis starts with them, and Herald turns them on
# in a Redis that lacks them (--keyspace-events) unless HERALD_KEYSPACE_EVENTS=0.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${HERALD_REDIS_URL:-redis://127.0.0.1:6379}"
first="${url%%,*}"
hostport="${first#redis://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
host="${hostport%:*}"; port="${hostport##*:}"
[ "$host" != "$hostport" ] || port=6379
redis_pid=""
if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
    echo "run: no Redis answers at $host:$port (HERALD_REDIS_URL); start it or point HERALD_REDIS_URL elsewhere" >&2
    exit 1
  fi
  if ! command -v redis-server >/dev/null; then
    echo "run: redis-server is missing; installing Debian's redis-server package"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  echo "run: no Redis at $host:$port; starting a private redis-server there for this session"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning --notify-keyspace-events KA &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fi
export HERALD_KEYSPACE_EVENTS="${HERALD_KEYSPACE_EVENTS:-1}"
if [ "$HERALD_KEYSPACE_EVENTS" = 1 ] && [ -z "$redis_pid" ]; then
  echo "run: a watch turns on keyspace notifications in this Redis if they are off (HERALD_KEYSPACE_EVENTS=0: leave it alone)"
fi
echo "run: Herald on http://${HERALD_HOST:-127.0.0.1}:${HERALD_PORT:-8080}/ (demo page), Redis $host:$port; Ctrl-C stops"
status=0
"${HERALD_BIN:-.build/release/herald}" "$@" || status=$?
exit $status
