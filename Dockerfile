# Herald container image: build with the official Swift image, run on Debian bookworm-slim
# with only hiredis and the C++ runtime (the Swift stdlib is linked statically).
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product herald --static-swift-stdlib \
 && install -D "$(swift build -c release --show-bin-path)/herald" /out/herald

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home herald
COPY --from=build /out/herald /usr/local/bin/herald
COPY public /srv/herald/public
ENV HERALD_HOST=0.0.0.0 \
    HERALD_PORT=8080 \
    HERALD_PUBLIC_DIR=/srv/herald/public
USER herald
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/herald"]
