#!/usr/bin/env bash
# Seeds the probe's fuzz corpus with real files made by ffmpeg: fragmented and plain, with and
# without audio, and each cut at random offsets (as power loss or kill -9 leaves them).
set -euo pipefail
out="$(dirname "$0")/corpus/probe"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=(-f lavfi -i testsrc=size=160x120:rate=10:duration=3 -f lavfi -i sine=duration=3)
frag="+frag_keyframe+empty_moov+default_base_moof"
ff() { ffmpeg -hide_banner -v error -y "${src[@]}" "$@"; }
ff -c:v libx264 -preset ultrafast -g 10 -c:a aac -movflags "$frag" "$tmp/frag_av.mp4"
ff -an -c:v libx264 -preset ultrafast -g 10 -movflags "$frag" "$tmp/frag_v.mp4"
ff -c:v libx264 -preset ultrafast -bf 2 -g 10 -c:a aac -movflags "$frag" "$tmp/frag_bf.mp4"
ff -c:v libx264 -preset ultrafast -c:a aac "$tmp/plain_av.mp4"
ff -an -c:v libx264 -preset ultrafast "$tmp/plain_v.mp4"
ff -c:v libx264 -preset ultrafast -c:a aac -movflags +faststart "$tmp/plain_fast.mp4"
for f in "$tmp"/*.mp4; do
  name=$(basename "$f" .mp4)
  cp "$f" "$out/$name"
  size=$(stat -c %s "$f")
  for i in 1 2 3 4 5 6 7 8; do
    cut=$(( (RANDOM * 32768 + RANDOM) % size ))
    head -c "$cut" "$f" > "$out/$name-cut$cut"
  done
done
echo "corpus: $(ls "$out" | wc -l) files in $out"
