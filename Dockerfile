# syntax=docker/dockerfile:1
#
# The stagegate image: the release binary on a distroless base, running as a
# non-root numeric user. Build it with
#
#   docker build -t ghcr.io/stagegate/stagegate:$(version) .      (or `make image`)
#
# where the tag is the crate version, which the Helm chart's appVersion and
# default image tag follow. This repository's CI has no container engine, so
# the image is not built or tested there.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Cargo.toml declares the test and bench targets, so their sources must be
# present for cargo to read the manifest; only the binary is built.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin stagegate \
    && install -D -m 0755 target/release/stagegate /out/stagegate

# glibc and libgcc only: SQLite is bundled and TLS is rustls, so no OpenSSL.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="stagegate" \
      org.opencontainers.image.description="Access control as code for an ML model deployment platform" \
      org.opencontainers.image.source="https://github.com/stagegate/stagegate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/stagegate /usr/local/bin/stagegate
# 65532 is distroless's `nonroot`; the chart's podSecurityContext uses it.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["stagegate"]
