# syntax=docker/dockerfile:1

# Build a static binary: the embedded SQLite driver is pure Go, so no cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X smartmeters/buildinfo.version=${VERSION}" -o /out/smartmeters . \
 && mkdir -p /out/data

# The final image holds the binary and CA certificates, and runs as nobody.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smartmeters /usr/local/bin/smartmeters
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/smartmeters
WORKDIR /var/lib/smartmeters
USER nonroot:nonroot
EXPOSE 8080 8081
ENV SMARTMETERS_LISTEN=:8080 \
    SMARTMETERS_ADMIN_LISTEN=:8081 \
    SMARTMETERS_DATABASE_URL=sqlite:/var/lib/smartmeters/smartmeters.db
# The image has no shell or curl: the binary probes its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["smartmeters", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["smartmeters"]
CMD ["serve"]
