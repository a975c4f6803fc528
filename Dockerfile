# Weir's container image: weir-broker and weir-operator in /usr/local/bin, run as the non-root
# user 65532, no shell, nothing but the two binaries and the glibc libraries they load.
#
#   docker build -t weir:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   podman build -t weir:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# scripts/build-images.sh builds the same image without a Docker daemon or any base image, from
# binaries cargo already built; the builder stage below assembles the root filesystem with that
# script's `rootfs` step, so both images hold the same files. docs/images.md says more.
#
# The image has no ENTRYPOINT: Kubernetes names the binary (`command: ["weir-broker"]` in the
# brokers' StatefulSet, `weir-operator` in the chart), and the process is PID 1 itself. Both
# binaries handle SIGTERM and SIGINT, so `docker stop` and pod deletion shut them down cleanly.

# The builder's Debian release is the one whose glibc goes into the image.
ARG BUILDER_IMAGE=rust:1.95-bookworm

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p weir-broker -p weir-operator --bins \
    && bash scripts/build-images.sh rootfs target/release /rootfs

FROM scratch
# Labels: pass VERSION (the workspace version) and REVISION (the git commit) when building.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=
ARG CREATED=
COPY --from=build /rootfs/ /
# The working directory belongs to the non-root user whatever COPY did with owners.
COPY --from=build --chown=65532:65532 /rootfs/var/lib/weir/ /var/lib/weir/
ENV PATH=/usr/local/bin
WORKDIR /var/lib/weir
USER 65532:65532
# Kafka clients, the internal listener (metadata quorum, admin API), broker metrics, operator
# metrics.
EXPOSE 9092 9093 9644 8080
STOPSIGNAL SIGTERM
LABEL org.opencontainers.image.title="weir" \
      org.opencontainers.image.description="Weir, a Kafka-compatible streaming platform: weir-broker and weir-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.weir.build.profile="release"
CMD ["weir-broker"]
