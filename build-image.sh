#!/bin/bash
# Packages and a flashable image of wallflower-nvr, for arm64 and armhf boxes.
#
#   ./build-image.sh debs              .debs for arm64 and armhf
#   ./build-image.sh image             the .debs, then an arm64 Debian image with them
#   ./build-image.sh inject RPIOS.img  the arm64 .deb, ffmpeg and the enabled unit, put into a
#                                      copy of an existing Raspberry Pi OS (arm64) image file
#
# Everything lands in target/image/. Runs as root on Debian (bookworm); installs what it
# needs (Debian's cross compilers, qemu-user-static, mmdebstrap, arch-test, e2fsprogs, fdisk).
#
# No loop devices: the image is a plain file, partitioned with sfdisk and filled with
# `mke2fs -d` at the partition's offset; foreign-architecture steps run through qemu-user via
# binfmt_misc (mounted here if it is not).
#
# The image: Debian bookworm arm64, systemd, systemd-networkd (DHCP on every wired port),
# ffmpeg and wallflower-nvr, its unit enabled. Root's password is "wallflower", to be changed
# at first login. The UI is on port 8080.
set -euo pipefail
cd "$(dirname "$0")"
OUT=target/image
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
VERSION=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
mkdir -p "$OUT"

say() { echo "build-image: $*" >&2; }

need() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

binfmt() {
    need qemu-user-static binfmt-support arch-test
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
    arch-test arm64 >/dev/null || { say "cannot run arm64 programs (arch-test arm64 failed)"; exit 1; }
}

# deb_for ARCH TARGET: builds $OUT/wallflower-nvr_VERSION_ARCH.deb from the release binary.
deb_for() {
    local arch=$1 target=$2
    local stage=$OUT/stage-$arch deb=$OUT/wallflower-nvr_${VERSION}_$arch.deb
    rm -rf "$stage"
    install -D -m 0755 "target/$target/release/wallflower-nvr" "$stage/usr/bin/wallflower-nvr"
    install -D -m 0644 systemd/wallflower-nvr.service "$stage/lib/systemd/system/wallflower-nvr.service"
    install -D -m 0644 config/wallflower-nvr.toml "$stage/etc/wallflower-nvr/config.toml"
    install -D -m 0644 README.md "$stage/usr/share/doc/wallflower-nvr/README.md"
    install -D -m 0644 docs/api.md "$stage/usr/share/doc/wallflower-nvr/docs/api.md"
    install -D -m 0644 docs/config.md "$stage/usr/share/doc/wallflower-nvr/docs/config.md"
    mkdir -p "$stage/DEBIAN"
    cat >"$stage/DEBIAN/control" <<EOF
Package: wallflower-nvr
Version: $VERSION
Architecture: $arch
Maintainer: wallflower-nvr developers <wallflower-nvr@localhost>
Depends: ffmpeg, passwd, systemd
Section: video
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Description: small network video recorder for IP cameras
 Records IP cameras around the clock with one ffmpeg per camera in codec-copy
 mode, keeps an index of every segment, deletes the oldest when the disk runs
 low, and serves a web UI and an HTTP API on port 8080.
EOF
    # Kept on upgrade: the one file users edit.
    echo /etc/wallflower-nvr/config.toml >"$stage/DEBIAN/conffiles"
    cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group wallflower-nvr >/dev/null || groupadd --system wallflower-nvr
    getent passwd wallflower-nvr >/dev/null || useradd --system --gid wallflower-nvr \
        --groups video --home-dir /var/lib/wallflower-nvr --no-create-home \
        --shell /usr/sbin/nologin --comment "wallflower-nvr" wallflower-nvr
    install -d -o wallflower-nvr -g wallflower-nvr -m 0750 /var/lib/wallflower-nvr
    install -d -o wallflower-nvr -g wallflower-nvr -m 0750 /data/recordings
    # The daemon saves its own config (through a temp file and a rename in this folder), and
    # the file holds camera passwords: the folder and the file are its group's, no one else's.
    chown root:wallflower-nvr /etc/wallflower-nvr
    chmod 0770 /etc/wallflower-nvr
    if [ -f /etc/wallflower-nvr/config.toml ]; then
        chgrp wallflower-nvr /etc/wallflower-nvr/config.toml
        chmod 0660 /etc/wallflower-nvr/config.toml
    fi
    # Enabled on first install only: an admin who disabled it keeps it disabled.
    if [ -z "$2" ]; then
        systemctl enable wallflower-nvr.service >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        if systemctl is-enabled --quiet wallflower-nvr.service; then
            systemctl restart wallflower-nvr.service || true
        fi
    fi
fi
EOF
    cat >"$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop wallflower-nvr.service || true
fi
EOF
    cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
case "$1" in
    remove)
        systemctl disable wallflower-nvr.service >/dev/null 2>&1 || true
        [ -d /run/systemd/system ] && systemctl daemon-reload || true
        ;;
    purge)
        # The index is a cache; the recordings in /data/recordings are never removed.
        rm -rf /var/lib/wallflower-nvr
        getent passwd wallflower-nvr >/dev/null && userdel wallflower-nvr || true
        getent group wallflower-nvr >/dev/null && groupdel wallflower-nvr || true
        ;;
esac
EOF
    chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
    rm -rf "$stage"
    say "$deb: $(stat -c %s "$deb") bytes"
}

debs() {
    bash cross/build.sh aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
    deb_for arm64 aarch64-unknown-linux-gnu
    deb_for armhf armv7-unknown-linux-gnueabihf
}

# SSH for those who want it, keys only: password logins are refused, and root's keys are read
# from a file the user puts on the card (see the README). Host keys are made at the first boot,
# never shipped: every box gets its own.
ssh_setup_hook() {
    cat <<'HOOK'
mkdir -p "$1/etc/ssh/sshd_config.d" "$1/etc/systemd/system/ssh.service.d"
printf '%s\n' '# wallflower-nvr: keys only. Put a public key on the card as' \
    '# /boot/firmware/wallflower-authorized_keys (Raspberry Pi OS) or /boot/wallflower-authorized_keys.' \
    'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin prohibit-password' \
    'AuthorizedKeysFile .ssh/authorized_keys /boot/firmware/wallflower-authorized_keys /boot/wallflower-authorized_keys' \
    >"$1/etc/ssh/sshd_config.d/wallflower-nvr.conf"
printf '%s\n' '[Service]' 'ExecStartPre=' 'ExecStartPre=/usr/bin/ssh-keygen -A' 'ExecStartPre=/usr/sbin/sshd -t' \
    >"$1/etc/systemd/system/ssh.service.d/host-keys.conf"
rm -f "$1"/etc/ssh/ssh_host_*
HOOK
}

# rootfs DIR: an arm64 Debian root filesystem with ffmpeg, systemd and our .deb installed.
rootfs() {
    local dir=$1 deb
    deb=$(realpath "$OUT/wallflower-nvr_${VERSION}_arm64.deb")
    need mmdebstrap
    binfmt
    rm -rf "$dir"
    # initramfs: only what a virtual or real box needs to find its root filesystem, so that
    # mkinitramfs (which runs emulated) is quick.
    mmdebstrap --architectures=arm64 --variant=minbase \
        --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
        --include=systemd-sysv,udev,kmod,iproute2,netbase,ca-certificates,gpgv,linux-image-arm64,initramfs-tools,ffmpeg,nano,openssh-server,"$deb" \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
        --setup-hook='printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/wallflower-nvr"' \
        --setup-hook='printf "virtio_pci\nvirtio_blk\nvirtio_net\nsdhci_iproc\nmmc_block\next4\n" >"$1/usr/share/initramfs-tools/modules.d/wallflower-nvr.conf"' \
        --customize-hook='echo wallflower-nvr >"$1/etc/hostname"' \
        --customize-hook='printf "LABEL=wallflower-root / ext4 defaults,noatime 0 1\n" >"$1/etc/fstab"' \
        --customize-hook='printf "[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n" >"$1/etc/systemd/network/20-wired.network"' \
        --customize-hook='chroot "$1" systemctl enable systemd-networkd.service >/dev/null 2>&1' \
        --customize-hook='echo root:wallflower | chroot "$1" chpasswd && chroot "$1" chage -d 0 root' \
        --customize-hook="$(ssh_setup_hook)" \
        --customize-hook='chroot "$1" systemctl is-enabled wallflower-nvr.service' \
        "$SUITE" "$dir" "$MIRROR"
}

# image ROOTFS IMG: a partitioned raw image (one ext4 partition labelled wallflower-root).
image_from() {
    local dir=$1 img=$2
    need e2fsprogs fdisk
    local used_mb size_mb
    used_mb=$(du -sm "$dir" | cut -f1)
    size_mb=$(((used_mb * 13 / 10 + 512 + 3) / 4 * 4))
    rm -f "$img"
    truncate -s "$((size_mb + 1))M" "$img"
    echo 'label: dos
start=1MiB, type=83, bootable' | sfdisk --quiet "$img"
    mke2fs -q -F -t ext4 -L wallflower-root -d "$dir" -E offset=1048576 "$img" "${size_mb}M"
    say "$img: $(stat -c %s "$img") bytes ($size_mb MiB root filesystem, $used_mb MiB used)"
}

image() {
    debs
    local dir=$OUT/rootfs-arm64
    rootfs "$dir"
    # For booting in qemu without a boot loader (and for boards that load them from /boot).
    cp "$(ls "$dir"/boot/vmlinuz-* | sort -V | tail -1)" "$OUT/vmlinuz-arm64"
    cp "$(ls "$dir"/boot/initrd.img-* | sort -V | tail -1)" "$OUT/initrd-arm64"
    image_from "$dir" "$OUT/wallflower-nvr-arm64.img"
    rm -rf "$dir"
}

# inject RPIOS.img: the same software put into a Raspberry Pi OS image (its last Linux
# partition is the root filesystem). The partition is copied out, unpacked, given ffmpeg and
# our .deb in a chroot (emulated, with the image's own apt sources), and rebuilt with the same
# UUID and label, 1 GiB larger (ffmpeg needs room; Raspberry Pi OS grows its root filesystem
# to the card at first boot anyway). The image file grows by as much.
inject() {
    local src=$1
    [ -f "$src" ] || { say "no such image: $src"; exit 1; }
    [ -f "$OUT/wallflower-nvr_${VERSION}_arm64.deb" ] || debs
    need e2fsprogs fdisk
    binfmt
    local img=$OUT/$(basename "${src%.img}")-wallflower-nvr.img
    cp --sparse=always "$src" "$img"
    local line start sectors num grow=$((1024 * 2048))
    line=$(sfdisk --dump "$img" | grep -E 'type=83|type=0FC63DAF' | tail -1)
    start=$(sed -E 's/.*start= *([0-9]+).*/\1/' <<<"$line")
    sectors=$(sed -E 's/.*size= *([0-9]+).*/\1/' <<<"$line")
    num=$(sed -E 's/^[^ ]*[^0-9]([0-9]+) *:.*/\1/' <<<"$line")
    [ -n "$start" ] && [ -n "$sectors" ] && [ -n "$num" ] || { say "no Linux partition in $src"; exit 1; }
    [ $((start + sectors)) -ge $(($(stat -c %s "$img") / 512 - 2048)) ] \
        || { say "the root partition is not the last one; cannot grow it"; exit 1; }
    local part=$OUT/inject-root.ext4 dir=$OUT/inject-root
    dd if="$img" of="$part" bs=512 skip="$start" count="$sectors" conv=sparse status=none
    local uuid label
    uuid=$(dumpe2fs -h "$part" 2>/dev/null | awk -F': *' '/^Filesystem UUID/ {print $2}')
    label=$(dumpe2fs -h "$part" 2>/dev/null | awk -F': *' '/^Filesystem volume name/ {print $2}')
    rm -rf "$dir" && mkdir -p "$dir"
    debugfs -R "rdump / $dir" "$part" >/dev/null 2>&1
    cp "$OUT/wallflower-nvr_${VERSION}_arm64.deb" "$dir/tmp/"
    cp /etc/resolv.conf "$dir/etc/resolv.conf.wallflower" 2>/dev/null || true
    # debugfs cannot make device nodes, and apt needs /dev/null.
    mount --bind /proc "$dir/proc"
    mount --bind /dev "$dir/dev"
    trap 'umount "'"$dir"'/proc" "'"$dir"'/dev" 2>/dev/null || true' EXIT
    chroot "$dir" sh -ec 'mv /etc/resolv.conf /etc/resolv.conf.orig 2>/dev/null || true; mv /etc/resolv.conf.wallflower /etc/resolv.conf
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg /tmp/wallflower-nvr_*.deb
        rm -f /tmp/wallflower-nvr_*.deb /etc/resolv.conf; mv /etc/resolv.conf.orig /etc/resolv.conf 2>/dev/null || true; apt-get clean'
    umount "$dir/proc" "$dir/dev"
    trap - EXIT
    sh -c "$(ssh_setup_hook)" sh "$dir"
    chroot "$dir" systemctl is-enabled wallflower-nvr.service >/dev/null
    sectors=$((sectors + grow))
    truncate -s "$(((start + sectors) * 512 + 1048576))" "$img"
    echo ", $sectors" | sfdisk --quiet -N "$num" "$img"
    rm -f "$part"
    mke2fs -q -F -t ext4 ${label:+-L "$label"} ${uuid:+-U "$uuid"} -d "$dir" "$part" "$((sectors / 2))k"
    # The old partition's bytes go first: a sparse copy skips zeros, and the new filesystem
    # must not find old data where it left zeros.
    fallocate --punch-hole --offset "$((start * 512))" --length "$((sectors * 512))" "$img"
    dd if="$part" of="$img" bs=512 seek="$start" conv=notrunc,sparse status=none
    rm -rf "$dir" "$part"
    say "$img: Raspberry Pi OS with wallflower-nvr $VERSION"
}

case "${1:-image}" in
    debs) debs ;;
    image) image ;;
    inject) inject "${2:?usage: build-image.sh inject RPIOS.img}" ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
esac
