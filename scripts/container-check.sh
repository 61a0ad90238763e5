#!/usr/bin/env bash
# `make container-check`: rehearse the Docker image without a Docker engine.
#
#  1. reads the Dockerfile: the build stage's `swift build` flags and strip step, and the
#     runtime stage's RUN, COPY, ENV, WORKDIR, USER, EXPOSE, HEALTHCHECK and ENTRYPOINT;
#  2. builds the release binary with those flags (scratch path .build-container);
#  3. makes a Debian bookworm minbase root filesystem with debootstrap, configured like
#     debian:bookworm-slim (cached as .build-container/rootfs/bookworm-minbase.tar);
#  4. runs the runtime stage's RUN instructions in it, verbatim, with chroot (so the apt-get
#     install line, pins included, is exactly the Dockerfile's), then does its COPYs;
#  5. starts a redis-server on the host loopback and Herald inside the root filesystem as the
#     image's USER, as PID 1 of its own PID namespace (like `docker run`; the network is the
#     host's), with the image's ENV plus HERALD_PORT/HERALD_REDIS_URL for this run;
#  6. checks: /healthz and /readyz, the demo page and herald.js served from the copied
#     public/, the process's uid, the HEALTHCHECK command (0 while up, non-zero once down),
#     a publish/subscribe round trip (Python websockets subscriber + curl publish), and that
#     SIGTERM (docker stop) makes Herald exit 0;
#  7. stops everything it started and reports sizes and timings.
#
# Needs root (debootstrap, chroot, unshare), network access to the Debian mirror the host uses
# (first run and every apt-get in step 4), redis-server, curl and .venv (scripts/deps.sh).
# HERALD_CONTAINER_KEEP=1 keeps the run's root filesystem for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/.build-container
CACHE=$WORK/rootfs/bookworm-minbase.tar
ROOTFS=$WORK/rootfs/run
T0=$(date +%s.%N)
PY=$REPO/.venv/bin/python

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '\n== [%6ss] %s\n' "$(elapsed)" "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
die() { printf 'container-check: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, unshare)"
[ -x "$PY" ] && "$PY" -c 'import websockets' 2>/dev/null || die ".venv with websockets is missing: run scripts/deps.sh"
missing=()
for tool in debootstrap:debootstrap redis-server:redis-server curl:curl unshare:util-linux nsenter:util-linux; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "container-check: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Everything started here is stopped by PID on exit.
herald_pid="" redis_pid="" sub_pid=""
cleanup() {
  local status=$?
  for pid in $sub_pid $herald_pid $redis_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $sub_pid $herald_pid $redis_pid; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # Anything still running inside the image's root (its PID 1 outlives a SIGKILLed unshare).
  if [ -n "${ROOTFS:-}" ]; then
    for proc in /proc/[0-9]*; do
      [ "$(readlink "$proc/root" 2>/dev/null)" = "$ROOTFS" ] && kill -9 "${proc#/proc/}" 2>/dev/null
    done
  fi
  if [ -z "${HERALD_CONTAINER_KEEP:-}" ] && [ -d "$ROOTFS" ]; then rm -rf "$ROOTFS"; fi
  [ $status -eq 0 ] || printf '\ncontainer-check: FAILED after %ss (logs in %s)\n' "$(elapsed)" "$WORK/logs" >&2
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/logs" "$WORK/rootfs"

# ---------------------------------------------------------------------------- 1. Dockerfile
step "reading the Dockerfile"
PLAN=$WORK/plan.sh
python3 - "$REPO/Dockerfile" > "$PLAN" <<'PYEOF'
import json, re, shlex, sys

def logical_lines(text):
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not cur and not line):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        out.append(cur.strip())
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out

def fail(msg):
    print(f"die {shlex.quote('Dockerfile: ' + msg)}")
    sys.exit(0)

stages = []
for line in logical_lines(open(sys.argv[1]).read()):
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        parts = rest.split()
        parts = [p for p in parts if not p.startswith("--")]
        name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
        stages.append({"image": parts[0], "name": name, "ins": []})
    elif stages:
        stages[-1]["ins"].append((word, rest.strip()))
if len(stages) < 2:
    fail("expected a multi-stage build")
runtime = stages[-1]

def strip_flags(rest):
    words = rest.split()
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, " ".join(words)

def shell_words(rest):
    """Exec form (JSON array) or shell form (run with /bin/sh -c, as Docker does)."""
    rest = rest.strip()
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]

# The build stage that the runtime stage copies the binary from.
copies = [(strip_flags(r)) for w, r in runtime["ins"] if w == "COPY"]
from_names = {f.get("from") for f, _ in copies if f.get("from")}
build = next((s for s in stages[:-1] if s["name"] in from_names), stages[0])
build_runs = " && ".join(r for w, r in build["ins"] if w == "RUN")
m = re.search(r"swift build ([^&|;]*?)(?:&&|$)", build_runs)
if not m:
    fail("no `swift build` in the build stage")
flags = [w for w in shlex.split(m.group(1)) if not w.startswith("$")]
for needed in ("-c", "release", "--static-swift-stdlib", "--product"):
    if needed not in flags:
        fail(f"the build stage's swift build lacks {needed}")
out = re.search(r"\binstall\b[^&]*?\s(/\S+)\s*(?:&&|$)", build_runs)
strip = re.search(r"\bstrip((?:\s+-{1,2}[\w-]+)*)\s+(/\S+)", build_runs)

print(f"BUILD_FLAGS=({' '.join(shlex.quote(f) for f in flags)})")
print(f"BUILD_OUT={shlex.quote(out.group(1) if out else '')}")
print(f"STRIP_FLAGS=({' '.join(shlex.quote(f) for f in (strip.group(1).split() if strip else []))})")
print(f"DO_STRIP={'1' if strip else ''}")
print(f"RUNTIME_IMAGE={shlex.quote(runtime['image'])}")

runs, copy_lines, env, workdir, user, expose, health, entry, cmd = [], [], [], "/", "0:0", [], None, None, None
for word, rest in runtime["ins"]:
    if word == "RUN":
        flags_, body = strip_flags(rest)
        runs.append(body)
    elif word == "COPY":
        f, body = strip_flags(rest)
        parts = shell_words(body) if body.startswith("[") else body.split()
        srcs, dst = parts[:-1], parts[-1]
        for src in srcs:
            copy_lines.append(f"{'build' if f.get('from') else 'context'}\t{src}\t{dst}\t{f.get('chown', '')}")
    elif word == "ENV":
        for token in shlex.split(rest):
            if "=" not in token:
                fail(f"ENV form without '=' is not supported here: {rest}")
            env.append(token)
    elif word == "WORKDIR":
        workdir = rest if rest.startswith("/") else workdir.rstrip("/") + "/" + rest
    elif word == "USER":
        user = rest
    elif word == "EXPOSE":
        expose += rest.split()
    elif word == "HEALTHCHECK":
        _, body = strip_flags(rest)
        if body.upper().startswith("CMD "):
            health = shell_words(body[4:])
    elif word == "ENTRYPOINT":
        entry = shell_words(rest)
    elif word == "CMD":
        cmd = shell_words(rest)

apt = [r for r in runs if re.search(r"apt-get\s+install", r)]
packages = []
for r in apt:
    tail = re.split(r"apt-get\s+install", r, maxsplit=1)[1]
    tail = re.split(r"&&|;|\|", tail)[0]
    packages += [w for w in tail.split() if not w.startswith("-")]
print(f"RUNS=({' '.join(shlex.quote(r) for r in runs)})")
print(f"APT_PACKAGES=({' '.join(shlex.quote(p) for p in packages)})")
print(f"COPIES=({' '.join(shlex.quote(c) for c in copy_lines)})")
print(f"IMAGE_ENV=({' '.join(shlex.quote(e) for e in env)})")
print(f"WORKDIR={shlex.quote(workdir)}")
print(f"IMAGE_USER={shlex.quote(user)}")
print(f"EXPOSE=({' '.join(shlex.quote(p) for p in expose)})")
print(f"HEALTHCHECK_CMD=({' '.join(shlex.quote(w) for w in (health or []))})")
command = (entry or []) + (cmd or [])
if not command:
    fail("no ENTRYPOINT or CMD in the runtime stage")
print(f"START_CMD=({' '.join(shlex.quote(w) for w in command)})")
PYEOF
die() { printf 'container-check: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=/dev/null
source "$PLAN"
[ "$RUNTIME_IMAGE" = "debian:bookworm-slim" ] || die "runtime image is $RUNTIME_IMAGE; this rehearsal knows debian:bookworm-slim"
[ ${#APT_PACKAGES[@]} -gt 0 ] || die "no apt-get install in the runtime stage"
ok "build flags: ${BUILD_FLAGS[*]}${DO_STRIP:+; then strip ${STRIP_FLAGS[*]}}"
ok "runtime packages: ${APT_PACKAGES[*]}"
ok "user $IMAGE_USER, workdir $WORKDIR, expose ${EXPOSE[*]:-none}, healthcheck: ${HEALTHCHECK_CMD[*]:-none}"

# ---------------------------------------------------------------------------- 2. build
step "swift build ${BUILD_FLAGS[*]} --scratch-path .build-container"
swift build "${BUILD_FLAGS[@]}" --scratch-path "$WORK" 2>&1 | tail -n 3
bin_dir=$(swift build "${BUILD_FLAGS[@]}" --scratch-path "$WORK" --show-bin-path)
product=herald
for ((i = 0; i < ${#BUILD_FLAGS[@]}; i++)); do
  [ "${BUILD_FLAGS[$i]}" = "--product" ] && product=${BUILD_FLAGS[$((i + 1))]}
done
BINARY=$WORK/image-herald
cp "$bin_dir/$product" "$BINARY"
[ -z "$DO_STRIP" ] || strip "${STRIP_FLAGS[@]}" "$BINARY"
ok "$(du -h "$BINARY" | cut -f1) binary ($product${DO_STRIP:+, stripped})"

# ---------------------------------------------------------------------------- 3. rootfs
mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [ -r "$f" ] || continue
  mirror=$(awk '
    /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = uri }
    /^deb / && $3 == "bookworm" { found = $2 }
    END { if (found) print found }' "$f")
  [ -z "$mirror" ] || break
done
mirror=${mirror:-http://deb.debian.org/debian}
if [ ! -s "$CACHE" ]; then
  step "debootstrap --variant=minbase bookworm (mirror $mirror; cached for later runs)"
  tmp=$WORK/rootfs/bootstrap
  rm -rf "$tmp"
  debootstrap --variant=minbase bookworm "$tmp" "$mirror" > "$WORK/logs/debootstrap.log" 2>&1 ||
    die "debootstrap failed (see $WORK/logs/debootstrap.log)"
  chroot "$tmp" apt-get clean
  rm -rf "$tmp"/var/lib/apt/lists/*
  tar -C "$tmp" -cf "$CACHE.part" . && mv "$CACHE.part" "$CACHE"
  rm -rf "$tmp"
else
  step "root filesystem from the cache ($(du -h "$CACHE" | cut -f1))"
fi
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
tar -C "$ROOTFS" -xf "$CACHE"
# Configure it the way debian:bookworm-slim is: its apt sources (bookworm, -updates, -security)
# and dpkg's path excludes (no docs, man pages or locales).
rm -f "$ROOTFS/etc/apt/sources.list"
security=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && /bookworm-security/ { print uri; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${security:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
# and its apt settings: no package caches left behind, no translations, gzipped indexes.
cat > "$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' > "$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' > "$ROOTFS/etc/apt/apt.conf.d/docker-gzip-indexes"
rm -f "$ROOTFS"/var/cache/apt/*.bin
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
base_kb=$(du -sk "$ROOTFS" | cut -f1)

# ---------------------------------------------------------------------------- 4. RUN + COPY
step "runtime stage: ${#RUNS[@]} RUN instruction(s), verbatim, in the root filesystem"
for run in "${RUNS[@]}"; do
  printf '   RUN %s\n' "$run"
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive HOME=/root /bin/sh -c "$run" > "$WORK/logs/run.log" 2>&1 ||
    { tail -n 20 "$WORK/logs/run.log" >&2; die "RUN failed: $run"; }
done
for pkg in "${APT_PACKAGES[@]}"; do
  name=${pkg%%=*}
  want=${pkg#*=}
  have=$(chroot "$ROOTFS" dpkg-query -W -f='${Version}' "$name" 2>/dev/null) || die "$name is not installed"
  [ "$pkg" = "$name" ] || [ "$have" = "$want" ] || die "$name is $have, the Dockerfile pins $want"
  ok "$name $have installed"
done
for copy in "${COPIES[@]}"; do
  IFS=$'\t' read -r origin src dst chown <<< "$copy"
  if [ "$origin" = build ]; then
    [ "$src" = "$BUILD_OUT" ] || die "COPY --from the build stage of $src, but the build installs $BUILD_OUT"
    from=$BINARY
  else
    from=$REPO/$src
  fi
  [ -e "$from" ] || die "COPY source $src is missing"
  case "$dst" in */) target=$ROOTFS$dst$(basename "$src") ;; *) target=$ROOTFS$dst ;; esac
  mkdir -p "$(dirname "$target")"
  rm -rf "$target"
  cp -a --no-preserve=ownership "$from" "$target"
  [ -z "$chown" ] || chroot "$ROOTFS" chown -R "$chown" "${target#"$ROOTFS"}"
  ok "COPY $src -> $dst"
done
mkdir -p "$ROOTFS$WORKDIR"
missing_libs=$(chroot "$ROOTFS" ldd "${START_CMD[0]}" 2>&1 | grep -E 'not found|not a dynamic' || true)
[ -z "$missing_libs" ] || die "${START_CMD[0]} in the image is missing libraries: $missing_libs"
ok "ldd ${START_CMD[0]}: every library resolves inside the image"
image_kb=$(du -sk "$ROOTFS" | cut -f1)

# uid/gid of USER (a name is looked up in the image's /etc/passwd, as Docker does)
user=${IMAGE_USER%%:*}
group=${IMAGE_USER#*:}
[ "$group" != "$IMAGE_USER" ] || group=""
if ! [[ $user =~ ^[0-9]+$ ]]; then
  line=$(grep "^$user:" "$ROOTFS/etc/passwd") || die "USER $user is not in the image's /etc/passwd"
  uid=$(cut -d: -f3 <<< "$line")
  [ -n "$group" ] || group=$(cut -d: -f4 <<< "$line")
else
  uid=$user
  [ -n "$group" ] || group=$(awk -F: -v u="$uid" '$3 == u { print $4 }' "$ROOTFS/etc/passwd")
fi
if ! [[ ${group:-0} =~ ^[0-9]+$ ]]; then
  group=$(awk -F: -v g="$group" '$1 == g { print $3 }' "$ROOTFS/etc/group")
fi
gid=${group:-0}
[ "$uid" != 0 ] || die "the image runs as root"
ok "runs as uid $uid gid $gid"

# ---------------------------------------------------------------------------- 5. run
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
port=$(free_port)
step "redis-server on 127.0.0.1:$redis_port; Herald in the image on port $port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
  > "$WORK/logs/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done

# The container's environment: Docker's PATH and HOSTNAME/HOME, the image's ENV, then what
# `docker run -e` would add for this run.
home=$(awk -F: -v u="$uid" '$3 == u { print $6 }' "$ROOTFS/etc/passwd")
run_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=container-check
         "HOME=${home:-/}" "${IMAGE_ENV[@]}" "HERALD_PORT=$port" "HERALD_REDIS_URL=redis://127.0.0.1:$redis_port")
# Own PID and mount namespaces (Herald is PID 1, /proc is its own), the host's network.
unshare --pid --mount --fork --kill-child=SIGKILL --mount-proc --root="$ROOTFS" --wd="$WORKDIR" \
  --setgid "$gid" --setuid "$uid" /usr/bin/env -i "${run_env[@]}" "${START_CMD[@]}" \
  > "$WORK/logs/herald.log" 2>&1 &
herald_pid=$!
base=http://127.0.0.1:$port
up=""
for _ in $(seq 200); do
  kill -0 "$herald_pid" 2>/dev/null || { cat "$WORK/logs/herald.log" >&2; die "Herald exited at start"; }
  if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then up=1; break; fi
  sleep 0.05
done
[ -n "$up" ] || { cat "$WORK/logs/herald.log" >&2; die "no answer on /healthz"; }
child=$(cat "/proc/$herald_pid/task/$herald_pid/children" 2>/dev/null | awk '{ print $1 }')
[ -n "$child" ] || die "cannot find Herald's process"

# ---------------------------------------------------------------------------- 6. checks
step "checks"
[ "$(curl -fsS "$base/healthz")" = '{"status":"ok"}' ] || die "/healthz"
ok "GET /healthz 200 {\"status\":\"ok\"}"
for _ in $(seq 100); do curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break; sleep 0.05; done
grep -q '"ready"' <<<"$(curl -fsS "$base/readyz")" || die "/readyz is not ready: $(curl -sS "$base/readyz")"
ok "GET /readyz 200 (its Redis links are up)"
grep -q '<title>Herald' <<<"$(curl -fsS "$base/")" || die "GET / is not the demo page"
curl -fsS -o /dev/null "$base/herald.js" || die "GET /herald.js"
ok "GET / and /herald.js served from the copied public/"
proc_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$child/status")
[ "$proc_uid" = "$uid" ] || die "Herald runs as uid $proc_uid, not $uid"
ns_pid=$(awk '/^NSpid:/ { print $NF }' "/proc/$child/status")
ok "Herald runs as uid $proc_uid, PID $ns_pid in its namespace"
if [ ${#HEALTHCHECK_CMD[@]} -gt 0 ]; then
  health() { # docker exec: the container's namespaces, root, user and environment
    timeout 20 nsenter --target "$child" --pid --mount --root --wd --setgid "$gid" --setuid "$uid" \
      /usr/bin/env -i "${run_env[@]}" "${HEALTHCHECK_CMD[@]}" > "$WORK/logs/healthcheck.log" 2>&1
  }
  health || { cat "$WORK/logs/healthcheck.log" >&2; die "HEALTHCHECK ${HEALTHCHECK_CMD[*]} failed while Herald is up"; }
  ok "HEALTHCHECK ${HEALTHCHECK_CMD[*]} exits 0 while Herald is up"
fi

channel="container-check-$RANDOM$RANDOM"
"$PY" - "$port" "$channel" <<'PYEOF'
import asyncio, json, subprocess, sys
import websockets

port, channel = sys.argv[1], sys.argv[2]
payload = "hello from the image \u2713"

async def main():
    async with websockets.connect(f"ws://127.0.0.1:{port}/subscribe?channel={channel}") as ws:
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert answer == {"type": "subscribed", "kind": "channel", "names": [channel]}, answer
        done = subprocess.run(["curl", "-fsS", "--data-binary", payload.encode(),
                               f"http://127.0.0.1:{port}/publish/{channel}"],
                              capture_output=True, timeout=10)
        assert done.returncode == 0, done.stderr
        published = json.loads(done.stdout)
        assert published == {"channel": channel, "receivers": 1}, published
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message == {"type": "message", "channel": channel, "data": payload}, message

asyncio.run(main())
PYEOF
ok "pub/sub round trip: websockets subscriber, curl publish, receivers 1, payload intact"

step "docker stop: SIGTERM to Herald (PID 1 in its namespace)"
kill -TERM "$child"
status=0
wait "$herald_pid" || status=$?
herald_pid=""
[ "$status" -eq 0 ] || { tail -n 20 "$WORK/logs/herald.log" >&2; die "Herald exited $status after SIGTERM"; }
ok "Herald drained and exited 0"
if [ ${#HEALTHCHECK_CMD[@]} -gt 0 ]; then
  # A fresh container-like namespace with its own /proc: Swift reads the command line from
  # /proc/self/cmdline, so without /proc `herald healthcheck` would not even see its argument.
  down=0
  timeout 20 unshare --pid --mount --fork --kill-child=SIGKILL --mount-proc --root="$ROOTFS" --wd="$WORKDIR" \
    --setgid "$gid" --setuid "$uid" /usr/bin/env -i "${run_env[@]}" "${HEALTHCHECK_CMD[@]}" \
    > "$WORK/logs/healthcheck-down.log" 2>&1 || down=$?
  [ "$down" -ne 0 ] || die "HEALTHCHECK exits 0 with Herald stopped"
  [ "$down" -ne 124 ] || die "HEALTHCHECK still running after 20 s with Herald stopped"
  ok "HEALTHCHECK exits $down once Herald is down"
fi
kill "$redis_pid" && wait "$redis_pid" 2>/dev/null || true
redis_pid=""

# ---------------------------------------------------------------------------- 7. report
step "done"
printf '   the runtime stage adds %s MB to its base (binary %s MB); on debian:bookworm-slim (~75 MB) the image is ~%s MB\n' \
  $(((image_kb - base_kb) / 1024)) $(($(du -k "$BINARY" | cut -f1) / 1024)) $(((image_kb - base_kb) / 1024 + 75))
printf '   container-check passed in %ss\n' "$(elapsed)"
