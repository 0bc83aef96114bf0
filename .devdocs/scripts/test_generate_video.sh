#!/usr/bin/env bash
# POST /api/mv/generate_video, then fetch the clip every way the API offers: the whole file,
# a Range request, HEAD, and /info.
#
#   .devdocs/scripts/test_generate_video.sh [BASE_URL] [REFERENCE_IMAGE_ID]
#
# BASE_URL defaults to http://localhost:8000. REFERENCE_IMAGE_ID is an image_id from
# generate_character_reference (see test_generate_character_reference.sh).
# Environment (all optional): PROMPT, NEGATIVE_PROMPT, DURATION (4|6|8), ASPECT_RATIO
# (16:9|9:16), GENERATE_AUDIO (true|false), SEED, BACKEND (replicate|gemini|mock),
# IDEMPOTENCY_KEY (default: a fresh UUID), API_KEY, CURL_MAX_TIME (default 900 s).
# A live clip takes 20-400 s. Exits non-zero on any HTTP error.
set -euo pipefail
BASE_URL="${1:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
REFERENCE_IMAGE_ID="${2:-}"
# shellcheck source=_lib.sh
source "$(dirname "$0")/_lib.sh"

PROMPT="${PROMPT:-Wide establishing shot, slow dolly in: a silver humanoid robot with a red shield walks through a neon-lit abandoned city at dusk, puddles reflecting the signs.}"
IDEMPOTENCY_KEY="${IDEMPOTENCY_KEY:-$(new_key)}"

work=$(mktemp -d "${TMPDIR:-/tmp}/mv-video.XXXXXX")
body=$(to_json prompt="$PROMPT" negative_prompt="${NEGATIVE_PROMPT:-}" \
  duration:="${DURATION:-}" aspect_ratio="${ASPECT_RATIO:-}" \
  generate_audio:="${GENERATE_AUDIO:-}" seed:="${SEED:-}" backend="${BACKEND:-}" \
  reference_image_id="$REFERENCE_IMAGE_ID")

echo "POST $BASE_URL/api/mv/generate_video"
echo "  Idempotency-Key: $IDEMPOTENCY_KEY  (send it again with the same body to get this answer back)"
echo "  request: $body"
started=$(now)
post_json "$BASE_URL/api/mv/generate_video" "$body" "$work/response.json" "$work/headers.txt" \
  -H "Idempotency-Key: $IDEMPOTENCY_KEY"
echo "  HTTP $HTTP_STATUS in $(elapsed "$started") s" \
  "(X-Request-ID $(header_value "$work/headers.txt" x-request-id))"

video_id=$(json_get "$work/response.json" video_id)
video_url=$(json_get "$work/response.json" video_url)
video_path=$(json_get "$work/response.json" video_path)
expected_size=$(json_get "$work/response.json" metadata.file_size_bytes)
expected_sha=$(json_get "$work/response.json" metadata.sha256)
print_generation_metadata "$work/response.json"
echo

echo "GET $BASE_URL$video_url (whole clip)"
clip="$work/$video_id.mp4"
api GET "$BASE_URL$video_url" "$clip" "$work/get_headers.txt"
size=$(file_size "$clip")
echo "  HTTP $HTTP_STATUS, $size bytes, Content-Type $(header_value "$work/get_headers.txt" content-type)"
if [[ "$size" != "$expected_size" || "$(sha256_of "$clip")" != "$expected_sha" ]]; then
  log "error: the downloaded clip does not match metadata.file_size_bytes / metadata.sha256"
  exit 1
fi
echo "  size and sha256 match the response's metadata"
echo

echo "GET $BASE_URL$video_url with Range: bytes=0-1023"
api GET "$BASE_URL$video_url" "$work/first_kib.bin" "$work/range_headers.txt" \
  -H 'Range: bytes=0-1023'
echo "  HTTP $HTTP_STATUS, Content-Range $(header_value "$work/range_headers.txt" content-range)," \
  "$(file_size "$work/first_kib.bin") bytes"
if [[ "$HTTP_STATUS" != 206 ]] || ! cmp -s "$work/first_kib.bin" <(head -c 1024 "$clip"); then
  log "error: the range answer is not the first 1024 bytes of the clip"
  exit 1
fi
echo

echo "HEAD $BASE_URL$video_url"
api HEAD "$BASE_URL$video_url" /dev/null "$work/head_headers.txt" --head
for name in content-length accept-ranges etag last-modified; do
  echo "  $name: $(header_value "$work/head_headers.txt" "$name")"
done
echo

echo "GET $BASE_URL$video_url/info"
api GET "$BASE_URL$video_url/info" "$work/info.json" "$work/info_headers.txt"
python3 - "$work/info.json" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
print(f"  exists {json.dumps(info['exists'])}, {info['file_size_bytes']} bytes, "
      f"created {info['created_at']}")
sidecar = info["metadata"]
print(f"  stored metadata: backend {sidecar.get('backend_used')}, provider_job_id "
      f"{json.dumps(sidecar.get('provider_job_id'))}, client_disconnected "
      f"{json.dumps(sidecar.get('client_disconnected'))}")
PY
echo
echo "video_id:      $video_id"
echo "server file:   $video_path"
echo "saved locally: $clip"
