# syntax=docker/dockerfile:1.7
# chat-web: build with BuildKit from the repository root:
#   docker build -f deploy/web.Dockerfile -t chat-web .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The registry, git checkouts and target/ live in BuildKit caches, so a
# rebuild after a source change only recompiles our crates. target/ is a
# cache mount, so the binary is copied out of it within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=chat-target,sharing=locked \
    cargo build --release --locked -p chat-web \
 && install -m 0755 target/release/chat-web /usr/local/bin/chat-web

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin chat
COPY --from=builder /usr/local/bin/chat-web /usr/local/bin/chat-web
COPY deploy/docker/healthcheck.sh /usr/local/bin/healthcheck
# Templates are compiled into the binary (askama); the browser assets are
# served from STATIC_DIR at run time.
WORKDIR /app
COPY static /app/static
ENV WEB_ADDR=0.0.0.0:8080 \
    STATIC_DIR=/app/static \
    LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "WEB_ADDR", "8080", "/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chat-web"]
