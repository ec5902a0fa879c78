# syncnet in a container: a scratch image holding one static binary.
#
# Build the binary on the host first (no Rust toolchain inside the image
# build, no registry needed), then the image:
#
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --target x86_64-unknown-linux-gnu \
#     && strip target/x86_64-unknown-linux-gnu/release/syncnet
#   buildah bud -t syncnet:latest .        # or: docker build -t syncnet:latest .
#
# (.dockerignore sends only that binary to the builder.) README, "Container
# image", has the size and how to push it; .ci/image-check.sh runs it.
#
# No shell in the image: health checks go through the orchestrator's HTTP
# probes on the admin endpoint (/healthz, /readyz on port 9464).
FROM scratch
COPY target/x86_64-unknown-linux-gnu/release/syncnet /syncnet
USER 65532:65532
EXPOSE 3000 9464
ENTRYPOINT ["/syncnet"]
CMD ["serve", "--listen", "0.0.0.0:3000", "--admin", "0.0.0.0:9464"]
