# Multi-stage build: a static troupe binary on a minimal, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/troupe ./cmd/troupe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/troupe /usr/local/bin/troupe
COPY agents.d /etc/troupe/agents.d
WORKDIR /var/lib/troupe
ENV TROUPE_DIR=/etc/troupe/agents.d
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/troupe"]
CMD ["serve"]
