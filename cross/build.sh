#!/bin/bash
# Release builds of wallflower-nvr for ARM: cross/build.sh [TARGET...]
# (default: aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf).
# Installs what is missing (Debian's cross compilers and qemu-user-static, the rustup targets),
# then builds with cross/config.toml. armv7 gets cross/ntex-net-armv7.patch (see its header).
# Prints each binary's path and size.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

missing=()
for t in "${targets[@]}"; do
    case "$t" in
        aarch64-unknown-linux-gnu) pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
        armv7-unknown-linux-gnueabihf) pkgs=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
        *) echo "cross/build.sh: unknown target $t" >&2; exit 2 ;;
    esac
    for p in "${pkgs[@]}" qemu-user-static patch; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "cross/build.sh: installing ${missing[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done

for t in "${targets[@]}"; do
    extra=()
    if [ "$t" = armv7-unknown-linux-gnueabihf ]; then
        ver=$(awk '/^name = "ntex-net"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
        cargo fetch --locked >/dev/null
        src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "ntex-net-$ver" | head -1)
        [ -n "$src" ] || { echo "cross/build.sh: ntex-net $ver is not in the cargo registry" >&2; exit 1; }
        dst=target/cross/ntex-net-$ver
        # Made again only when the patch changes, so cargo does not rebuild it every time.
        stamp=$(sha256sum cross/ntex-net-armv7.patch | cut -c1-16)
        if [ "$(cat "$dst/.wallflower-patch" 2>/dev/null)" != "$stamp" ]; then
            rm -rf "$dst" && mkdir -p target/cross && cp -r "$src" "$dst"
            patch -s -p1 -d "$dst" <cross/ntex-net-armv7.patch
            echo "$stamp" >"$dst/.wallflower-patch"
        fi
        extra=(--config "patch.crates-io.ntex-net.path=\"$dst\"")
        # The patch changes where ntex-net comes from, and with it Cargo.lock: keep the
        # committed one as it is.
        cp Cargo.lock target/cross/Cargo.lock.keep
        trap 'cp target/cross/Cargo.lock.keep Cargo.lock' EXIT
        cargo --config cross/config.toml "${extra[@]}" build --release --target "$t"
        cp target/cross/Cargo.lock.keep Cargo.lock
        trap - EXIT
    else
        cargo --config cross/config.toml build --release --locked --target "$t"
    fi
    bin=target/$t/release/wallflower-nvr
    echo "$bin $(stat -c %s "$bin") bytes"
done
