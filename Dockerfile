# Builds the nexora server from source (used by compose.yaml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin nexora

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 nexora
COPY --from=build /src/target/release/nexora /usr/local/bin/nexora
USER nexora
EXPOSE 8080
ENTRYPOINT ["nexora"]
CMD ["serve"]
