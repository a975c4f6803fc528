#!/usr/bin/env bash
# Builds Weir's container image without a Docker daemon and without pulling anything: one image,
# `weir`, holding `weir-broker` and `weir-operator` on PATH, assembled FROM scratch out of the
# binaries cargo built here, the shared libraries they load (glibc's, taken from this machine),
# /etc/passwd and /etc/group naming the non-root user 65532, and /tmp. The Dockerfile at the
# repository root builds the same root filesystem (it runs `rootfs` below in its builder stage).
#
#   scripts/build-images.sh [OPTIONS]        build the image (as root: umoci writes file owners)
#     --profile release|debug   the cargo profile whose binaries go in (default release;
#                               debug binaries are stripped too, CI uses them to save a build)
#     --no-build                package the binaries as they are; by default `cargo build
#                               --locked` runs first (a no-op when they are up to date), so
#                               the image is what the checked-out tree builds
#     --name NAME               image name (default weir)
#     --tag TAG                 an extra tag, repeatable; the image is always tagged with the
#                               version the binaries print (0.1.0) and the short git commit
#     --out DIR                 the OCI image layout to write (default target/images/oci);
#                               replaced as a whole on every build
#     --archive FILE            also write a docker-archive tarball, for `kind load
#                               image-archive`, `k3d image import`, `minikube image load`,
#                               `docker load`, `podman load`
#     --push REGISTRY           also push every tag to REGISTRY (HOST:PORT, plain HTTP, such
#                               as a registry on loopback: 127.0.0.1:5000)
#     --binary NAME             put these binaries of the profile in instead of weir-broker and
#                               weir-operator (repeatable; for test images such as the
#                               real-node test's client: build them first, cargo is not run)
#   scripts/build-images.sh rootfs BIN_DIR DIR
#                             only assemble the root filesystem from BIN_DIR/weir-broker and
#                             BIN_DIR/weir-operator into DIR (no umoci; the Dockerfile's step)
#   scripts/build-images.sh install-tools
#                             install umoci and skopeo from Debian if missing (idempotent)
#
# Nothing is cached: every build copies and strips the binaries again, so the image always
# holds the ones given. Prints the image's tags, digest and size at the end.
#
# Needs: bash, coreutils, ldd (libc-bin), strip (binutils), git (for the commit label), and for
# the image umoci, and skopeo for --archive/--push (`install-tools`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The image's non-root user and group, also in operator/src/build/statefulset.rs (BROKER_UID)
# and the chart's securityContext.
IMAGE_UID=65532
# Where the broker keeps its data when run with its default ./weir-data (the image's working
# directory, owned by the non-root user); the operator mounts a volume elsewhere.
WORK_DIR=/var/lib/weir
APT_PACKAGES=(umoci skopeo)

log() { printf '[build-images] %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

usage() {
    sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

retry() {
    local attempt
    for attempt in 1 2 3; do
        if "$@"; then
            return 0
        fi
        log "attempt $attempt of '$*' failed"
        sleep $((attempt * 5))
    done
    return 1
}

install_tools() {
    local missing=() package
    for package in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt: ${APT_PACKAGES[*]} already installed"
        return 0
    fi
    log "apt: installing ${missing[*]}"
    retry as_root apt-get update -qq
    retry as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# copy_library FILE ROOTFS: copies FILE (following symlinks) to the same path under
# ROOTFS, and the Debian copyright file of the package that owns it (glibc and libgcc are
# LGPL/GPL with exceptions: their notices travel with them).
copy_library() {
    local file="$1" rootfs="$2"
    mkdir -p "$rootfs$(dirname "$file")"
    cp -L "$file" "$rootfs$file"
    chmod 0755 "$rootfs$file"
    if command -v dpkg-query >/dev/null 2>&1; then
        local package
        package="$(dpkg-query -S "$file" 2>/dev/null | head -n1 | cut -d: -f1)" || true
        if [ -z "$package" ]; then
            package="$(dpkg-query -S "$(readlink -f "$file")" 2>/dev/null | head -n1 | cut -d: -f1)" || true
        fi
        if [ -n "$package" ] && [ -f "/usr/share/doc/$package/copyright" ]; then
            mkdir -p "$rootfs/usr/share/doc/$package"
            cp "/usr/share/doc/$package/copyright" "$rootfs/usr/share/doc/$package/copyright"
        fi
    fi
}

# libraries BINARY: the absolute paths of every shared object BINARY loads (its ldd closure,
# the dynamic loader included). Fails on a library ldd cannot find.
libraries() {
    local binary="$1" output
    output="$(ldd "$binary")" || die "ldd $binary failed: is it a dynamically linked ELF binary?"
    if grep -q "not found" <<<"$output"; then
        die "ldd $binary: $(grep "not found" <<<"$output" | tr -s ' \t' ' ')"
    fi
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2
    # (0x...)"; the vDSO ("linux-vdso.so.1 (0x...)") is the kernel's, not a file.
    sed -nE 's|^\s*\S+ => (/\S+) \(0x[0-9a-f]+\)$|\1|p; s|^\s*(/\S+) \(0x[0-9a-f]+\)$|\1|p' <<<"$output"
}

# assemble_rootfs BIN_DIR ROOTFS [BINARY...]: the image's whole file system, with BINARY...
# of BIN_DIR (default weir-broker and weir-operator).
assemble_rootfs() {
    local bin_dir="$1" rootfs="$2" binary library
    shift 2
    local binaries=("$@")
    [ "${#binaries[@]}" -gt 0 ] || binaries=(weir-broker weir-operator)
    [ ! -e "$rootfs" ] || [ -z "$(ls -A "$rootfs")" ] || die "$rootfs is not empty"
    command -v strip >/dev/null 2>&1 || die "strip (binutils) is not on PATH"
    mkdir -p "$rootfs"/{usr/local/bin,etc,tmp,"${WORK_DIR#/}"}
    chmod 0755 "$rootfs" "$rootfs"/{usr,usr/local,usr/local/bin,etc}
    chmod 1777 "$rootfs/tmp"
    for binary in "${binaries[@]}"; do
        [ -x "$bin_dir/$binary" ] || die "$bin_dir/$binary does not exist: build it first (cargo build -p weir-broker -p weir-operator)"
        strip --strip-all -o "$rootfs/usr/local/bin/$binary" "$bin_dir/$binary"
        chmod 0755 "$rootfs/usr/local/bin/$binary"
    done
    for binary in "${binaries[@]}"; do
        libraries "$bin_dir/$binary"
    done | sort -u | while read -r library; do
        copy_library "$library" "$rootfs"
    done
    cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
weir:x:$IMAGE_UID:$IMAGE_UID:weir:$WORK_DIR:/sbin/nologin
EOF
    cat >"$rootfs/etc/group" <<EOF
root:x:0:
weir:x:$IMAGE_UID:
EOF
    # glibc (2.34 and later) has the files and dns lookups built in; this names their order,
    # as Kubernetes' /etc/hosts and /etc/resolv.conf expect.
    cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group:  files
hosts:  files dns
EOF
    chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}
    if [ "$(id -u)" -eq 0 ]; then
        chown "$IMAGE_UID:$IMAGE_UID" "$rootfs$WORK_DIR"
    else
        log "not root: $WORK_DIR in the image stays owned by $(id -u) (the Dockerfile chowns it)"
    fi
}

# The version the broker binary reports ("weir-broker 0.1.0").
binary_version() {
    local version
    version="$("$1" --version | awk '{print $2}')"
    [ -n "$version" ] || die "$1 --version printed no version"
    printf '%s' "$version"
}

build_image() {
    local profile=release build=1 name=weir out="$ROOT/target/images/oci" archive="" push=""
    local extra_tags=() binaries=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --profile) profile="${2:?--profile needs release or debug}"; shift 2 ;;
            --no-build) build=0; shift ;;
            --name) name="${2:?--name needs a name}"; shift 2 ;;
            --tag) extra_tags+=("${2:?--tag needs a tag}"); shift 2 ;;
            --out) out="${2:?--out needs a directory}"; shift 2 ;;
            --archive) archive="${2:?--archive needs a file}"; shift 2 ;;
            --push) push="${2:?--push needs HOST:PORT}"; shift 2 ;;
            --binary) binaries+=("${2:?--binary needs a name}"); shift 2 ;;
            -h | --help) usage ;;
            *) log "unknown option $1"; usage ;;
        esac
    done
    case "$profile" in
        release | debug) ;;
        *) die "--profile must be release or debug, not $profile" ;;
    esac
    [ "$(id -u)" -eq 0 ] || die "run as root: the image's files carry owners (root, and $IMAGE_UID for $WORK_DIR); without root, build the Dockerfile with podman"
    command -v umoci >/dev/null 2>&1 || die "umoci is not installed: run $0 install-tools"
    if [ -n "$archive$push" ]; then
        command -v skopeo >/dev/null 2>&1 || die "skopeo is not installed: run $0 install-tools"
    fi

    local started=$SECONDS
    if [ "${#binaries[@]}" -gt 0 ]; then
        build=0
    fi
    if [ "$build" -eq 1 ]; then
        local profile_flag=()
        [ "$profile" = release ] && profile_flag=(--release)
        log "cargo build --locked ${profile_flag[*]} -p weir-broker -p weir-operator --bins"
        (cd "$ROOT" && cargo build --locked "${profile_flag[@]}" -p weir-broker -p weir-operator --bins)
    fi
    local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
    local bin_dir="$target_dir/$profile"

    local version revision short dirty=""
    if [ "${#binaries[@]}" -eq 0 ]; then
        version="$(binary_version "$bin_dir/weir-broker")"
        [ "$(binary_version "$bin_dir/weir-operator")" = "$version" ] ||
            die "weir-broker and weir-operator in $bin_dir report different versions: rebuild both"
    else
        # A test image: the workspace's version.
        version="$(sed -nE 's/^version = "(.*)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)"
    fi
    revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)" ||
        die "$ROOT is not a git checkout: the image is labelled with its commit"
    short="$(git -C "$ROOT" rev-parse --short=12 HEAD)"
    if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        # The binaries may hold changes the commit does not: say so in the tag and a label.
        dirty="-dirty"
        log "the work tree has uncommitted changes: tagging $short$dirty"
    fi
    local tags=("$version" "$short$dirty" "${extra_tags[@]}")

    mkdir -p "$(dirname "$out")"
    # Global, for the EXIT trap.
    work="$(mktemp -d "$(dirname "$out")/.build-images.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    assemble_rootfs "$bin_dir" "$work/rootfs" "${binaries[@]}"

    local layout="$work/oci" image="$work/oci:${tags[0]}"
    umoci init --layout "$layout"
    umoci new --image "$image"
    umoci unpack --image "$image" "$work/bundle" >/dev/null
    cp -a "$work/rootfs/." "$work/bundle/rootfs/"
    umoci repack --image "$image" --history.created_by "scripts/build-images.sh (FROM scratch)" \
        "$work/bundle"
    local labels=(
        "org.opencontainers.image.title=$name"
        "org.opencontainers.image.description=Weir, a Kafka-compatible streaming platform: weir-broker and weir-operator"
        "org.opencontainers.image.version=$version"
        "org.opencontainers.image.revision=$revision"
        "org.opencontainers.image.licenses=Apache-2.0"
        "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        "dev.weir.build.profile=$profile"
        "dev.weir.build.tree=$([ -n "$dirty" ] && echo modified || echo clean)"
    )
    if [ -n "${WEIR_IMAGE_SOURCE:-}" ]; then
        labels+=("org.opencontainers.image.source=$WEIR_IMAGE_SOURCE")
    fi
    local config=(
        --os linux
        --architecture "$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
        --config.user "$IMAGE_UID:$IMAGE_UID"
        --config.env "PATH=/usr/local/bin"
        --config.workingdir "$WORK_DIR"
        --config.cmd "${binaries[0]:-weir-broker}"
        --config.stopsignal SIGTERM
        --config.exposedports 9092/tcp
        --config.exposedports 9093/tcp
        --config.exposedports 9644/tcp
        --config.exposedports 8080/tcp
    )
    local label
    for label in "${labels[@]}"; do
        config+=(--config.label "$label")
    done
    umoci config --image "$image" "${config[@]}" \
        --history.created_by "scripts/build-images.sh: user, labels, command"
    local tag
    for tag in "${tags[@]:1}"; do
        umoci tag --image "$image" "$tag"
    done
    umoci gc --layout "$layout"

    # Replace the previous layout as a whole (never merge into it): only an OCI layout, or a
    # path that does not exist yet, is replaced.
    if [ -e "$out" ]; then
        [ -f "$out/oci-layout" ] || die "$out exists and is not an OCI image layout: not replacing it"
        rm -rf "$out"
    fi
    mv "$layout" "$out"
    chmod -R a+rX "$out"

    if [ -n "$archive" ]; then
        local additional=()
        for tag in "${tags[@]:1}"; do
            additional+=(--additional-tag "$name:$tag")
        done
        rm -f "$archive"
        skopeo --insecure-policy copy --quiet "${additional[@]}" \
            "oci:$out:${tags[0]}" "docker-archive:$archive:$name:${tags[0]}"
        log "docker archive: $archive ($(du -h "$archive" | cut -f1))"
    fi
    if [ -n "$push" ]; then
        for tag in "${tags[@]}"; do
            log "pushing $push/$name:$tag"
            skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
                "oci:$out:$tag" "docker://$push/$name:$tag"
        done
    fi

    local manifest_digest size
    manifest_digest="$(sed -nE 's/.*"digest":"(sha256:[0-9a-f]+)".*/\1/p' "$out/index.json" | head -n1)"
    # The image's size as a registry stores it: the compressed layer plus config and manifest.
    size="$(du -cb "$out"/blobs/sha256/* | tail -n1 | cut -f1)"
    log "built $name:{$(IFS=,; echo "${tags[*]}")} ($profile binaries) in $((SECONDS - started))s"
    log "layout $out, manifest $manifest_digest, $((size / 1024)) KiB compressed, $(du -sb "$work/rootfs" | cut -f1 | awk '{printf "%d KiB", $1/1024}') unpacked"
}

case "${1:-}" in
    install-tools)
        install_tools
        ;;
    rootfs)
        [ $# -eq 3 ] || usage
        assemble_rootfs "$2" "$3"
        ;;
    -h | --help)
        usage
        ;;
    *)
        build_image "$@"
        ;;
esac
