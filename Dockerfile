# syntax=docker/dockerfile:1
#
# Multi-stage build: a static troupe binary on a minimal, non-root image.
#
#   docker build -t troupe .
#   docker run --rm -p 7777:7777 -e TROUPE_API_KEYS=sk-admin-0123456789abcdef=admin \
#       -v troupe-data:/var/lib/troupe troupe
#
# The image listens on 0.0.0.0:7777, so the server refuses to start without API
# keys (TROUPE_API_KEYS or TROUPE_API_KEYS_FILE); for a throwaway local run use
# -e TROUPE_INSECURE=1 instead. Mount your own specs over /etc/troupe/agents.d.
# docker-compose.yml runs it with PostgreSQL. cmd/troupe/compose_test.go checks
# the references in this file (stages, user, paths, port).

# ---- build ------------------------------------------------------------------
# Runs on the build machine's platform and cross-compiles for the target one
# (docker buildx build --platform linux/amd64,linux/arm64 .), which is cheap for
# a pure-Go binary. Cache mounts keep the module and build caches between builds.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

# Sanity step: the bundled specs must load without errors, or the image would
# start with a broken folder. `go run` builds for the build machine, so this
# also works when cross-compiling; -trimpath shares the compiled packages with
# the build below.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go run -trimpath ./cmd/troupe check agents.d

ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/troupe ./cmd/troupe \
 && mkdir -p /out/state

# ---- runtime ----------------------------------------------------------------
# distroless/static: CA certificates, tzdata and /etc/passwd, no shell, no
# package manager. The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/troupe /usr/local/bin/troupe
# The specs that passed `troupe check` above, not a fresh copy of the context.
COPY --from=build /src/agents.d /etc/troupe/agents.d
# The state directory (the default SQLite database lives here) must be writable
# by the non-root user; WORKDIR alone would create it owned by root.
COPY --from=build --chown=65532:65532 /out/state /var/lib/troupe
WORKDIR /var/lib/troupe

ENV TROUPE_ADDR=0.0.0.0:7777 \
    TROUPE_DIR=/etc/troupe/agents.d \
    TROUPE_DB=/var/lib/troupe/troupe.db
VOLUME ["/var/lib/troupe"]
EXPOSE 7777

# No HEALTHCHECK: a Dockerfile HEALTHCHECK runs a command inside the container,
# and distroless has no shell, curl or wget, and troupe has no probe subcommand.
# Probe from outside instead, without auth: GET /health is liveness (200 while
# the process serves HTTP), GET /health/ready is readiness (503 while the
# database cannot serve runs or the server shuts down), e.g. Kubernetes httpGet
# liveness and readiness probes or a load balancer health check on /health/ready.

# Numeric so that Kubernetes' runAsNonRoot can verify it (65532 = nonroot).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/troupe"]
CMD ["serve"]
