#!/usr/bin/env bash
# Upload throughput of the sandbox's upload endpoint vs a plain sink, with curl
# over loopback HTTP: a 1 GiB file in 64,000,000-byte chunks (the last chunk takes
# the remainder), all PUTs on one keep-alive connection (curl --next).
#
#   sandbox/bench/upload-bench.sh [RUNS [MODES]]   (default: 3 runs of "sink hash nohash")
#
# Modes: "hash"   = the real upload endpoint with SHA-256 + MP4 walker,
#        "nohash" = the same with the control API's upload.hash=false,
#        "sink"   = /_sink on the same nginx server (same socket tuning, reads and drops).
# Prints MB/s (10^6 bytes/s, wall clock of the curl process) and the nginx
# worker's RSS before/after every run and its peak (VmHWM).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-3}
MODES=${2:-sink hash nohash}
SIZE=1073741824
CHUNK=64000000
COUNT=$((SIZE / CHUNK))

WORK=$(mktemp -d /tmp/tiktok-sandbox-bench.XXXXXX)
cleanup() { "$ROOT/run" stop --dir "$WORK/sb" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$ROOT/run" start --dir "$WORK/sb" >/dev/null
. "$WORK/sb/env"
ADMIN=$TIKTOK_SANDBOX_ADMIN
API=$TIKTOK_API_BASE_PLAIN
WORKER=$(curl -s "$ADMIN/" | sed -n 's/.*"worker_pid":\([0-9]*\).*/\1/p')

echo "# making a 1 GiB file of random bytes and its $COUNT chunks" >&2
head -c $SIZE /dev/urandom >"$WORK/file.bin"
for i in $(seq 0 $((COUNT - 1))); do
  if [ "$i" -lt $((COUNT - 1)) ]; then len=$CHUNK; else len=$((SIZE - i * CHUNK)); fi
  dd if="$WORK/file.bin" of="$WORK/chunk.$(printf %02d "$i")" bs=4M iflag=skip_bytes,count_bytes \
    skip=$((i * CHUNK)) count=$len status=none
done
cat "$WORK"/chunk.* >/dev/null   # page cache

JSON='Content-Type: application/json'   # the control API takes JSON only
curl -s -X PATCH -H "$JSON" "$ADMIN/config" -d "{\"rate_limits\":{\"video.init\":100000},\"delays\":{\"processing_ms\":0}${BENCH_CONFIG:-}}" >/dev/null
curl -s -X PATCH -H "$JSON" "$ADMIN/users/$TIKTOK_SANDBOX_USER" -d '{"daily_post_cap":100000}' >/dev/null
VERIFIER=$(head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
CHALLENGE=$(printf '%s' "$VERIFIER" | sha256sum | cut -d' ' -f1)
LOC=$(curl -s -o /dev/null -w '%{redirect_url}' "$API/v2/auth/authorize/" --data-urlencode "client_key=$TIKTOK_CLIENT_KEY" \
  --data-urlencode "redirect_uri=$TIKTOK_REDIRECT_URI" -d response_type=code -d scope=user.info.basic,video.publish \
  -d code_challenge=$CHALLENGE -d code_challenge_method=S256 -d decision=approve)
CODE=$(printf '%s' "$LOC" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
CODE=$(printf '%b' "${CODE//%/\\x}")
TOKEN=$(curl -s "$API/v2/oauth/token/" --data-urlencode "client_key=$TIKTOK_CLIENT_KEY" --data-urlencode "client_secret=$TIKTOK_CLIENT_SECRET" \
  --data-urlencode "code=$CODE" -d grant_type=authorization_code --data-urlencode "redirect_uri=$TIKTOK_REDIRECT_URI" \
  --data-urlencode "code_verifier=$VERIFIER" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')

rss() { awk '/VmRSS/{print $2}' "/proc/$WORKER/status"; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$WORKER/status"; }

upload() { # upload URL -> prints seconds and the status codes
  # curl -T appends the file name to a URL whose path ends in "/" (as upload URLs
  # do), so send the request target verbatim with --request-target.
  local url=$1 args=() i a b len
  local origin=${url%%/upload/*} target=/${url#*://*/}
  [ "$origin" = "$url" ] && { origin=${url%/_sink}; target=/_sink; }
  for i in $(seq 0 $((COUNT - 1))); do
    a=$((i * CHUNK))
    if [ "$i" -lt $((COUNT - 1)) ]; then len=$CHUNK; else len=$((SIZE - a)); fi
    b=$((a + len - 1))
    [ "$i" -gt 0 ] && args+=(--next)
    args+=(-s -o /dev/null -w '%{http_code} ' -T "$WORK/chunk.$(printf %02d "$i")" -H 'Content-Type: video/mp4'
      -H "Content-Range: bytes $a-$b/$SIZE" --request-target "$target" "$origin/")
  done
  local t0 t1 codes
  t0=$(date +%s.%N)
  codes=$(curl "${args[@]}")
  t1=$(date +%s.%N)
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $codes"
}

run_mode() {
  local mode=$1 url out secs codes before after
  if [ "$mode" = sink ]; then
    url=${TIKTOK_UPLOAD_BASE_PLAIN%/upload/}/_sink
  else
    curl -s -X PATCH -H "$JSON" "$ADMIN/config" -d "{\"upload\":{\"hash\":$([ "$mode" = hash ] && echo true || echo false)}}" >/dev/null
    url=$(curl -s "$API/v2/post/publish/video/init/" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json; charset=UTF-8' \
      -d "{\"post_info\":{\"privacy_level\":\"SELF_ONLY\"},\"source_info\":{\"source\":\"FILE_UPLOAD\",\"video_size\":$SIZE,\"chunk_size\":$CHUNK,\"total_chunk_count\":$COUNT}}" |
      sed -n 's/.*"upload_url":"\([^"]*\)".*/\1/p')
  fi
  before=$(rss)
  out=$(upload "$url")
  after=$(rss)
  secs=${out%% *}
  codes=${out#* }
  local lua_kb
  lua_kb=$(curl -s "$ADMIN/" | sed -n 's/.*"lua_memory_kb":\([0-9]*\).*/\1/p')
  printf '%-7s %8.1f MB/s  %6.3f s  rss %6d -> %6d KiB (peak %6d KiB, Lua heap %6d KiB)  codes: %s\n' "$mode" \
    "$(awk -v s="$SIZE" -v t="$secs" 'BEGIN { print s / 1000000 / t }')" "$secs" "$before" "$after" "$(hwm)" "$lua_kb" \
    "$(echo "$codes" | tr ' ' '\n' | grep -v '^$' | sort | uniq -c | tr '\n' ' ' | tr -s ' ')"
}

echo "# nginx worker pid $WORKER, RSS at start $(rss) KiB"
for r in $(seq 1 "$RUNS"); do
  for mode in $MODES; do run_mode "$mode"; done
done
if [ -n "${BENCH_SMAPS:-}" ]; then grep -B1 -A3 '^Size' /proc/$WORKER/smaps | awk '/^[0-9a-f]+-/{m=$0} /^Rss/{if ($2 > 1000) print $2, m}'; fi
if [ "$RUNS" -gt 0 ]; then
  echo "# last hashed upload as recorded by the sandbox vs sha256sum:"
  curl -s "$ADMIN/posts" | grep -o '"sha256":"[0-9a-f]*"' | sort -u
  echo "  $(sha256sum "$WORK/file.bin" | cut -d' ' -f1)"
fi
