# syntax=docker/dockerfile:1
#
# Sluice in a container: one static binary (`sluice run`, `sluice loadgen`,
# `sluice verify`, ...) on a small Alpine base, running as a non-root user.
#
#   docker build -t sluice .
#   docker run --rm sluice run --help
#
# compose/docker-compose.yml builds this image for the demo stack.
#
# Why Alpine and not distroless: the compose healthchecks probe GET /readyz,
# and Sluice has no subcommand that does that, so the image needs an HTTP
# client; Alpine's BusyBox wget is one, in a ~8 MB base. The binary itself
# is static (CGO_ENABLED=0) and would run unchanged on gcr.io/distroless/static
# or scratch, at the cost of the container healthchecks.

# Keep in step with the go line of go.mod (compose/compose_test.go checks it).
ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

# The builder runs on the build machine's platform and cross-compiles for the
# target one, which costs nothing with CGO off and avoids emulation on
# multi-platform builds.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly

# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

# What `sluice version` reports. .git is not in the build context, so give
# them: docker build --build-arg VERSION=$(git describe --tags --always
# --dirty) --build-arg REVISION=$(git rev-parse HEAD) .
ARG VERSION=dev
ARG REVISION=unknown
ARG BUILD_DATE=

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    export GOOS=$TARGETOS GOARCH=$TARGETARCH && \
    BI=github.com/sluicehq/sluice/internal/buildinfo && \
    DATE=${BUILD_DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)} && \
    go build -trimpath -ldflags="-s -w -X $BI.version=${VERSION} -X $BI.revision=${REVISION} -X $BI.date=${DATE}" -o /out/sluice ./cmd/sluice


FROM alpine:${ALPINE_VERSION}
RUN addgroup -S -g 10001 sluice \
 && adduser -S -D -H -u 10001 -G sluice -s /sbin/nologin sluice
COPY --from=build /out/sluice /usr/local/bin/sluice
USER 10001:10001
# The HTTP collector, /metrics, /healthz and /readyz, once --http-addr
# listens on 0.0.0.0:8080 (the default is loopback only).
EXPOSE 8080
ENTRYPOINT ["sluice"]
CMD ["--help"]
