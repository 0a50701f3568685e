#!/usr/bin/env bash
# Fuzzes every parser of outside bytes for SECONDS each (default 120), with memory limits: an
# input that makes one allocation over 64 MB or the process grow past 256 MB is a finding.
# Seeds: real files made by ffmpeg (make-corpus.sh) and the regression corpus. Installs
# cargo-fuzz when missing. Exits non-zero on a finding; libFuzzer leaves the input in
# tests/fuzz/artifacts/TARGET/: add it to tests/fuzz/regressions/ with the fix, so plain
# `cargo test` probes it ever after (tests/hostile.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-120}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version '^0.13'
[ -d tests/fuzz/corpus/probe ] || bash tests/fuzz/make-corpus.sh
mkdir -p tests/fuzz/regressions
# ASan keeps freed memory in a quarantine, 256 MB by default, which would count against the
# RSS limit without being ours: keep it small so the limit measures the target.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
# The access target reads request text, seeded with a few real requests.
mkdir -p tests/fuzz/corpus/access
[ -n "$(ls -A tests/fuzz/corpus/access)" ] || {
  printf '/api/recordings/42/stream\nwf_user=ann&wf_exp=1700000000&wf_sig=00\nwf_session=abc; x=y' >tests/fuzz/corpus/access/signed
  printf '/api/streams/door/playback.mp4\nstart=1&end=2\nwf_session=\nrtsp://u:p@cam/s' >tests/fuzz/corpus/access/plain
}
for target in probe fragments access; do
  mkdir -p "tests/fuzz/corpus/$target"
  seeds=("tests/fuzz/corpus/$target")
  [ "$target" = access ] || seeds+=(tests/fuzz/corpus/probe tests/fuzz/regressions)
  echo "fuzz: $target for ${secs} s" >&2
  log="tests/fuzz/$target.log"
  # cargo-fuzz needs nightly's -Z flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
  rc=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz "$target" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=256 -malloc_limit_mb=64 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  # libFuzzer's summary, without its progress lines.
  grep -E '^(#[0-9]+.*DONE|stat::(number_of_executed_units|peak_rss_mb)|INFO: seed corpus)' "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target found an input (exit $rc), see tests/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
