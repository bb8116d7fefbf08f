# syntax=docker/dockerfile:1.7
# chat-gateway: build with BuildKit from the repository root:
#   docker build -f deploy/gateway.Dockerfile -t chat-gateway .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The registry, git checkouts and target/ live in BuildKit caches, so a
# rebuild after a source change only recompiles our crates. target/ is a
# cache mount, so the binary is copied out of it within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=chat-target,sharing=locked \
    cargo build --release --locked -p chat-gateway \
 && install -m 0755 target/release/chat-gateway /usr/local/bin/chat-gateway

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin chat
COPY --from=builder /usr/local/bin/chat-gateway /usr/local/bin/chat-gateway
COPY deploy/docker/healthcheck.sh /usr/local/bin/healthcheck
WORKDIR /app
ENV GATEWAY_ADDR=0.0.0.0:8081 \
    LOG_FORMAT=json
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "GATEWAY_ADDR", "8081", "/healthz"]
# SIGTERM starts the drain: clients are told to reconnect elsewhere and the
# process exits within DRAIN_TIMEOUT_S (25 s); give it `stop_grace_period`
# / terminationGracePeriodSeconds of more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chat-gateway"]
