# wafcanary's container image: a static binary on a minimal base, run as a
# non-root user, with state_dir as a volume. Build and run:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t wafcanary .
#   docker run -d --name wafcanary -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -v wafcanary-state:/var/lib/wafcanary \
#     -e WAFCANARY_UPSTREAM=http://app:8081 -e WAFCANARY_ADMIN_TOKEN=$(openssl rand -hex 24) \
#     wafcanary
#
# The build stage's `go build` line is the one deploy/deploy_test.go runs
# in CI (no registry is reachable there to pull the base images).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wafcanary ./cmd/wafcanary
# The volume's directory, owned by the image's user: a named volume takes
# the ownership of the directory it is mounted on.
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wafcanary /usr/local/bin/wafcanary
COPY configs/wafcanary.yaml /etc/wafcanary/wafcanary.yaml
COPY --from=build --chown=65532:65532 /out/state /var/lib/wafcanary
# In a container the listeners face the container's network; the admin
# listener then needs a token (WAFCANARY_ADMIN_TOKEN), and should be
# published on the host's loopback only, as above.
ENV WAFCANARY_LISTEN=0.0.0.0:8080 \
    WAFCANARY_ADMIN_LISTEN=0.0.0.0:9090 \
    WAFCANARY_STATE_DIR=/var/lib/wafcanary
USER nonroot:nonroot
VOLUME ["/var/lib/wafcanary"]
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/wafcanary"]
CMD ["serve", "--config", "/etc/wafcanary/wafcanary.yaml"]
