# Phantom container image: one binary, `phantom`, used both as the
# phantom-db-proxy sidecar (`phantom proxy`, injected by the webhook) and as
# the webhook itself (`phantom webhook`).
#
#   docker build -t registry.example.com/phantom:0.1.0 .
#
# Stage 1 builds bin/phantom on Debian 12 with the -dev packages; stage 2 is
# debian:12-slim with only the shared libraries bin/phantom links against
# (`readelf -d bin/phantom | grep NEEDED`; tests/integration/test_webhook.sh
# checks that this list covers them) and CA certificates, running as the
# non-root user 65532 that the injected sidecar's securityContext expects.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libssl-dev libevent-dev libyaml-dev libjansson-dev libcurl4-openssl-dev \
      libpg-query-dev libprotobuf-c-dev libp11-kit-dev libpq-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY src/ src/
RUN make -j"$(nproc)" bin/phantom \
 && strip bin/phantom \
 && ./bin/phantom version

FROM debian:12-slim
# Runtime libraries, one package per NEEDED entry of bin/phantom:
#   libevent_core/extra/openssl-2.1.so.7, libssl.so.3 + libcrypto.so.3,
#   libyaml-0.so.2, libjansson.so.4, libcurl.so.4, libpq.so.5,
#   libpg_query.so.1504.0 (libc6 is in the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 \
      libssl3 libyaml-0-2 libjansson4 libcurl4 libpq5 libsqlite3-0 libpg-query1504.0 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/phantom /usr/local/bin/phantom
# Numeric, so that runAsNonRoot can verify it without a passwd entry.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/phantom"]
CMD ["--help"]
