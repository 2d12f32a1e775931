# Hangar's three binaries in one image; docker-compose.yml picks the command.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --bins \
 && cp target/release/hangar-api target/release/hangar-worker target/release/hangar-scheduler /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 hangar
COPY --from=build /usr/local/bin/hangar-* /usr/local/bin/
# Only the shipped schedules: deploy/ also holds Kubernetes, Prometheus and
# Grafana files (with an example Secret) that have no place in the image.
COPY deploy/schedules.toml /etc/hangar/schedules.toml
USER hangar
