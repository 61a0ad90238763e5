# syntax=docker/dockerfile:1
# Herald container image.
#   docker build -t herald .
#   docker run -p 8080:8080 -e HERALD_REDIS_URL=redis://redis:6379 herald
# Build stage: the official Swift image, a release build with the Swift runtime linked in
# statically. Runtime stage: debian:bookworm-slim plus hiredis, OpenSSL (TLS to Redis) and the
# system CAs that rediss:// trusts by default, nothing else (libc6, libstdc++6, libgcc-s1 and
# zlib1g, for permessage-deflate, are already in the slim image). `make container-check` rehearses this file
# without a Docker engine; it reads the runtime stage's apt-get line, COPYs, ENV, USER and
# HEALTHCHECK from here, so change them here and rerun it.

# ---------------------------------------------------------------------------- build
FROM swift:6.3-bookworm AS build

# hiredis, OpenSSL and zlib headers for the CHiredis, COpenSSL and CZlib system libraries
# (pkg-config is in the Swift image already; listed so the build does not depend on that).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis-dev=0.14.1-3 libssl-dev=3.0.22-1~deb12u2 \
    zlib1g-dev=1:1.2.13.dfsg-1+deb12u1 pkg-config=1.8.1-1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first: this layer is reused until the manifest changes.
COPY Package.swift Package.resolved* ./
RUN --mount=type=cache,target=/src/.build \
    swift package resolve

# Package.swift declares the test targets too, so their folders must exist for the manifest to
# load (they are not compiled: only the herald product is built). .dockerignore keeps out the rest.
COPY Sources ./Sources
COPY Tests ./Tests
RUN --mount=type=cache,target=/src/.build \
    swift build -c release --static-swift-stdlib --product herald \
 && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/herald" /out/herald \
 && strip /out/herald

# ---------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim

# Versions are pinned (hadolint DL3008): a new Debian revision of hiredis or OpenSSL (security
# updates come often) breaks the build loudly instead of changing the image silently; bump the
# pin then.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14=0.14.1-3 libssl3=3.0.22-1~deb12u2 \
    ca-certificates=20230311+deb12u1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin herald

COPY --from=build /out/herald /usr/local/bin/herald
COPY public /srv/herald/public

ENV HERALD_HOST=0.0.0.0 \
    HERALD_PORT=8080 \
    HERALD_PUBLIC_DIR=/srv/herald/public

WORKDIR /srv/herald
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080

# `herald healthcheck` GETs /healthz on 127.0.0.1:$HERALD_PORT and exits 0 or 1: no curl needed.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/herald", "healthcheck"]

# Herald drains on SIGTERM (docker stop): it stops accepting, answers requests in flight,
# closes WebSockets with 1001 and exits 0. It handles the signal itself, so it can be PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/herald"]
