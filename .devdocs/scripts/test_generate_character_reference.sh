#!/usr/bin/env bash
# POST /api/mv/generate_character_reference, save the image to a temporary folder, check it
# against the stored copy (GET image_url), and print its path and image_id.
#
#   .devdocs/scripts/test_generate_character_reference.sh [BASE_URL]   (default http://localhost:8000)
#
# Environment (all optional): CHARACTER_DESCRIPTION, ASPECT_RATIO, OUTPUT_FORMAT (png|jpg),
# NEGATIVE_PROMPT, SEED, API_KEY, CURL_MAX_TIME. Exits non-zero on any HTTP error.
# The last line printed is `image_id=<uuid>`, for use in other scripts.
set -euo pipefail
BASE_URL="${1:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
# shellcheck source=_lib.sh
source "$(dirname "$0")/_lib.sh"

CHARACTER_DESCRIPTION="${CHARACTER_DESCRIPTION:-Silver metallic humanoid robot with a red shield}"

work=$(mktemp -d "${TMPDIR:-/tmp}/mv-character.XXXXXX")
body=$(to_json character_description="$CHARACTER_DESCRIPTION" \
  aspect_ratio="${ASPECT_RATIO:-}" output_format="${OUTPUT_FORMAT:-}" \
  negative_prompt="${NEGATIVE_PROMPT:-}" seed:="${SEED:-}")

echo "POST $BASE_URL/api/mv/generate_character_reference"
echo "  request: $body"
started=$(now)
post_json "$BASE_URL/api/mv/generate_character_reference" "$body" \
  "$work/response.json" "$work/headers.txt"
echo "  HTTP $HTTP_STATUS in $(elapsed "$started") s" \
  "(X-Request-ID $(header_value "$work/headers.txt" x-request-id))"

image_id=$(json_get "$work/response.json" image_id)
image_url=$(json_get "$work/response.json" image_url)
server_file=$(json_get "$work/response.json" output_file)
extension="${server_file##*.}"
local_file="$work/character_reference.$extension"

# The response carries the image as base64; decode it to a file.
python3 - "$work/response.json" "$local_file" <<'PY'
import base64, json, sys
response = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(base64.b64decode(response["image_base64"]))
PY

# The same image is served by id: fetch it and compare.
api GET "$BASE_URL$image_url" "$work/served.$extension" "$work/served_headers.txt"
if [[ "$(sha256_of "$local_file")" != "$(sha256_of "$work/served.$extension")" ]]; then
  log "error: the image served at $image_url differs from the one in the response"
  exit 1
fi

print_generation_metadata "$work/response.json"
echo
echo "image_id:      $image_id"
echo "served at:     $BASE_URL$image_url ($(header_value "$work/served_headers.txt" content-type), identical to the base64 in the response)"
echo "server file:   $server_file"
echo "saved locally: $local_file ($(file_size "$local_file") bytes)"
echo "use it as a video reference: .devdocs/scripts/test_generate_video.sh $BASE_URL $image_id"
echo "image_id=$image_id"
