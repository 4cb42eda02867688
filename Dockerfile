# One image with every binary; compose picks the command.
#
# Stage 1 builds the dependencies alone from the manifests, so a source
# change rebuilds only the workspace's own crates (the cached layer holds
# the rest). Stage 2 is a small Debian runtime with a non-root user.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src

# Manifests only, with stub sources: this layer changes when dependencies do.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/
COPY loadgen/Cargo.toml loadgen/
COPY observability/Cargo.toml observability/
COPY services/common/Cargo.toml services/common/
COPY services/order-service/Cargo.toml services/order-service/
COPY services/payment-service/Cargo.toml services/payment-service/
RUN for crate in actors loadgen observability services/common services/order-service services/payment-service; do \
      mkdir -p $crate/src && echo '' > $crate/src/lib.rs && echo 'fn main() {}' > $crate/src/main.rs; \
    done \
 && mkdir -p services/order-service/benches \
 && echo 'fn main() {}' > services/order-service/benches/pipeline.rs \
 && cargo build --release --locked --bins \
 && rm -rf actors loadgen observability services

# The real sources.
COPY actors actors
COPY loadgen loadgen
COPY observability observability
COPY services services
RUN touch actors/src/lib.rs loadgen/src/*.rs observability/src/lib.rs services/*/src/*.rs \
 && cargo build --release --locked --bins

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home app \
 && mkdir /data && chown app /data
COPY --from=builder /src/target/release/order-service /src/target/release/payment-service /src/target/release/loadgen /usr/local/bin/
USER app
WORKDIR /home/app
ENV BIND_ADDR=0.0.0.0
CMD ["order-service"]
