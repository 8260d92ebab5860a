# syntax=docker/dockerfile:1
# Multi-stage build of readiness-exporter: a Rust toolchain compiles a release binary, and the
# final image holds only that binary on a distroless base (glibc, CA certificates, no shell),
# running as the unprivileged user 65532.
#
#   docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t readiness-exporter .

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The revision for readiness_exporter_build_info; the build context carries no .git.
ARG REVISION=unknown
ENV READINESS_EXPORTER_REVISION=${REVISION}

# Dependencies first, so that a change to the sources alone reuses this layer.
COPY Cargo.toml Cargo.lock build.rs ./
# Cargo reads every target the manifest declares, so each gets a placeholder.
RUN mkdir -p src benches tests/it \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs benches/encode.rs tests/it/main.rs \
    && cargo fetch --locked

COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin readiness-exporter \
    && cp target/release/readiness-exporter /readiness-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /readiness-exporter /usr/local/bin/readiness-exporter
COPY examples/quickstart.yaml /etc/readiness-exporter/config.yaml
# Inside the container the exporter listens on every interface of the container's network
# namespace; the Helm chart sets the same.
ENV READINESS_EXPORTER__GLOBAL__LISTEN_ADDRESS=0.0.0.0:9731
USER 65532:65532
EXPOSE 9731
ENTRYPOINT ["/usr/local/bin/readiness-exporter"]
CMD ["serve", "--config", "/etc/readiness-exporter/config.yaml"]
