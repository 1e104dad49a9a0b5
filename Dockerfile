# Multi-stage build: compile in the official Rust image, run on distroless (no shell, non-root).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY build.rs ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
# The commit for ghl_operator_build_info (no .git in the build context).
ARG GHL_OPERATOR_COMMIT=unknown
ENV GHL_OPERATOR_COMMIT=$GHL_OPERATOR_COMMIT
RUN cargo build --release --locked --bin ghl-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ghl-operator /usr/local/bin/ghl-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ghl-operator"]
CMD ["run"]
