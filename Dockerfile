# One image, every binary; the command picks the service (see docker-compose.yml, deploy/).
# Three stages with cargo-chef so dependencies are cached apart from our code.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.73
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# The commit in `wms_build_info{git_sha}`: docker build --build-arg WMS_GIT_SHA=$(git rev-parse --short HEAD) .
ARG WMS_GIT_SHA=unknown
ENV WMS_GIT_SHA=${WMS_GIT_SHA}
RUN cargo build --release --workspace --bins \
 && mkdir /out \
 && for bin in ingress enrich reserve ship notify-webflow warehouse reconcile prune webflow-sim wmsctl; do cp "target/release/$bin" /out/; done

# Distroless: no shell, no package manager; runs as the built-in non-root user (65532).
# Health checks use each binary's `healthcheck <url>` subcommand (ingress) or the
# /readyz endpoints from Kubernetes probes.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/ /usr/local/bin/
# No configuration is baked in (config/ holds local tokens): docker-compose mounts
# config/docker.toml, Kubernetes the ConfigMap; with neither, the built-in defaults apply and
# the profile is production.
USER nonroot:nonroot
ENV WMS__TELEMETRY__LOG_FORMAT=json
EXPOSE 8080 8081 9000
ENTRYPOINT ["/usr/local/bin/ingress"]
