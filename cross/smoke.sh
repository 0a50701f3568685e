#!/bin/bash
# Smoke test of an ARM release build under qemu-user: cross/smoke.sh TARGET
# Runs `check-config` on the shipped config, `probe`s a real segment made by ffmpeg, then starts
# the daemon and asks /api/health and /api/streams. Needs qemu-user-static, the target's libc
# (cross/build.sh installs both), ffmpeg and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:?usage: cross/smoke.sh TARGET}
case "$t" in
    aarch64-unknown-linux-gnu) qemu=qemu-aarch64-static sysroot=/usr/aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) qemu=qemu-arm-static sysroot=/usr/arm-linux-gnueabihf ;;
    *) echo "cross/smoke.sh: unknown target $t" >&2; exit 2 ;;
esac
bin=target/$t/release/wallflower-nvr
[ -x "$bin" ] || { echo "cross/smoke.sh: no $bin; run cross/build.sh $t" >&2; exit 1; }
run() { "$qemu" -L "$sysroot" "$bin" "$@"; }
say() { echo "smoke $t: $*"; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

file "$bin" | grep -q "$(case $t in aarch64*) echo 'ARM aarch64' ;; *) echo 'ARM, EABI5' ;; esac)" \
    || { say "not an ARM binary: $(file "$bin")"; exit 1; }

run check-config -c config/wallflower-nvr.toml
say "check-config ok"

ffmpeg -hide_banner -v error -f lavfi -i testsrc=size=320x240:rate=25:duration=3 \
    -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p \
    -f mp4 -movflags +frag_keyframe+empty_moov+default_base_moof "$tmp/2026-01-01_00-00-00.mp4"
probe=$(run probe "$tmp/2026-01-01_00-00-00.mp4")
echo "$probe"
grep -q '"duration_seconds":3[,.]' <<<"$probe" && grep -q '"video_codec":"h264"' <<<"$probe" \
    || { say "probe gave the wrong answer"; exit 1; }
say "probe ok"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/recordings/cam"
mv "$tmp/2026-01-01_00-00-00.mp4" "$tmp/recordings/cam/"
cat >"$tmp/config.toml" <<TOML
[storage]
recordings_dir = "$tmp/recordings"
index_path = "$tmp/index.redb"
state_dir = "$tmp/state"
[http]
listen = "127.0.0.1:$port"
[retention]
default_days = 0
[[streams]]
id = "cam"
url = "rtsp://127.0.0.1:9/none"
enabled = false
TOML
# An admin made at the console (Argon2id under qemu), then a login over HTTP.
echo "smoke password" | run user add smoke --role admin -c "$tmp/config.toml"
"$qemu" -L "$sysroot" "$bin" run -c "$tmp/config.toml" >"$tmp/daemon.log" 2>&1 &
pid=$!
health=
for _ in $(seq 120); do
    health=$(curl -sf "http://127.0.0.1:$port/api/health" || true)
    [ -n "$health" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/daemon.log"; say "the daemon exited"; exit 1; }
    sleep 0.5
done
echo "$health"
grep -q '"status":"healthy"' <<<"$health" || { cat "$tmp/daemon.log"; say "not healthy"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/streams")" = 401 ] \
    || { say "the API answered without a login"; exit 1; }
curl -sf -c "$tmp/cookies" -H 'content-type: application/json' \
    --data '{"username":"smoke","password":"smoke password"}' "http://127.0.0.1:$port/api/login" >/dev/null \
    || { cat "$tmp/daemon.log"; say "login failed"; exit 1; }
streams=$(curl -sf -b "$tmp/cookies" "http://127.0.0.1:$port/api/streams/cam/recordings")
grep -q '"duration_seconds":3' <<<"$streams" || { say "the segment was not indexed: $streams"; exit 1; }
kill -TERM "$pid"
wait "$pid" || { cat "$tmp/daemon.log"; say "the daemon did not stop cleanly"; exit 1; }
pid=
say "daemon ok: /api/health answered, the login worked and the segment was indexed"
