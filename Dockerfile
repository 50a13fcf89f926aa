# contacts-gateway container image: build stage on Debian 12 with the packages of scripts/deps.sh,
# runtime stage with the runtime libraries only. The gateway is the entrypoint; kore-sim and
# contacts-cli are beside it for debugging (`--entrypoint kore-sim`, `podman exec ... contacts-cli`).
# scripts/image-test.sh builds it offline on a debootstrap base (BASE); elsewhere the default works.
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS deps
COPY scripts/deps.sh /src/scripts/deps.sh
RUN /src/scripts/deps.sh && apt-get install -y -qq --no-install-recommends ccache >/dev/null

FROM deps AS build
COPY . /src
ARG REVISION=unknown
# Only the three binaries, Release. ccache lives in a build cache mount (kept between builds).
RUN --mount=type=cache,target=/ccache \
    CCACHE_DIR=/ccache cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCONTACTS_BUILD_TESTS=OFF -DCONTACTS_BUILD_BENCH=OFF \
      -DCONTACTS_REVISION="${REVISION}" >/dev/null \
 && CCACHE_DIR=/ccache cmake --build /build -j2 --target contacts-gateway kore-sim contacts-cli \
 && install -D -s -t /out /build/server/contacts-gateway /build/tools/kore-sim/kore-sim /build/client/contacts-cli

FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates libgrpc++1.51 libprotobuf32 libabsl20220623 libssl3 libsimdjson14 \
      libhiredis0.14 >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /out/ /usr/local/bin/
# As debian:bookworm-slim sets it (the debootstrap base of scripts/image-test.sh has none).
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="contacts-gateway" \
      org.opencontainers.image.description="gRPC gateway streaming Kore.ai contact lists (contacts.v1.ContactService)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# A numeric user, so that Kubernetes can verify runAsNonRoot.
USER 10001:10001
# gRPC, gRPC health for probes (--probe-listen), admin (/metrics, /healthz).
EXPOSE 50051 50052 9090
# Exec form: the gateway is PID 1 and gets SIGTERM itself (it drains, then exits 0).
ENTRYPOINT ["/usr/local/bin/contacts-gateway"]
