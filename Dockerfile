# Multi-stage build: compile in the official Rust image, run on distroless (no shell, non-root).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin ghl-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ghl-operator /usr/local/bin/ghl-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ghl-operator"]
CMD ["run"]
