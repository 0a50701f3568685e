#!/bin/bash
# Boot test of the flashable arm64 image: builds it (./build-image.sh image, unless
# SKIP_BUILD=1), boots it in qemu-system-aarch64 under full emulation (-M virt, user networking
# with a hostfwd port), and from the host:
# - waits for GET /api/health to answer, and prints how long that took from qemu's start;
# - checks that a first boot is in setup mode (GET /api/setup) and the API is closed;
# - completes the setup over HTTP with the code the box printed, adds a camera (the GStreamer
#   RTSP test camera on the host, reached through qemu's user network at 10.0.2.2) with
#   POST /api/streams, and waits for its first recorded segment: the daemon saved its own
#   config, applied it and recorded; prints how long that took from qemu's start;
# - checks, from the guest's own `systemctl show` (run at boot via systemd.run= and written to
#   the serial console), that the unit is active with its watchdog armed and being fed.
# The image itself is not changed (-snapshot).
#
# Debian's qemu-system-arm conflicts with the newer qemu-utils on these machines, so its .debs
# (and the libraries it needs) are unpacked into target/qemu/ instead of installed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/image
[ -n "${SKIP_BUILD:-}" ] || ./build-image.sh image
# IMAGE= boots another image with the same kernel (one made by `build-image.sh inject`, say).
IMAGE=${IMAGE:-$OUT/wallflower-nvr-arm64.img}
for f in "$IMAGE" "$OUT/vmlinuz-arm64" "$OUT/initrd-arm64"; do
    [ -f "$f" ] || { echo "image-test: no $f" >&2; exit 1; }
done

Q=target/qemu
if [ ! -x "$Q/root/usr/bin/qemu-system-aarch64" ]; then
    mkdir -p "$Q/debs"
    (cd "$Q/debs" && apt-get download -q qemu-system-arm qemu-system-data libfdt1 libcapstone4 \
        libpmem1 librdmacm1 libibverbs1 libslirp0 libvdeplug2 libndctl6 libdaxctl1 libnl-3-200 \
        libnl-route-3-200 2>/dev/null)
    for d in "$Q"/debs/*.deb; do dpkg -x "$d" "$Q/root"; done
fi
export LD_LIBRARY_PATH=$PWD/$Q/root/usr/lib/x86_64-linux-gnu:$PWD/$Q/root/lib/x86_64-linux-gnu
qemu=$Q/root/usr/bin/qemu-system-aarch64
"$qemu" --version | head -1

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
console=$OUT/console.log
rm -f "$console"
# Run in the guest once the unit is up: its state and watchdog, to the serial console. It runs
# as its own transient service, so the boot does not wait for it; systemd.run= alone would boot
# into kernel-command-line.target only, hence systemd.unit= and systemd.wants=.
report="until [ -s /var/lib/wallflower-nvr/setup-code ]; do sleep 1; done; \
echo REPORT:SetupCode=\$(cat /var/lib/wallflower-nvr/setup-code) >/dev/ttyAMA0; \
until systemctl is-active -q wallflower-nvr.service; do sleep 2; done; sleep 40; \
systemctl show wallflower-nvr.service -p ActiveState -p SubState -p WatchdogUSec \
-p WatchdogTimestampMonotonic -p NRestarts | sed s/^/REPORT:/ >/dev/ttyAMA0"
start=$(date +%s.%N)
"$qemu" -M virt -cpu cortex-a57 -smp 2 -m 1024 -display none -monitor none -snapshot \
    -kernel "$OUT/vmlinuz-arm64" -initrd "$OUT/initrd-arm64" \
    -append "root=LABEL=wallflower-root rw console=ttyAMA0 systemd.run=\"/usr/bin/systemd-run --unit=report /bin/sh -c '$report'\" systemd.run_success_action=none systemd.unit=multi-user.target systemd.wants=kernel-command-line.service" \
    -drive "file=$IMAGE,format=raw,if=virtio" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0,romfile= -L "$Q/root/usr/share/qemu" \
    -serial "file:$console" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

health=
for _ in $(seq 1800); do
    health=$(curl -s --max-time 5 "http://127.0.0.1:$port/api/health" || true)
    [ -n "$health" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -50 "$console"; echo "image-test: qemu exited" >&2; exit 1; }
    sleep 1
done
healthy_at=$(date +%s.%N)
[ -n "$health" ] || { tail -80 "$console"; echo "image-test: no /api/health within 30 minutes" >&2; exit 1; }
echo "health: $health"
grep -q '"status":' <<<"$health"
awk -v a="$healthy_at" -v b="$start" 'BEGIN { printf "image-test: /api/health answered %.0f s after qemu started\n", a - b }'

# A first boot has no user: the box is in setup mode and everything else is closed.
setup=$(curl -sf --max-time 10 "http://127.0.0.1:$port/api/setup")
echo "setup: $setup"
grep -q '"needed":true' <<<"$setup" || { echo "image-test: a fresh image is not in setup mode" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/api/streams")
[ "$code" = 401 ] || { echo "image-test: /api/streams answered $code without a login" >&2; exit 1; }

# Setup over HTTP with the code the box printed, then a camera from the host.
for _ in $(seq 120); do
    setup_code=$(grep -ao 'REPORT:SetupCode=[A-Z0-9-]*' "$console" 2>/dev/null | tail -1 | cut -d= -f2 || true)
    [ -n "$setup_code" ] && break
    sleep 1
done
[ -n "$setup_code" ] || { tail -50 "$console"; echo "image-test: the box printed no setup code" >&2; exit 1; }
jar=$OUT/cookies
curl -sf -c "$jar" -H 'content-type: application/json' --max-time 60 \
    --data "{\"code\":\"$setup_code\",\"username\":\"admin\",\"password\":\"image test password\"}" \
    "http://127.0.0.1:$port/api/setup" >/dev/null || { echo "image-test: setup failed" >&2; exit 1; }
cam_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 tests/rtsp-server.py "$cam_port" cam >/dev/null 2>&1 &
cam_pid=$!
trap 'kill "$pid" "$cam_pid" 2>/dev/null || true' EXIT
added_at=$(date +%s.%N)
added=$(curl -s -b "$jar" -H 'content-type: application/json' --max-time 60 -w ' %{http_code}' \
    --data "{\"id\":\"cam\",\"url\":\"rtsp://10.0.2.2:$cam_port/cam\",\"segment_seconds\":10}" \
    "http://127.0.0.1:$port/api/streams")
echo "added: $added"
[ "${added##* }" = 201 ] || { echo "image-test: adding the camera failed" >&2; exit 1; }
recorded=
for _ in $(seq 300); do
    recorded=$(curl -sf -b "$jar" --max-time 10 "http://127.0.0.1:$port/api/streams/cam/recordings" || true)
    grep -q '"duration_seconds"' <<<"$recorded" && break
    sleep 1
done
grep -q '"duration_seconds"' <<<"$recorded" || {
    curl -s -b "$jar" "http://127.0.0.1:$port/api/streams"; echo
    echo "image-test: the camera added through the API recorded nothing in 5 minutes" >&2; exit 1; }
now=$(date +%s.%N)
awk -v a="$now" -v b="$start" -v c="$added_at" 'BEGIN { printf "image-test: first recorded segment of a camera added over HTTP %.0f s after qemu started (%.0f s after it was added)\n", a - b, a - c }'

for _ in $(seq 300); do
    grep -q 'REPORT:NRestarts' "$console" 2>/dev/null && break
    sleep 1
done
grep -ao 'REPORT:[A-Za-z]*=[^ ]*' "$console" | tr -d '\r'
grep -q 'REPORT:ActiveState=active' "$console" || { echo "image-test: the unit is not active" >&2; exit 1; }
grep -q 'REPORT:WatchdogUSec=30s' "$console" || { echo "image-test: the watchdog is not armed" >&2; exit 1; }
grep -qE 'REPORT:WatchdogTimestampMonotonic=[1-9]' "$console" || { echo "image-test: the watchdog was never fed" >&2; exit 1; }
echo "image-test: ok"
