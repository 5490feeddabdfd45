# syntax=docker/dockerfile:1
# FleetPilot Gateway: a static binary on distroless, running as non-root.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a code change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/gateway ./cmd/gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /gateway
USER nonroot:nonroot
# The Go heap's soft limit, about 86 % of the 256 MiB the deploy guide gives the
# container: near it the collector works harder instead of letting garbage
# grow the process into an OOM kill; the rest is for the binary's own pages.
# Deploying with another --memory? Set GOMEMLIMIT to match (docs/deploy.md).
ENV GOMEMLIMIT=220MiB
# Cloud Run sets PORT; 8080 is the default.
EXPOSE 8080
ENTRYPOINT ["/gateway"]
